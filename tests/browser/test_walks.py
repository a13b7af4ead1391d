"""Whole walks in a real browser, at a desktop and a phone size, each page checked with
axe-core and photographed (test-output/screenshots/): a bank and an eParaksts login through
the demo relying page, registration by e-mail and by bank with the confirmation mail read
from the tests' SMTP server, password recovery, and the USERS flow from "Add a user" through
the invited person's acceptance in a browser of their own to History and Remove.

Elements are found by stable attributes (names, values, form actions, href endings), not by
the pages' English words, which may change.

The shared `demo_server` keeps its demo contractor and password. A walk that spends
something the DEMO bank has only once (a demo person's personal code becomes bound to an
account: Anna Liepa registering, Ilze Kalniņa accepting an invitation) or a demo customer
(200300400 registers once) runs against a demo server of its own, so the walks pass in any
order and at both sizes.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
from playwright.sync_api import Browser, ConsoleMessage, expect

from idp.demo import bank_sim
from idp.demo.eparaksts_sim import serial_number
from idp.demo.seed import DEMO_CUSTOMER, DEMO_EMAIL, DEMO_NEW_CUSTOMERS, DEMO_PASSWORD
from tests.browser.conftest import (
    SIZES,
    TIMEOUT_MS,
    BrowserTab,
    DemoServer,
    _file_name,
)
from tests.browser.test_pages import ALLOW, EMAIL_FIELD, PASSWORD_FIELD, expect_demo_result
from tests.conftest import Mailbox, SmtpServer
from tests.e2e.conftest import demo_deployment, run_idp

PASSWORD = "river copper lantern meadow"
NEW_PASSWORD = "harbour violet quarry ember"
JANIS_CODE = "32123456785"
ANNA = DEMO_NEW_CUSTOMERS[0]  # (number, given, family, code, contract)
ILZE_CODE = "15058510006"
assert bank_sim.PEOPLE[ILZE_CODE] == ("Ilze", "Kalniņa")
assert bank_sim.PEOPLE[ANNA[3]] == (ANNA[1], ANNA[2])

LOGIN_FORM = 'form[action$="/login"]:has(input[name=password])'
SUBMIT = "button[type=submit]"


# --- fixtures: a demo server of its own, and browser tabs on any server -----------------------


class SpareServers:
    """Demo servers of their own, started on first use and kept for the session, one per
    (slot, size): the walks sharing a slot use up different demo people and customers."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory, smtp: SmtpServer) -> None:
        self.tmp_path_factory = tmp_path_factory
        self.smtp = smtp
        self.stack = ExitStack()
        self.servers: dict[tuple[str, str], DemoServer] = {}

    def get(self, slot: str, size: str) -> DemoServer:
        if (slot, size) not in self.servers:
            workdir = self.tmp_path_factory.mktemp(f"browser-{slot}-{size}")
            server, env = self.stack.enter_context(
                demo_deployment(workdir, self.smtp, f"granian-{slot}-{size}.log")
            )
            self.servers[slot, size] = DemoServer(server, env)
        return self.servers[slot, size]


@pytest.fixture(scope="session")
def spare_servers(
    tmp_path_factory: pytest.TempPathFactory, smtp_server: SmtpServer
) -> Iterator[SpareServers]:
    spares = SpareServers(tmp_path_factory, smtp_server)
    with spares.stack:
        yield spares


def own_server(name: str, slot: str) -> Callable[..., Iterator[DemoServer]]:
    """The fixture `name`: the spare demo server of `slot` at this test's size. After the
    test: it logged no error meanwhile."""

    @pytest.fixture(name=name)
    def fixture(spare_servers: SpareServers, size: str) -> Iterator[DemoServer]:
        server = spare_servers.get(slot, size)
        offset = server.server.log_size()
        yield server
        text = server.server.log(offset)
        assert "Traceback" not in text, f"the server logged an error:\n{text[-6000:]}"

    return fixture


# Customer 200300400 registers by e-mail; Ilze Kalniņa accepts an invitation.
anna_by_email_server = own_server("anna_by_email_server", "email")
invitation_server = own_server("invitation_server", "email")
# Customer 300400500 (Pēteris Ozols) registers by e-mail, with the keyboard alone.
peteris_server = own_server("peteris_server", "email")
# Customer 200300400 registers by bank (Anna Liepa at the DEMO bank).
anna_by_bank_server = own_server("anna_by_bank_server", "bank")


TabFactory = Callable[[DemoServer, str], BrowserTab]


