"""Real-browser fixtures: the IdP in demo mode as a real server process (the e2e tests'
`demo_deployment`, fresh SQLite database, free loopback port, English pages), Debian's
headless chromium driven by Playwright, one browser context per test at a desktop or a
phone size, axe-core run on the page as it is, and full-page screenshots.

Chromium is /usr/bin/chromium from Debian (`make install-browser` installs it): never run
`playwright install`, which downloads a browser build of its own. These tests are collected
only when named (`make test-browser`, `pytest tests/browser`): there, a missing chromium or
axe-core is a failure, not a skip.

axe-core is evaluated through Playwright's `page.evaluate` (the DevTools protocol), which
the pages' Content-Security-Policy (script-src 'self', idp/security.py) does not govern;
`page.add_script_tag` would insert an inline script, which that policy blocks. So the
contexts keep the CSP (bypass_csp stays off): the pages are walked under their real policy,
and axe sees the very page state a step left (after a POST too), with no second load.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright

from tests.conftest import SmtpServer
from tests.e2e.conftest import PROJECT_ROOT, ServerProcess, demo_deployment

CHROMIUM = Path("/usr/bin/chromium")
# `make install-browser`: npm ci of tests/browser/package.json into the venv that runs pytest.
AXE_JS = Path(sys.prefix) / "browser-npm" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = PROJECT_ROOT / "test-output" / "screenshots"
# Playwright's own waits (clicks, navigations, expectations), in milliseconds.
TIMEOUT_MS = 15_000
# The sizes every page is seen at: a laptop, and a small phone (touch, mobile viewport).
SIZES: dict[str, dict[str, Any]] = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {"viewport": {"width": 360, "height": 740}, "is_mobile": True, "has_touch": True},
}
# axe impacts that fail a page (minor and moderate ones are printed, not failed).
FAILING_IMPACTS = ("serious", "critical")


class AccessibilityViolations(AssertionError):
    """axe-core found serious or critical violations (xfail marks name this type, so a test
    failing for any other reason still fails)."""


class HorizontalOverflow(AssertionError):
    """The page is wider than the phone's viewport: the person has to scroll sideways."""


@dataclass(frozen=True)
class DemoServer:
    """The demo-mode IdP (`make run`): its address and its admin commands' environment."""

    server: ServerProcess
    env: dict[str, str]

    @property
    def base_url(self) -> str:
        return self.server.base_url


@pytest.fixture(scope="session")
def demo_server(
    tmp_path_factory: pytest.TempPathFactory, smtp_server: SmtpServer
) -> Iterator[DemoServer]:
    # SQLite unless IDP_TEST_DATABASE_URL says otherwise; `make test-browser` runs on SQLite.
    with demo_deployment(
        tmp_path_factory.mktemp("browser"), smtp_server, "granian-browser.log"
    ) as (server, env):
        yield DemoServer(server, env)


@pytest.fixture(autouse=True)
def _server_logged_no_errors(demo_server: DemoServer) -> Iterator[None]:
    """After each test: the server logged no unhandled exception meanwhile."""
    offset = demo_server.server.log_size()
    yield
    text = demo_server.server.log(offset)
    assert "Traceback" not in text, f"the server logged an error:\n{text[-6000:]}"


