"""The form patterns in a real browser (issue 14): a login sent empty shows the error
summary with the focus on it, and its links put the focus in the field; the show-password
button that static/forms.js adds shows and hides the password."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from idp.demo.seed import DEMO_CUSTOMER, DEMO_EMAIL, DEMO_PASSWORD
from tests.browser.conftest import BrowserTab

SUMMARY = "[data-error-summary]"


def test_an_empty_login_focuses_the_summary_and_its_links_reach_the_fields(
    tab: BrowserTab,
) -> None:
    tab.goto("/login")
    tab.check("login")
    with tab.page.expect_navigation():
        tab.page.get_by_role("button", name="Log in", exact=True).click()
    summary = tab.page.locator(SUMMARY)
    expect(summary).to_be_visible()
    expect(summary).to_be_focused()
    expect(summary.get_by_role("heading")).to_have_text("There is a problem")
    tab.check("login-empty")
    summary.get_by_role("link", name="Enter your password.").click()
    expect(tab.page.locator("#password")).to_be_focused()
    summary.get_by_role("link", name="Enter your e-mail address.").click()
    expect(tab.page.locator("#email")).to_be_focused()
    expect(tab.page.locator("#email")).to_have_attribute("aria-invalid", "true")
    expect(tab.page.locator("#email")).to_have_attribute("aria-describedby", "email-errors")
    # Each field shows its one message.
    expect(tab.page.locator(".field-error")).to_have_count(2)
    tab.assert_accessible()


def test_the_show_password_button_shows_and_hides_the_password(tab: BrowserTab) -> None:
    tab.goto("/login")
    password = tab.page.locator("#password")
    password.fill(DEMO_PASSWORD)
    button = tab.page.get_by_role("button", name="Show password")
    expect(button).to_have_attribute("aria-pressed", "false")
    expect(password).to_have_attribute("type", "password")
    button.click()
    expect(password).to_have_attribute("type", "text")
    hide = tab.page.get_by_role("button", name="Hide password")
    expect(hide).to_have_attribute("aria-pressed", "true")
    tab.check("password-shown")
    hide.click()
    expect(password).to_have_attribute("type", "password")
    # The form still logs in (the button is type=button: it never submits).
    tab.page.locator("#email").fill(DEMO_EMAIL)
    button.click()
    with tab.page.expect_navigation():
        tab.page.get_by_role("button", name="Log in", exact=True).click()
    expect(tab.page).not_to_have_url(re.compile(r"/login\b"))
    tab.assert_accessible()


def test_a_registration_with_mistakes_lists_each_in_the_summary(tab: BrowserTab) -> None:
    tab.goto("/register")
    tab.page.locator("#email").fill("not an address")
    tab.page.locator("#password").fill("short")
    with tab.page.expect_navigation():
        tab.page.get_by_role("button", name="Register").click()
    summary = tab.page.locator(SUMMARY)
    expect(summary).to_be_focused()
    links = summary.get_by_role("link")
    assert links.count() >= 4
    tab.check("register-mistakes")
    tab.assert_accessible()


def test_check_your_mailbox_shows_the_address_and_goes_back_filled_in(tab: BrowserTab) -> None:
    tab.goto("/forgot-password")
    tab.page.locator("#email").fill("someone@example.lv")
    with tab.page.expect_navigation():
        tab.page.get_by_role("button", name="Send the link").click()
    expect(tab.page.get_by_text("The address you gave: someone@example.lv")).to_be_visible()
    expect(tab.page.get_by_role("button", name="Send the message again")).to_be_visible()
    tab.check("check-mail")
    with tab.page.expect_navigation():
        tab.page.get_by_role("button", name="Use another address").click()
    expect(tab.page.locator("#email")).to_have_value("someone@example.lv")
    expect(tab.page.locator(SUMMARY)).to_have_count(0)
    tab.assert_accessible()


def test_the_rights_check_boxes_sit_beside_their_labels(tab: BrowserTab) -> None:
    tab.goto("/login")
    tab.page.locator("#email").fill(DEMO_EMAIL)
    tab.page.locator("#password").fill(DEMO_PASSWORD)
    with tab.page.expect_navigation():
        tab.page.get_by_role("button", name="Log in", exact=True).click()
    tab.goto(f"/users/{DEMO_CUSTOMER}/add")
    with tab.page.expect_navigation():
        tab.page.get_by_role("button", name="Send the invitation").click()
    summary = tab.page.locator(SUMMARY)
    expect(summary).to_be_focused()
    summary.get_by_role("link", name=re.compile("Tick at least one right")).click()
    first = tab.page.locator("#rights-0")
    expect(first).to_be_focused()
    box, label = first.bounding_box(), tab.page.locator("label[for=rights-0]").bounding_box()
    assert box and label
    # The control on the left of its label, on the same line.
    assert box["x"] + box["width"] <= label["x"]
    assert abs((box["y"] + box["height"] / 2) - (label["y"] + label["height"] / 2)) < 16
    tab.check("users-add-empty")
    tab.assert_accessible()
