"""Login CSRF (issue 11, point 1): a finished bank login, or a paused authorization request,
counts only in the browser that started it. Two test clients are two browsers (two cookie
jars) on a demo-mode IdP and its DEMO bank."""

from __future__ import annotations

import logging
import secrets
from typing import Any

import pytest
from flask import Flask, Response
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from idp.accounts import cookies
from idp.demo.seed import DEMO_EMAIL, DEMO_PASSWORD, PUBLIC_CLIENT_ID
from idp.models import Interaction, Membership, UpstreamProviderConfig
from tests.conftest import csrf_token, pkce_pair, query
from tests.integration.demo_people import (
    ANNA_CODE,
    NEW_PASSWORD,
    Person,
    invite,
    local,
    membership,
    text,
)

JANIS_CODE = "32123456785"  # the demo contractor, as the DEMO bank proves him
SESSION = "idp_session"
ANOTHER_BROWSER = "started in another browser or tab"


def authorize(person: Person, **extra: str) -> Any:
    """The demo relying page's authorization request in this browser."""
    _verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": PUBLIC_CLIENT_ID,
        "redirect_uri": f"{person.issuer}/demo/callback",
        "scope": "openid",
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return person.client.get("/authorize", query_string=params)


def paused(person: Person) -> str:
    """An authorization request of this browser paused for login: its interaction id."""
    answer = authorize(person)
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/login?")
    return query(answer.headers["Location"])["interaction"]


def press_bank(person: Person, interaction: str = "") -> Any:
    """The DEMO bank button of the login page."""
    page = person.client.get("/login", query_string={"interaction": interaction})
    return person.client.post(
        "/login/upstream",
        data={
            "csrf_token": csrf_token(text(page)),
            "provider": "demo-bank",
            "interaction": interaction,
        },
    )


def bank_answer(person: Person, to_bank: Any, code: str = JANIS_CODE) -> str:
    """Log in at the DEMO bank as `code`; the callback URL it sends the browser to (not
    opened)."""
    assert to_bank.status_code == 303, text(to_bank)
    html = text(person.get(to_bank.headers["Location"]))
    answer = person.client.post(
        "/demo-bank/authorize",
        data={
            "csrf_token": csrf_token(html),
            "person": code,
            "request": html.split('name="request" value="')[1].split('"')[0],
        },
    )
    assert answer.status_code == 302
    location = str(answer.headers["Location"])
    assert location.startswith(person.issuer + "/upstream/callback/demo-bank?")
    return location


def open_callback(person: Person, callback: str, method: str = "GET") -> Any:
    if method == "POST":  # response_mode=form_post: the same parameters in a POST body
        return person.client.post("/upstream/callback/demo-bank", data=query(callback))
    return person.get(callback)


def has_session(person: Person) -> bool:
    return person.client.get_cookie(SESSION) is not None


def silent_login(person: Person) -> dict[str, str]:
    """prompt=none in this browser: what the relying page gets back."""
    answer = authorize(person, prompt="none")
    assert answer.status_code == 302
    return query(answer.headers["Location"])


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_bank_login_opened_in_another_browser_logs_nobody_in(demo: Flask, method: str) -> None:
    a, b = Person(demo), Person(demo)
    interaction = paused(a)
    callback = bank_answer(a, press_bank(a, interaction))

    planted = open_callback(b, callback, method)
    assert planted.status_code == 400
    page = text(planted)
    assert ANOTHER_BROWSER in page and "You were not logged in." in page
    assert f'href="/login?interaction={interaction}"' in page
    assert not has_session(b)
    assert silent_login(b)["error"] == "login_required"
    # The state is used up: the browser that pressed the button cannot use it either now.
    late = open_callback(a, callback, method)
    assert late.status_code == 400 and not has_session(a)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_the_browser_that_pressed_the_button_is_logged_in(demo: Flask, method: str) -> None:
    a = Person(demo)
    interaction = paused(a)
    to_bank = press_bank(a, interaction)
    assert a.client.get_cookie(cookies.UPSTREAM_COOKIE, path="/upstream/callback")
    back = open_callback(a, bank_answer(a, to_bank), method)
    assert back.status_code == 303, text(back)
    assert back.headers["Location"] == f"/authorize/resume?interaction={interaction}"
    assert has_session(a)
    # Used: the binding cookie is cleared.
    assert a.client.get_cookie(cookies.UPSTREAM_COOKIE, path="/upstream/callback") is None
    resumed = a.get(back.headers["Location"])
    assert resumed.status_code == 302  # on to the consent page of the demo relying page
    assert resumed.headers["Location"].startswith("/consent?")


def test_the_login_of_another_tab_asks_to_start_again(demo: Flask) -> None:
    """A second button press (another tab) replaces the binding: the first tab's answer
    is refused and the second one still logs in."""
    a = Person(demo)
    first = bank_answer(a, press_bank(a))
    second = bank_answer(a, press_bank(a))
    refused = a.get(first)
    assert refused.status_code == 400 and ANOTHER_BROWSER in text(refused)
    assert not has_session(a)
    assert a.get(second).status_code == 303 and has_session(a)


