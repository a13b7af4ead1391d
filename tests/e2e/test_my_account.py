"""My account over real HTTP (issue 15): the running IdP (granian, a real database, the
tests' SMTP server), browsers as requests sessions. What each action must really do:
a withdrawn consent kills the app's refresh token and the next login asks again; "log out
everywhere else" and a changed password send the other browser back to the login page."""

from __future__ import annotations

import re
from collections.abc import Callable

import requests

from tests.conftest import Mailbox, csrf_token
from tests.e2e.conftest import (
    HTTP_TIMEOUT,
    Browser,
    LiveServer,
    Person,
    redeem_code,
    refresh,
)

NEW_PASSWORD = "copper lantern orchard ninety"


def logged_in(browser: Browser, live_server: LiveServer) -> requests.Response:
    """The person's "My account" page in this browser (a 303 to /login when logged out)."""
    return browser.get(live_server.issuer + "/account")


def post_form(browser: Browser, page_url: str, action: str, **data: str) -> requests.Response:
    page = browser.get(page_url)
    assert page.status_code == 200, page.text[:2000]
    return browser.http.post(
        action,
        data={"csrf_token": csrf_token(page.text), **data},
        allow_redirects=False,
        timeout=HTTP_TIMEOUT,
    )


def test_a_withdrawn_consent_ends_the_apps_refresh_token_and_the_next_login_asks_again(
    live_server: LiveServer, person: Person, browser_for: Callable[[Person], Browser]
) -> None:
    app = live_server.confidential
    browser = browser_for(person)
    code, verifier = browser.obtain_code(app)
    assert browser.pages == ["/login", "/consent"]
    tokens = redeem_code(live_server.base_url, app, code, verifier).json()
    assert refresh(live_server.base_url, app, tokens["refresh_token"]).status_code == 200

    apps_url = live_server.issuer + "/account/apps"
    page = browser.get(apps_url)
    assert page.status_code == 200 and "Gas portal (e2e)" in page.text
    withdraw = re.search(r'href="(/account/apps/\d+/withdraw)"', page.text)
    assert withdraw, page.text[:3000]
    question = live_server.issuer + withdraw.group(1)
    answer = post_form(browser, question, question)
    assert answer.status_code == 303, answer.text[:2000]
    assert withdraw.group(1) not in browser.get(apps_url).text

    # The rotated refresh token from before the withdrawal no longer works.
    latest = refresh(live_server.base_url, app, tokens["refresh_token"])
    assert latest.status_code == 400 and latest.json()["error"] == "invalid_grant"
    browser.pages.clear()
    browser.obtain_code(app)
    assert browser.pages == ["/consent"]  # still logged in, but asked again


def test_log_out_everywhere_else_sends_the_other_browser_to_the_login(
    live_server: LiveServer, person: Person, browser_for: Callable[[Person], Browser]
) -> None:
    here, there = browser_for(person), browser_for(person)
    here.obtain_code(live_server.confidential)
    there.obtain_code(live_server.confidential)
    assert logged_in(there, live_server).status_code == 200
    sessions_url = live_server.issuer + "/account/sessions"
    answer = post_form(here, sessions_url, live_server.issuer + "/account/sessions/end-others")
    assert answer.status_code == 303, answer.text[:2000]
    assert logged_in(here, live_server).status_code == 200
    gone = logged_in(there, live_server)
    assert gone.status_code == 303 and gone.headers["Location"].endswith("/login")


def test_a_changed_password_ends_the_other_sessions_and_says_so_by_mail(
    live_server: LiveServer,
    person: Person,
    browser_for: Callable[[Person], Browser],
    mailbox: Mailbox,
) -> None:
    here, there = browser_for(person), browser_for(person)
    here.obtain_code(live_server.confidential)
    code, verifier = there.obtain_code(live_server.confidential)
    tokens = redeem_code(live_server.base_url, live_server.confidential, code, verifier).json()
    password_url = live_server.issuer + "/account/password"
    answer = post_form(
        here,
        password_url,
        password_url,
        current=person.password,
        password=NEW_PASSWORD,
        password_confirm=NEW_PASSWORD,
    )
    assert answer.status_code == 303, answer.text[:2000]
    notice = mailbox.wait_for(person.email, timeout=20)
    assert notice["Subject"] == "Your password was changed"
    assert logged_in(here, live_server).status_code == 200
    gone = logged_in(there, live_server)
    assert gone.status_code == 303 and gone.headers["Location"].endswith("/login")
    refused = refresh(live_server.base_url, live_server.confidential, tokens["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