@pytest.fixture
def open_tab(
    request: pytest.FixtureRequest, chromium: Browser, axe_source: str, size: str
) -> Iterator[TabFactory]:
    """open_tab(server, who): a new browser context (another person's browser, no cookies)
    at this test's size, its screenshots named <test>_<who>. After the test: no page broke
    its Content-Security-Policy."""
    contexts = []
    refused: list[str] = []

    def factory(server: DemoServer, who: str) -> BrowserTab:
        context = chromium.new_context(locale="en-GB", **SIZES[size])
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()

        def on_console(message: ConsoleMessage) -> None:
            if "Content Security Policy" in message.text:
                refused.append(f"{page.url}: {message.text}")

        page.on("console", on_console)
        name = _file_name(f"{request.node.originalname}_{who}")
        return BrowserTab(page, size, name, server.base_url, axe_source)

    yield factory
    for context in contexts:
        context.close()
    assert not refused, "a page broke its Content-Security-Policy:\n" + "\n".join(refused)


# --- steps ---------------------------------------------------------------------------------------


def submit(tab: BrowserTab, form: str = "main form") -> None:
    """Press the submit button of `form` (the page's main form by default) and wait."""
    with tab.page.expect_navigation():
        tab.page.locator(f"{form} {SUBMIT}").first.click()


def log_in(tab: BrowserTab, email: str, password: str) -> None:
    tab.page.fill(EMAIL_FIELD, email)
    tab.page.fill(PASSWORD_FIELD, password)
    submit(tab, LOGIN_FORM)


def choose_upstream(tab: BrowserTab, provider: str) -> None:
    """On the login page: the button of an upstream (its form carries the provider name)."""
    button = tab.page.locator(
        f'form[action$="/login/upstream"]:has(input[name=provider][value="{provider}"]) button'
    )
    with tab.page.expect_navigation():
        button.click()


def at_demo_bank(tab: BrowserTab, personal_code: str, step: str) -> None:
    """The DEMO bank's own page: pick the person; back at the IdP afterwards."""
    expect(tab.page).to_have_url(re.compile(r"/demo-bank/"))
    tab.check(step)
    with tab.page.expect_navigation(url=re.compile(r"^(?!.*/demo-bank/)")):
        tab.page.locator(f'button[name=person][value="{personal_code}"]').click()


def expect_start_page(tab: BrowserTab, email: str) -> None:
    expect(tab.page).to_have_url(re.compile(re.escape(tab.url("/")) + r"(\?.*)?$"))
    expect(tab.page.locator('form[action*="logout"]')).to_be_attached()
    expect(tab.page.get_by_text(email, exact=False).first).to_be_visible()


def start_demo_login(tab: BrowserTab) -> None:
    """The demo relying page with prompt=consent (the consent page shows even when an earlier
    test allowed), its login form sent."""
    tab.goto("/demo/")
    tab.check("demo")
    tab.page.select_option("#prompt", "consent")
    submit(tab, "form:has(#prompt)")
    expect(tab.page).to_have_url(re.compile(r"/login\?interaction="))
    tab.check("login")


def allow_and_expect_result(tab: BrowserTab) -> None:
    expect(tab.page).to_have_url(re.compile(r"/consent\b"))
    expect(tab.page.locator(ALLOW)).to_be_visible()
    tab.check("consent")
    with tab.page.expect_navigation(url=re.compile(r"/demo/$")):
        tab.page.locator(ALLOW).click()
    expect_demo_result(tab)
    tab.check("result")


def mail_address(label: str) -> str:
    return f"{label}.{secrets.token_hex(4)}@example.lv"


def open_mail_link(tab: BrowserTab, mailbox: Mailbox, to: str, path: str) -> None:
    link = mailbox.link_for(to, timeout=20)
    assert link.startswith(tab.base_url + path), link
    response = tab.page.goto(link)
    assert response is not None and response.ok, f"GET {link}: {response and response.status}"


# --- 1. bank and eParaksts login through the demo relying page ----------------------------------


def test_bank_login_through_the_demo_page(tab: BrowserTab) -> None:
    start_demo_login(tab)
    choose_upstream(tab, "demo-bank")
    at_demo_bank(tab, JANIS_CODE, "bank")
    allow_and_expect_result(tab)
    expect(tab.page.get_by_text(DEMO_EMAIL).first).to_be_visible()
    tab.assert_accessible()
    tab.assert_fits()


@pytest.mark.parametrize("size", ["desktop"])
def test_eparaksts_login_through_the_demo_page(tab: BrowserTab) -> None:
    start_demo_login(tab)
    choose_upstream(tab, "demo-eparaksts")
    expect(tab.page).to_have_url(re.compile(r"/demo-eparaksts/"))
    tab.check("eparaksts")
    tab.page.check(f'input[name=person][value="{serial_number(JANIS_CODE)}"]')
    with tab.page.expect_navigation(url=re.compile(r"^(?!.*/demo-eparaksts/)")):
        tab.page.locator("button[name=action][value=login]").click()
    allow_and_expect_result(tab)
    expect(tab.page.get_by_text(DEMO_EMAIL).first).to_be_visible()
    tab.assert_accessible()
    tab.assert_fits()


