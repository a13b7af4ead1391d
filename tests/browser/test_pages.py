"""The pages in a real browser, at a desktop and a phone size: axe-core on each page (a
serious or critical violation fails), a full-page screenshot of each step
(test-output/screenshots/), login and consent completed with the keyboard alone, and on the
phone no page wider than the screen.

The flows run against the demo-mode server (`make run`'s demo data): the demo contractor
logs in with e-mail and password, the demo relying page logs in through the IdP with its
public client, and the contractor sees the USERS page of the demo customer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, Route, expect

from idp.demo.seed import DEMO_CUSTOMER, DEMO_EMAIL, DEMO_PASSWORD
from tests.browser.conftest import (
    SIZES,
    TIMEOUT_MS,
    AccessibilityViolations,
    BrowserTab,
    DemoServer,
    HorizontalOverflow,
)

EMAIL_FIELD = "input[name=email]"
PASSWORD_FIELD = "input[name=password]"
ALLOW = "[name=allow]"


def login_by_keyboard(tab: BrowserTab) -> None:
    """On the login page: Tab to the e-mail field, type, Tab, type the password, Enter."""
    tab.tab_to(EMAIL_FIELD)
    tab.page.keyboard.type(DEMO_EMAIL)
    tab.page.keyboard.press("Tab")
    assert tab.focused()["name"] == "password", f"Tab after the e-mail went to {tab.focused()}"
    tab.page.keyboard.type(DEMO_PASSWORD)
    with tab.page.expect_navigation():
        tab.page.keyboard.press("Enter")


def login_by_mouse(tab: BrowserTab) -> None:
    tab.page.fill(EMAIL_FIELD, DEMO_EMAIL)
    tab.page.fill(PASSWORD_FIELD, DEMO_PASSWORD)
    with tab.page.expect_navigation():
        tab.page.get_by_role("button", name="Log in", exact=True).click()


def start_demo_login(tab: BrowserTab) -> None:
    """The demo relying page: prompt=consent (the consent page is shown even when an earlier
    test already allowed), then "Log in through the IdP"."""
    tab.goto("/demo/")
    tab.page.select_option("#prompt", "consent")
    with tab.page.expect_navigation():
        tab.page.get_by_role("button", name="Log in through the IdP").click()
    expect(tab.page).to_have_url(re.compile(r"/login\b"))


def expect_start_page(tab: BrowserTab) -> None:
    expect(tab.page.get_by_role("heading", level=1)).to_have_text("You are logged in")
    expect(tab.page.get_by_text(DEMO_EMAIL)).to_be_visible()


def expect_consent_page(tab: BrowserTab) -> None:
    expect(tab.page).to_have_url(re.compile(r"/consent\b"))
    expect(tab.page.locator(ALLOW)).to_be_visible()


def expect_demo_result(tab: BrowserTab) -> None:
    expect(tab.page).to_have_url(tab.url("/demo/"))
    expect(tab.page.get_by_role("heading", name="Verified ID token claims")).to_be_visible()
    expect(tab.page.get_by_role("heading", name="Userinfo")).to_be_visible()


# --- (a) login --------------------------------------------------------------------------------


def test_login_by_keyboard(tab: BrowserTab) -> None:
    tab.goto("/login")
    tab.check("login")
    login_by_keyboard(tab)
    expect_start_page(tab)
    tab.check("start")
    tab.assert_accessible()


# --- (b) a relying app: login and consent ---------------------------------------------------


def test_demo_login_and_consent_by_keyboard(tab: BrowserTab) -> None:
    start_demo_login(tab)
    tab.check("login")
    login_by_mouse(tab)
    expect_consent_page(tab)
    tab.check("consent")
    # Allow with the keyboard alone: Tab to the button, Enter.
    tab.tab_to(ALLOW)
    with tab.page.expect_navigation(url=re.compile(r"/demo/$")):
        tab.page.keyboard.press("Enter")
    expect_demo_result(tab)
    expect(tab.page.get_by_text(DEMO_EMAIL).first).to_be_visible()
    tab.check("result")
    tab.assert_accessible()


# --- (c) USERS ----------------------------------------------------------------------------------


def test_users_page(tab: BrowserTab) -> None:
    tab.goto("/login")
    login_by_mouse(tab)
    expect_start_page(tab)
    with tab.page.expect_navigation():
        tab.page.get_by_role("link", name="Users", exact=True).click()
    expect(tab.page).to_have_url(tab.url(f"/users/{DEMO_CUSTOMER}"))
    expect(tab.page.get_by_role("heading", level=1)).to_contain_text("Users of")
    tab.check("users")
    tab.assert_accessible()


# --- (d) nothing wider than a phone ----------------------------------------------------------


def _login_page(tab: BrowserTab) -> None:
    tab.goto("/login")


def _start_page(tab: BrowserTab) -> None:
    tab.goto("/login")
    login_by_mouse(tab)
    expect_start_page(tab)


def _users_page(tab: BrowserTab) -> None:
    _start_page(tab)
    tab.goto("/users")
    expect(tab.page).to_have_url(tab.url(f"/users/{DEMO_CUSTOMER}"))


def _demo_page(tab: BrowserTab) -> None:
    tab.goto("/demo/")


def _demo_login_page(tab: BrowserTab) -> None:
    start_demo_login(tab)


def _consent_page(tab: BrowserTab) -> None:
    start_demo_login(tab)
    login_by_mouse(tab)
    expect_consent_page(tab)


def _demo_result_page(tab: BrowserTab) -> None:
    _consent_page(tab)
    with tab.page.expect_navigation(url=re.compile(r"/demo/$")):
        tab.page.locator(ALLOW).click()
    expect_demo_result(tab)


PAGES: dict[str, Callable[[BrowserTab], None]] = {
    "login": _login_page,
    "start": _start_page,
    "users": _users_page,
    "demo": _demo_page,
    "demo-login": _demo_login_page,
    "consent": _consent_page,
    "demo-result": _demo_result_page,
}


@pytest.mark.parametrize("size", ["phone"])
@pytest.mark.parametrize("page_name", list(PAGES))
def test_no_horizontal_overflow_on_phone(tab: BrowserTab, page_name: str) -> None:
    PAGES[page_name](tab)
    assert_fits(tab, page_name)


def assert_fits(tab: BrowserTab, page_name: str) -> None:
    width, screen = tab.horizontal_overflow()
    if width > screen:
        tab.screenshot(page_name)
        raise HorizontalOverflow(
            f"{page_name} ({tab.page.url}) is {width}px wide on a {screen}px phone screen"
        )


@pytest.mark.parametrize("size", ["phone"])
def test_overflow_check_sees_a_page_too_wide(tab: BrowserTab) -> None:
    """The helper itself: a login page served with a 900px wide drawing in it is reported
    (chromium widens innerWidth with the content on a phone, so only clientWidth tells). An
    inline SVG, not an image: the stylesheet shrinks images to the screen, and the page's
    CSP allows no inline style that could force a width."""

    def widened(route: Route) -> None:
        response = route.fetch()
        body = response.text().replace(
            "</main>", '<svg width="900" height="20" aria-hidden="true"></svg></main>'
        )
        route.fulfill(response=response, body=body)

    tab.page.route("**/login", widened)
    tab.goto("/login")
    with pytest.raises(HorizontalOverflow, match=r"is 9\d\dpx wide on a 360px phone screen"):
        assert_fits(tab, "widened-login")


def test_violations_are_reported_per_step(tab: BrowserTab) -> None:
    """The helper itself: a page made inaccessible in the browser fails with the rule id,
    impact, selector and help URL (so an all-clean run is not a helper that finds nothing)."""
    tab.goto("/login")
    tab.page.evaluate("() => document.querySelector('label[for=email]').remove()")
    tab.check("broken-login")
    with pytest.raises(AccessibilityViolations) as raised:
        tab.assert_accessible()
    message = str(raised.value)
    assert "broken-login" in message and "label [critical]" in message, message
    assert "#email" in message and "https://dequeuniversity.com/rules/axe/" in message, message


# --- (e) a phone set to Latvian; switching to Russian -----------------------------------------


@pytest.fixture
def latvian_phone(
    chromium: Browser, demo_server: DemoServer, axe_source: str
) -> Iterator[BrowserTab]:
    """A phone whose browser asks for Latvian (Accept-Language: lv-LV)."""
    context = chromium.new_context(locale="lv-LV", **SIZES["phone"])
    context.set_default_timeout(TIMEOUT_MS)
    yield BrowserTab(context.new_page(), "phone", "latvian_phone", demo_server.base_url, axe_source)
    context.close()


def expect_language(tab: BrowserTab, language: str) -> None:
    expect(tab.page.locator("html")).to_have_attribute("lang", language)


def test_a_latvian_phone_meets_latvian_and_a_switch_to_russian_lasts(
    latvian_phone: BrowserTab,
) -> None:
    tab = latvian_phone
    tab.goto("/demo/")
    expect_language(tab, "lv")
    tab.page.select_option("#prompt", "consent")
    with tab.page.expect_navigation():
        tab.page.get_by_role("button", name="Pieslēgties caur IdP").click()
    expect(tab.page).to_have_url(re.compile(r"/login\?interaction="))
    expect_language(tab, "lv")
    expect(tab.page.get_by_role("button", name="Pieslēgties", exact=True)).to_be_visible()
    tab.check("login-lv")
    # The switcher is a plain link, named in its own language; the paused sign-in stays.
    with tab.page.expect_navigation():
        tab.page.get_by_role("link", name="Русский").click()
    expect(tab.page).to_have_url(re.compile(r"/login\?interaction="))
    expect_language(tab, "ru")
    expect(tab.page.get_by_role("link", name="Русский")).to_have_attribute("aria-current", "true")
    tab.check("login-ru")
    tab.page.fill(EMAIL_FIELD, DEMO_EMAIL)
    tab.page.fill(PASSWORD_FIELD, DEMO_PASSWORD)
    with tab.page.expect_navigation():
        tab.page.get_by_role("button", name="Войти", exact=True).click()
    expect_consent_page(tab)
    expect_language(tab, "ru")
    expect(tab.page.locator(ALLOW)).to_have_text("Разрешить")
    tab.check("consent-ru")
    with tab.page.expect_navigation(url=re.compile(r"/demo/$")):
        tab.page.locator(ALLOW).click()
    # Back at the application, and on the IdP's next page the choice still holds.
    expect_language(tab, "ru")
    tab.goto("/users")
    expect_language(tab, "ru")
    tab.check("users-ru")