@pytest.fixture(scope="session")
def axe_source() -> str:
    if not AXE_JS.is_file():
        pytest.fail(f"axe-core is not installed ({AXE_JS}): run `make install-browser`")
    return AXE_JS.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def chromium(playwright: Playwright) -> Iterator[Browser]:
    """Headless Debian chromium (a missing one fails: these tests run only when asked for)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: `make install-browser` installs Debian's chromium "
            "(never `playwright install`)"
        )
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
    yield browser
    browser.close()


@dataclass
class BrowserTab:
    """One page of a fresh browser context at one size, with the checks every step runs."""

    page: Page
    size: str
    test_name: str
    base_url: str
    axe_source: str
    # Per step: the serious/critical violations axe found (empty when none).
    violations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    screenshots: list[Path] = field(default_factory=list)
    # Per step on a phone: (document width, screen width) where the page is wider.
    overflows: dict[str, tuple[int, int]] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.base_url + path

    def goto(self, path: str) -> None:
        response = self.page.goto(self.url(path))
        assert response is not None and response.ok, f"GET {path}: {response and response.status}"

    def screenshot(self, step: str) -> Path:
        """test-output/screenshots/<test>-<size>-<step>.png, the whole page."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{self.test_name}-{self.size}-{step}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.screenshots.append(path)
        return path

    def run_axe(self) -> list[dict[str, Any]]:
        """All axe-core violations of the page as it is now (any impact)."""
        if not self.page.evaluate("() => typeof window.axe === 'object'"):
            self.page.evaluate(self.axe_source)
        result: list[dict[str, Any]] = self.page.evaluate(
            """async () => {
                const results = await window.axe.run(document, {resultTypes: ["violations"]});
                return results.violations.map((v) => ({
                    id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
                    targets: v.nodes.map((n) => n.target.join(" ")),
                }));
            }"""
        )
        return result

    def check(self, step: str) -> None:
        """A screenshot and an axe run of this step's page; serious or critical violations
        are kept for `assert_accessible` (the walk goes on, so a later step's keyboard or
        flow check still runs), minor and moderate ones are printed. On a phone, a page
        wider than the screen is kept for `assert_fits`."""
        self.screenshot(step)
        found = self.run_axe()
        for v in found:
            if v["impact"] not in FAILING_IMPACTS:
                print(f"axe ({self.size}, {step}): {v['impact']} {v['id']}: {v['targets']}")
        self.violations[step] = [v for v in found if v["impact"] in FAILING_IMPACTS]
        if self.size == "phone":
            width, screen = self.horizontal_overflow()
            if width > screen:
                self.overflows[step] = (width, screen)

    def assert_accessible(self) -> None:
        """Fails with every serious/critical violation of every checked step: rule id,
        impact, target selectors and the rule's help URL."""
        lines = []
        for step, found in self.violations.items():
            for v in found:
                lines.append(
                    f"  {step} ({self.size}): {v['id']} [{v['impact']}] {v['help']}\n"
                    f"    targets: {json.dumps(v['targets'], ensure_ascii=False)}\n"
                    f"    {v['helpUrl']}"
                )
        if lines:
            raise AccessibilityViolations(
                "axe-core found serious or critical violations:\n" + "\n".join(lines)
            )

    def assert_fits(self) -> None:
        """Fails with every checked phone step whose page was wider than the screen."""
        if self.overflows:
            raise HorizontalOverflow(
                "wider than the phone's screen (the person scrolls sideways):\n"
                + "\n".join(
                    f"  {step}: {width}px on a {screen}px screen"
                    for step, (width, screen) in self.overflows.items()
                )
            )

    def horizontal_overflow(self) -> tuple[int, int]:
        """(document width, screen width) of the page now. The screen width is the root
        element's clientWidth, not window.innerWidth: in a mobile context (is_mobile)
        chromium widens innerWidth to the content when the page is too wide, so
        scrollWidth <= innerWidth would hold on any page there."""
        widths: list[int] = self.page.evaluate(
            "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        viewport = self.page.viewport_size
        screen = min(widths[1], viewport["width"]) if viewport else widths[1]
        return widths[0], screen

    def focused(self) -> dict[str, str]:
        """The focused element: its tag, id, name, type, text and class."""
        info: dict[str, str] = self.page.evaluate(
            """() => {
                const e = document.activeElement;
                return {tag: e.tagName.toLowerCase(), id: e.id || "", name: e.name || "",
                        type: e.type || "", text: (e.innerText || e.value || "").trim(),
                        class: e.className || ""};
            }"""
        )
        return info

    def tab_to(self, selector: str, limit: int = 40) -> None:
        """Press Tab until `selector` has the focus (it may have it already, e.g. autofocus)."""
        for _ in range(limit):
            if self.page.evaluate("(s) => document.activeElement.matches(s)", selector):
                return
            self.page.keyboard.press("Tab")
        raise AssertionError(f"{limit} presses of Tab never reached {selector}")


@pytest.fixture(params=list(SIZES))
def size(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def _file_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


@pytest.fixture
def tab(
    request: pytest.FixtureRequest,
    chromium: Browser,
    demo_server: DemoServer,
    axe_source: str,
    size: str,
) -> Iterator[BrowserTab]:
    """A fresh context (no cookies) at `size`, in English, one page in it. After the test:
    no page broke its own Content-Security-Policy (the browser reports each refusal on the
    console; a page rewrite that adds an inline script or style shows up here)."""
    context = chromium.new_context(locale="en-GB", **SIZES[size])
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    refused: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            refused.append(f"{page.url}: {message.text}")

    page.on("console", on_console)
    name = _file_name(request.node.originalname)
    yield BrowserTab(page, size, name, demo_server.base_url, axe_source)
    context.close()
    assert not refused, "a page broke its Content-Security-Policy:\n" + "\n".join(refused)