# --- 2. registration by e-mail and by bank ----------------------------------------------------


def fill_registration(tab: BrowserTab, email: str) -> None:
    number, given, family, code, _contract = ANNA
    tab.page.fill("input[name=customer_number]", number)
    tab.page.fill("input[name=identifier]", f"{code[:6]}-{code[6:]}")
    tab.page.fill("input[name=name]", f"{given} {family}")
    tab.page.fill("input[name=email]", email)
    tab.page.fill("input[name=password]", PASSWORD)
    tab.page.fill("input[name=password_confirm]", PASSWORD)


def confirm_from_mail(tab: BrowserTab, mailbox: Mailbox, email: str) -> None:
    """ "Check your mailbox", the mail's link opened in this browser, the address confirmed."""
    tab.check("check-mail")
    open_mail_link(tab, mailbox, email, "/register/confirm/")
    tab.check("confirm")
    submit(tab)
    expect(tab.page).to_have_url(re.compile(r"notice=confirmed"))
    tab.check("confirmed")


def test_register_by_email(
    anna_by_email_server: DemoServer, open_tab: TabFactory, mailbox: Mailbox
) -> None:
    tab = open_tab(anna_by_email_server, "person")
    email = mail_address("anna")
    tab.goto("/login")
    tab.check("login")
    with tab.page.expect_navigation():
        tab.page.locator('a[href*="/register"]').first.click()
    expect(tab.page.locator("input[name=customer_number]")).to_be_visible()
    tab.check("register")
    fill_registration(tab, email)
    tab.check("register-filled")
    submit(tab, 'form[action$="/register"]')
    confirm_from_mail(tab, mailbox, email)
    log_in(tab, email, PASSWORD)
    expect_start_page(tab, email)
    tab.check("start")
    tab.assert_accessible()
    tab.assert_fits()


def test_register_by_bank(
    anna_by_bank_server: DemoServer, open_tab: TabFactory, mailbox: Mailbox
) -> None:
    tab = open_tab(anna_by_bank_server, "person")
    email = mail_address("anna.bank")
    tab.goto("/login")
    tab.check("login")
    choose_upstream(tab, "demo-bank")
    at_demo_bank(tab, ANNA[3], "bank")
    expect(tab.page).to_have_url(re.compile(r"/register/upstream/"))
    tab.check("register")
    tab.page.fill("input[name=email]", email)
    submit(tab)
    confirm_from_mail(tab, mailbox, email)
    # Confirmed: the same bank now logs her in.
    choose_upstream(tab, "demo-bank")
    at_demo_bank(tab, ANNA[3], "bank-again")
    expect_start_page(tab, email)
    tab.check("start")
    tab.assert_accessible()
    tab.assert_fits()


# --- 3. password recovery ------------------------------------------------------------------------


def test_password_recovery(demo_server: DemoServer, open_tab: TabFactory, mailbox: Mailbox) -> None:
    """A fresh account of its own (the demo contractor's password stays)."""
    email = mail_address("forgetful")
    run_idp(
        demo_server.env,
        "users", "create", "--email", email, "--name", "Līga Ozoliņa", "--password", PASSWORD,
    )  # fmt: skip
    tab = open_tab(demo_server, "person")
    tab.goto("/login")
    with tab.page.expect_navigation():
        tab.page.locator('a[href$="/forgot-password"]').click()
    tab.check("forgot")
    tab.page.fill(EMAIL_FIELD, email)
    submit(tab, 'form[action$="/forgot-password"]')
    tab.check("check-mail")
    open_mail_link(tab, mailbox, email, "/reset-password/")
    tab.check("new-password")
    tab.page.fill("input[name=password]", NEW_PASSWORD)
    tab.page.fill("input[name=password_confirm]", NEW_PASSWORD)
    submit(tab)
    expect(tab.page).to_have_url(re.compile(r"/login\b"))
    tab.check("changed")
    log_in(tab, email, NEW_PASSWORD)
    expect_start_page(tab, email)
    tab.check("start")
    tab.assert_accessible()
    tab.assert_fits()


# --- 4. USERS: add, the invited person accepts in a browser of their own, history, remove -------