def test_the_binding_cookies_on_plain_http_loopback(demo: Flask) -> None:
    """The demo's loopback http issuer: Secure cookies would be dropped and SameSite=None
    needs Secure, so the upstream binding is a Lax cookie (the DEMO bank comes back with a
    GET, which carries it)."""
    a = Person(demo)
    to_login = authorize(a)
    [bound] = [
        c
        for c in to_login.headers.getlist("Set-Cookie")
        if c.startswith(cookies.INTERACTION_COOKIE + "=")
    ]
    assert "HttpOnly" in bound and "SameSite=Lax" in bound and "Path=/;" in bound + ";"
    interaction = query(to_login.headers["Location"])["interaction"]
    [binding] = [
        c
        for c in press_bank(a, interaction).headers.getlist("Set-Cookie")
        if c.startswith(cookies.UPSTREAM_COOKIE + "=")
    ]
    attributes = [part.strip() for part in binding.split(";")]
    assert "Path=/upstream/callback" in attributes and "HttpOnly" in attributes
    assert "SameSite=Lax" in attributes and "Secure" not in attributes
    lifetime = demo.config["IDP_SETTINGS"].upstream_login_lifetime
    assert f"Max-Age={lifetime}" in attributes


def test_the_binding_cookie_is_samesite_none_and_secure_for_an_https_issuer(make_app: Any) -> None:
    """A form_post callback is a cross-site POST: only a SameSite=None cookie comes along,
    and browsers keep SameSite=None only with Secure."""
    app = make_app(issuer="https://idp.example.lv")
    with app.test_request_context("/login/upstream", method="POST"):
        response = Response()
        cookies.set_upstream_binding(response, "v" * 43)
        cookies.clear_upstream_binding(response)
    set_, cleared = response.headers.getlist("Set-Cookie")
    for header in (set_, cleared):
        attributes = [part.strip() for part in header.split(";")]
        assert "SameSite=None" in attributes and "Secure" in attributes, header
        assert "HttpOnly" in attributes and "Path=/upstream/callback" in attributes
    assert set_.startswith(f"{cookies.UPSTREAM_COOKIE}={'v' * 43};")
    assert f"Max-Age={app.config['IDP_SETTINGS'].upstream_login_lifetime}" in set_
    assert "Max-Age=0" in cleared


def test_another_browsers_interaction_gives_no_code_and_no_session(
    demo: Flask, db: Session
) -> None:
    a, b = Person(demo), Person(demo)
    interaction = paused(a)

    page = b.client.get("/login", query_string={"interaction": interaction})
    assert page.status_code == 200 and f'value="{interaction}"' not in text(page)
    refused = b.client.post(
        "/login",
        data={
            "csrf_token": csrf_token(text(page)),
            "email": DEMO_EMAIL,
            "password": DEMO_PASSWORD,
            "interaction": interaction,
        },
    )
    assert refused.status_code == 400, text(refused)
    assert "This login was started in another browser or tab" in text(refused)
    assert not has_session(b)
    assert silent_login(b)["error"] == "login_required"
    db.expire_all()
    row = db.scalar(select(Interaction).where(Interaction.id == interaction))
    assert row is not None and row.login_sid is None
    db.commit()
    # A's request still waits for a login in A: no code, no session.
    resumed = a.client.get("/authorize/resume", query_string={"interaction": interaction})
    assert resumed.status_code == 302 and resumed.headers["Location"].startswith("/login?")
    assert not has_session(a)
    # Nor may B resume it.
    assert (
        b.client.get("/authorize/resume", query_string={"interaction": interaction}).status_code
        == 400
    )


def test_the_bank_button_refuses_another_browsers_interaction(demo: Flask) -> None:
    a, b = Person(demo), Person(demo)
    interaction = paused(a)
    page = b.client.get("/login")
    refused = b.client.post(
        "/login/upstream",
        data={
            "csrf_token": csrf_token(text(page)),
            "provider": "demo-bank",
            "interaction": interaction,
        },
    )
    assert refused.status_code == 400 and "another browser" in text(refused)
    assert b.client.get_cookie(cookies.UPSTREAM_COOKIE, path="/upstream/callback") is None


def test_an_invitation_bank_login_opened_in_another_browser_accepts_nothing(
    demo: Flask, db: Session, mailbox: Any
) -> None:
    contractor = Person(demo)
    contractor.log_in()
    link = invite(contractor, db, mailbox)
    anna, other = Person(demo), Person(demo)
    to_bank = anna.post_page(
        link, password=NEW_PASSWORD, password_confirm=NEW_PASSWORD, provider="demo-bank"
    )
    planted = other.get(bank_answer(anna, to_bank, ANNA_CODE))
    assert planted.status_code == 400
    assert "Open the link in the invitation e-mail again" in text(planted)
    assert not has_session(other) and not has_session(anna)
    row: Membership = membership(db, "anna.liepa@example.lv")
    assert row.state == "invited" and row.accepted_at is None
    assert anna.get(local(link)).status_code == 200  # the link still works in Anna's browser


def test_the_unavailable_page_is_not_a_server_error_and_is_logged(
    demo: Flask, db: Session, caplog: pytest.LogCaptureFixture
) -> None:
    a = Person(demo)
    caplog.set_level(logging.WARNING, logger="idp.upstream")
    page = a.client.get("/login")
    unknown = a.client.post(
        "/login/upstream", data={"csrf_token": csrf_token(text(page)), "provider": "no-such-bank"}
    )
    assert unknown.status_code < 500 and "The bank login is unavailable" in text(unknown)
    assert "'no-such-bank' is unavailable" in caplog.text

    # The bank was switched off while the person was there.
    callback = bank_answer(a, press_bank(a))
    db.execute(
        update(UpstreamProviderConfig)
        .where(UpstreamProviderConfig.name == "demo-bank")
        .values(enabled=False)
    )
    db.commit()
    caplog.clear()
    off = a.get(callback)
    assert off.status_code < 500 and "The bank login is unavailable" in text(off)
    assert "'demo-bank' is unavailable" in caplog.text
    assert JANIS_CODE not in caplog.text and query(callback)["code"] not in caplog.text
    assert not has_session(a)
