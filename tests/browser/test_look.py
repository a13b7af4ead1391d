"""The utility's look in a real browser (issue 14): the keyboard focus is visible in the
theme's own style, every touch target is at least 44×44 px on a phone, the USERS history
scrolls inside its own region, and another utility's configuration (name, logo, colour,
privacy notice) shows on the pages and still passes axe — a light brand colour included,
since the text and link colours are computed to keep their contrast."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from idp.demo.seed import DEMO_CUSTOMER
from tests.browser.conftest import SIZES, TIMEOUT_MS, BrowserTab, DemoServer
from tests.browser.test_pages import assert_fits, login_by_mouse
from tests.conftest import SmtpServer
from tests.e2e.conftest import demo_deployment

# Elements a person taps: buttons, the header's links, links on a line of their own, and
# check boxes and radios with their labels.
TARGETS = (
    "button, input[type=submit], .languages a, .brand, .links a, .actions a, .foot-links a, "
    ".choice label"
)
MIN_TARGET = 44


def small_targets(tab: BrowserTab) -> list[str]:
    """The visible TARGETS smaller than 44×44 px (their text and size)."""
    found: list[str] = tab.page.evaluate(
        """([selector, min]) => [...document.querySelectorAll(selector)]
            .filter((e) => e.offsetParent !== null)
            .map((e) => [e, e.getBoundingClientRect()])
            .filter(([e, r]) => r.width < min - 0.5 || r.height < min - 0.5)
            .map(([e, r]) => `${(e.innerText || e.value || "").trim()}: `
                + `${Math.round(r.width)}x${Math.round(r.height)}`)""",
        [TARGETS, MIN_TARGET],
    )
    return found


@pytest.mark.parametrize("size", ["phone"])
def test_every_touch_target_is_at_least_44_px(tab: BrowserTab) -> None:
    tab.goto("/login")
    assert not small_targets(tab), small_targets(tab)
    login_by_mouse(tab)
    for step, path in (
        ("users", f"/users/{DEMO_CUSTOMER}"),
        ("add", f"/users/{DEMO_CUSTOMER}/add"),
    ):
        tab.goto(path)
        assert not small_targets(tab), (path, small_targets(tab))
        tab.check(step)
    # The check boxes sit beside their labels, not above them.
    box = tab.page.locator(".choice input[type=checkbox]").first.bounding_box()
    label = tab.page.locator(".choice label").first.bounding_box()
    assert box and label and box["x"] + box["width"] <= label["x"], (box, label)
    assert abs((box["y"] + box["height"] / 2) - (label["y"] + label["height"] / 2)) < 12
    tab.assert_accessible()


def test_the_keyboard_focus_is_visible_in_the_brand_colour(tab: BrowserTab) -> None:
    tab.goto("/login")
    for selector in ("a[href*='forgot-password']", "button[type=submit]"):
        tab.tab_to(selector)
        outline = tab.page.evaluate(
            """() => { const s = getComputedStyle(document.activeElement);
                return [s.outlineStyle, s.outlineWidth, s.outlineColor]; }"""
        )
        # The default brand colour #0b4f6c.
        assert outline == ["solid", "3px", "rgb(11, 79, 108)"], (selector, outline)


def test_the_history_scrolls_in_its_own_region_on_a_phone(tab: BrowserTab) -> None:
    tab.goto("/login")
    login_by_mouse(tab)
    # A change, so that the history has a row: an invitation with a long address.
    tab.goto(f"/users/{DEMO_CUSTOMER}/add")
    tab.page.fill("input[name=name]", "Anna Ozoliņa-Kalniņa")
    tab.page.fill("input[name=email]", "anna.ozolina-kalnina.gramatvedibas.nodala@example.lv")
    tab.page.locator(".choice input[type=checkbox]").first.check()
    with tab.page.expect_navigation():
        tab.page.get_by_role("button", name="Send the invitation").click()
    tab.goto(f"/users/{DEMO_CUSTOMER}/history")
    expect(tab.page.locator("table.history tbody tr").first).to_be_visible()
    region = tab.page.get_by_role("region", name="History of changes")
    expect(region).to_have_attribute("tabindex", "0")
    tab.check("history")
    assert_fits(tab, "history")
    tab.goto(f"/users/{DEMO_CUSTOMER}")
    tab.check("users-with-invited")
    assert_fits(tab, "users-with-invited")
    tab.assert_accessible()


# --- another utility's look ---------------------------------------------------------------------

# A light colour: the header and buttons get dark text, links a darkened yellow.
BRAND = {
    "IDP_BRAND_NAME": '{"en": "Zemgales Gāze", "lv": "Zemgales Gāze"}',
    "IDP_BRAND_PRIMARY_COLOUR": "#ffd200",
    "IDP_BRAND_ACCENT_COLOUR": "#1d2733",
    "IDP_BRAND_LOGO": "favicon.svg",
    "IDP_BRAND_HOME_URL": "https://www.example.lv/",
    "IDP_PRIVACY_URL": "https://www.example.lv/privatums",
}


@pytest.fixture(scope="module")
def branded_server(
    tmp_path_factory: pytest.TempPathFactory, smtp_server: SmtpServer
) -> Iterator[DemoServer]:
    with demo_deployment(
        tmp_path_factory.mktemp("branded"), smtp_server, "granian-branded.log", BRAND
    ) as (server, env):
        yield DemoServer(server, env)


@pytest.fixture
def branded_tab(
    chromium: Browser, branded_server: DemoServer, axe_source: str, size: str
) -> Iterator[BrowserTab]:
    context = chromium.new_context(locale="en-GB", **SIZES[size])
    context.set_default_timeout(TIMEOUT_MS)
    refused: list[str] = []
    page = context.new_page()
    page.on(
        "console",
        lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
    )
    yield BrowserTab(page, size, "branded", branded_server.base_url, axe_source)
    context.close()
    assert not refused, refused


def test_another_utilitys_look_shows_and_passes_axe(branded_tab: BrowserTab) -> None:
    tab = branded_tab
    tab.goto("/login")
    expect(tab.page).to_have_title(re.compile(r"– Zemgales Gāze$"))
    home = tab.page.get_by_role("link", name="Zemgales Gāze")
    expect(home).to_have_attribute("href", "https://www.example.lv/")
    logo = tab.page.locator(".brand-logo")
    expect(logo).to_have_attribute("src", "/static/favicon.svg")
    assert tab.page.evaluate("() => document.querySelector('.brand-logo').naturalWidth") > 0
    colours = tab.page.evaluate(
        """() => [getComputedStyle(document.querySelector('.top')).backgroundColor,
                  getComputedStyle(document.querySelector('.brand')).color,
                  getComputedStyle(document.querySelector('button[type=submit]')).color]"""
    )
    # The configured yellow, with the body's near-black text on it (white would not read).
    assert colours == ["rgb(255, 210, 0)", "rgb(29, 39, 51)", "rgb(29, 39, 51)"], colours
    privacy = tab.page.locator("footer").get_by_role("link", name="Privacy notice")
    expect(privacy).to_have_attribute("href", "https://www.example.lv/privatums")
    expect(tab.page.locator("footer")).to_contain_text("Zemgales Gāze")
    tab.check("login")
    login_by_mouse(tab)
    tab.goto(f"/users/{DEMO_CUSTOMER}")
    tab.check("users")
    tab.assert_accessible()