@pytest.mark.parametrize(
    "size",
    ["desktop", "phone"],
)
def test_users_invite_accept_history_remove(
    invitation_server: DemoServer, open_tab: TabFactory, mailbox: Mailbox
) -> None:
    owner = open_tab(invitation_server, "contractor")
    owner.goto("/login")
    log_in(owner, DEMO_EMAIL, DEMO_PASSWORD)
    expect_start_page(owner, DEMO_EMAIL)
    with owner.page.expect_navigation():
        owner.page.locator('a[href$="/users"]').click()
    expect(owner.page).to_have_url(owner.url(f"/users/{DEMO_CUSTOMER}"))
    owner.check("users")
    with owner.page.expect_navigation():
        owner.page.locator(f'a[href$="/users/{DEMO_CUSTOMER}/add"]').click()
    owner.check("add")
    email = mail_address("ilze")
    owner.page.fill("input[name=name]", "Ilze Kalniņa")
    owner.page.fill("input[name=email]", email)
    owner.page.fill("input[name=personal_code]", f"{ILZE_CODE[:6]}-{ILZE_CODE[6:]}")
    owner.page.check('input[name=rights][value="invoices.read"]')
    owner.check("add-filled")
    submit(owner)
    expect(owner.page).to_have_url(owner.url(f"/users/{DEMO_CUSTOMER}"))
    expect(owner.page.locator('a[href*="/remove"]')).to_have_count(1)
    owner.check("invited")

    # Ilze, in her own browser.
    ilze = open_tab(invitation_server, "invited")
    open_mail_link(ilze, mailbox, email, "/invitation/")
    ilze.check("accept")
    ilze.page.fill("input[name=password]", PASSWORD)
    ilze.page.fill("input[name=password_confirm]", PASSWORD)
    with ilze.page.expect_navigation():
        ilze.page.locator('button[name=provider][value="demo-bank"]').click()
    at_demo_bank(ilze, ILZE_CODE, "bank")
    expect(ilze.page).to_have_url(re.compile(r"/contact\b"))
    ilze.check("contact")
    ilze.page.check("input[name=correct]")
    submit(ilze, 'form[action$="/contact"]')
    expect_start_page(ilze, email)
    expect(ilze.page.get_by_text(DEMO_CUSTOMER).first).to_be_visible()
    ilze.check("done")

    # Back as the contractor: the history of changes, then remove her.
    owner.goto(f"/users/{DEMO_CUSTOMER}")
    owner.check("users-after")
    with owner.page.expect_navigation():
        owner.page.locator(f'a[href$="/users/{DEMO_CUSTOMER}/history"]').click()
    expect(owner.page.locator("main")).to_contain_text(email)
    owner.check("history")
    owner.goto(f"/users/{DEMO_CUSTOMER}")
    with owner.page.expect_navigation():
        owner.page.locator('a[href*="/remove"]').click()
    owner.check("remove")
    submit(owner)
    expect(owner.page).to_have_url(owner.url(f"/users/{DEMO_CUSTOMER}"))
    expect(owner.page.locator('a[href*="/remove"]')).to_have_count(0)
    owner.check("removed")
    owner.assert_accessible()
    ilze.assert_accessible()
    ilze.assert_fits()
    owner.assert_fits()


# --- 5. keyboard only: the registration form ---------------------------------------------------


def test_register_by_keyboard(
    peteris_server: DemoServer, open_tab: TabFactory, mailbox: Mailbox
) -> None:
    """Every field reached with Tab in order, typed, and the form sent with Enter."""
    tab = open_tab(peteris_server, "person")
    email = mail_address("peteris.keys")
    number, given, family, code, _contract = DEMO_NEW_CUSTOMERS[1]
    tab.goto("/register")
    tab.check("register")
    typed = [
        ("customer_number", number),
        ("identifier", f"{code[:6]}-{code[6:]}"),
        ("name", f"{given} {family}"),
        ("email", email),
        ("password", PASSWORD),
        ("password_confirm", PASSWORD),
    ]
    tab.tab_to("input[name=customer_number]")
    for index, (name, value) in enumerate(typed):
        if index:
            tab.page.keyboard.press("Tab")
            if "show-password" in tab.focused().get("class", ""):
                # A password field's "Show password" button (static/forms.js) comes next.
                tab.page.keyboard.press("Tab")
        assert tab.focused()["name"] == name, f"Tab went to {tab.focused()}, not {name}"
        tab.page.keyboard.type(value)
    tab.page.keyboard.press("Tab")
    if "show-password" in tab.focused().get("class", ""):
        tab.page.keyboard.press("Tab")
    assert tab.focused()["tag"] == "button", f"after the last field: {tab.focused()}"
    with tab.page.expect_navigation():
        tab.page.keyboard.press("Enter")
    tab.check("check-mail")
    open_mail_link(tab, mailbox, email, "/register/confirm/")
    tab.tab_to(f"main form {SUBMIT}")
    with tab.page.expect_navigation():
        tab.page.keyboard.press("Enter")
    expect(tab.page).to_have_url(re.compile(r"notice=confirmed"))
    tab.assert_accessible()
    tab.assert_fits()
