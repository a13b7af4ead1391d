"""My account in a real browser (issue 15), at a desktop and a phone size: every page of
the section's menu is opened from the start page, screenshotted, checked by axe-core and,
on the phone, for fitting the screen; the profile form is saved with the keyboard alone.
"""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.conftest import BrowserTab
from tests.browser.test_pages import expect_start_page, login_by_mouse

MENU = "nav.account-menu a"


def open_my_account(tab: BrowserTab) -> None:
    tab.goto("/login")
    login_by_mouse(tab)
    expect_start_page(tab)
    with tab.page.expect_navigation():
        tab.page.get_by_role("link", name="My account", exact=True).click()
    expect(tab.page.get_by_role("heading", level=1)).to_have_text("Profile")


def test_every_page_of_my_account(tab: BrowserTab) -> None:
    open_my_account(tab)
    tab.check("account-profile")
    labels = tab.page.locator(MENU).all_inner_texts()
    assert len(labels) >= 3, labels
    for label in labels:
        with tab.page.expect_navigation():
            tab.page.locator(MENU, has_text=label).first.click()
        expect(tab.page.locator(f"{MENU}[aria-current=page]")).to_have_text(label)
        tab.check("account-" + label.lower().replace(" ", "-"))
    # The e-mail change (the login is fresh, so no "confirm it is you" first).
    tab.goto("/account/email")
    expect(tab.page.get_by_label("E-mail")).to_be_visible()
    tab.check("account-email")
    tab.goto("/account/confirm-login?next=/account/email")
    tab.check("account-confirm-login")
    tab.assert_accessible()
    tab.assert_fits()


def test_the_profile_is_saved_with_the_keyboard(tab: BrowserTab) -> None:
    open_my_account(tab)
    # One demo server serves every test: each size saves a number of its own.
    digit = "8" if tab.size == "phone" else "9"
    tab.tab_to("input[name=phone]")
    tab.page.keyboard.press("Control+A")
    tab.page.keyboard.type(f"+371 2000 000{digit}")
    with tab.page.expect_navigation():
        tab.page.keyboard.press("Enter")
    expect(tab.page.get_by_role("status")).to_have_text("Your details are saved.")
    expect(tab.page.locator("input[name=phone]")).to_have_value(f"+3712000000{digit}")
    tab.check("account-profile-saved")
    tab.assert_accessible()
