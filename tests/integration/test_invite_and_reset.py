"""Accounts an admin creates from a signed application (docs/domain.md flow 5), and "Forgot
password?" — through the CLI and the HTML pages, reading the real mail."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from idp.i18n import local_minute
from idp.models import BrowserSession, Customer, EmailLink, OutboxMail, TokenFamily, User
from idp.models.users import ACTIVE, PENDING
from tests.conftest import PASSWORD, Browser, RegisteredClient, csrf_token, first_link, query
from tests.integration.conftest import login_tokens, refresh

INVITED = "Ilze.Kalnina@Example.lv"
NEW_PASSWORD = "harbour violet lamp seventeen"


def local_path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def set_password(
    client: FlaskClient, link: str, password: str = NEW_PASSWORD, again: str | None = None
) -> Any:
    page = client.get(local_path(link))
    assert page.status_code == 200, page.get_data(as_text=True)
    return client.post(
        local_path(link),
        data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "password": password,
            "password_confirm": password if again is None else again,
        },
    )


def invite(runner: Any, customer: Customer, *extra: str) -> Any:
    return runner.invoke(
        args=[
            "users",
            "invite",
            "--customer",
            customer.number,
            "--email",
            INVITED,
            "--name",
            "Ilze Kalniņa",
            "--json",
            *extra,
        ]
    )


def fetch_user(db: Session, email: str) -> User:
    db.expire_all()
    user = db.scalar(select(User).where(User.email == email.lower()))
    db.commit()
    assert user is not None
    return user


# --- flow 5: invite, activate, log in ---------------------------------------------------------


def test_an_invited_person_activates_with_a_password_and_logs_in(
    runner: Any,
    client: FlaskClient,
    db: Session,
    customer: Customer,
    mailbox: Any,
    browser: Browser,
) -> None:
    result = invite(runner, customer, "--expires-in", "72h")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["customer"] == customer.number and shown["email"] == INVITED
    expires = dt.datetime.fromisoformat(shown["link_expires_at"])
    assert dt.timedelta(hours=71) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=72)
    user = fetch_user(db, INVITED)
    assert user.status == PENDING and user.password_hash is None

    message = mailbox.wait_for(INVITED)
    assert "Activate" in message["Subject"]
    text = message.get_body(("plain",)).get_content()
    assert "Ilze Kalniņa" in text and "Jānis Bērziņš" in text  # the customer's name
    assert f"until {local_minute(expires)} (Latvian time)" in text
    link = first_link(message)
    assert "/activate/" in link

    done = set_password(client, link)
    assert done.status_code == 303 and query(done.headers["Location"])["notice"] == "activated"
    user = fetch_user(db, INVITED)
    assert user.status == ACTIVE and user.email_verified
    assert browser.login(INVITED, NEW_PASSWORD).status_code == 302
    assert client.get(local_path(link)).status_code == 404


def test_the_activation_page_refuses_a_weak_or_mismatched_password(
    runner: Any, client: FlaskClient, db: Session, customer: Customer, mailbox: Any
) -> None:
    invite(runner, customer)
    link = mailbox.link_for(INVITED)
    mismatch = set_password(client, link, again="harbour violet lamp eighteen")
    assert mismatch.status_code == 400 and "not the same" in mismatch.get_data(as_text=True)
    common = set_password(client, link, "password123456")
    assert common.status_code == 400 and "too common" in common.get_data(as_text=True)
    # The link survived the refusals.
    assert set_password(client, link).status_code == 303


def test_an_activation_link_cannot_reset_a_password(
    runner: Any, client: FlaskClient, db: Session, customer: Customer, mailbox: Any
) -> None:
    invite(runner, customer)
    token = mailbox.link_for(INVITED).rsplit("/", 1)[1]
    assert client.get(f"/reset-password/{token}").status_code == 404
    assert client.get(f"/register/confirm/{token}").status_code == 404
    assert client.get(f"/activate/{token}").status_code == 200


def test_an_expired_link_shows_a_clear_page_and_a_resent_one_voids_it(
    runner: Any, client: FlaskClient, db: Session, customer: Customer, mailbox: Any
) -> None:
    invite(runner, customer)
    old = mailbox.link_for(INVITED)
    db.execute(
        update(EmailLink).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    )
    db.commit()
    expired = client.get(local_path(old))
    assert expired.status_code == 404
    assert "ask them for a new activation link" in expired.get_data(as_text=True)

    resent = runner.invoke(
        args=["users", "resend-activation", INVITED.upper(), "--expires-in", "2d"]
    )
    assert resent.exit_code == 0, resent.output
    new = mailbox.link_for(INVITED)
    assert new != old
    assert client.get(local_path(old)).status_code == 404
    assert set_password(client, new).status_code == 303


def test_resending_voids_a_still_valid_link(
    runner: Any, client: FlaskClient, db: Session, customer: Customer, mailbox: Any
) -> None:
    invite(runner, customer)
    old = mailbox.link_for(INVITED)
    assert runner.invoke(args=["users", "resend-activation", INVITED]).exit_code == 0
    new = mailbox.link_for(INVITED)
    assert client.get(local_path(old)).status_code == 404
    assert client.get(local_path(new)).status_code == 200


def test_two_tabs_submitting_the_activation_form_activate_once(
    runner: Any, app: Flask, db: Session, customer: Customer, mailbox: Any
) -> None:
    invite(runner, customer)
    link = mailbox.link_for(INVITED)
    tabs = [app.test_client(), app.test_client()]
    pages = [tab.get(local_path(link)) for tab in tabs]
    answers = [
        tab.post(
            local_path(link),
            data={
                "csrf_token": csrf_token(page.get_data(as_text=True)),
                "password": NEW_PASSWORD,
                "password_confirm": NEW_PASSWORD,
            },
        ).status_code
        for tab, page in zip(tabs, pages, strict=True)
    ]
    assert answers == [303, 404]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--customer", "000"], "There is no customer with number 000."),
        (["--email", "not-an-address"], "not an e-mail address"),
        (["--email", "janis.berzins@example.lv"], "already exists"),
        (["--expires-in", "soon"], "use a number with s, m, h or d"),
        (["--expires-in", "0h"], "use a number with s, m, h or d"),
        (["--expires-in", "1000d"], "at most 90 days"),
        (["--name", " "], "The name must have"),
    ],
)
def test_invite_refuses_bad_input_with_one_line(
    runner: Any, db: Session, customer: Customer, user: User, args: list[str], message: str
) -> None:
    base = {"--customer": customer.number, "--email": INVITED, "--name": "Ilze Kalniņa"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    result = runner.invoke(args=["users", "invite", *[x for kv in base.items() for x in kv]])
    assert result.exit_code != 0
    assert message in result.output
    assert db.scalar(select(func.count()).select_from(OutboxMail)) == 0


def test_resend_activation_refuses_an_active_account(runner: Any, user: User) -> None:
    result = runner.invoke(args=["users", "resend-activation", user.email])
    assert result.exit_code != 0 and "not waiting for activation" in result.output


# --- forgot password -------------------------------------------------------------------------


def ask_reset(client: FlaskClient, email: str) -> Any:
    page = client.get("/forgot-password")
    return client.post(
        "/forgot-password",
        data={"csrf_token": csrf_token(page.get_data(as_text=True)), "email": email},
    )


def test_forgot_password_answers_the_same_for_known_and_unknown_addresses(
    client: FlaskClient, db: Session, user: User, mailbox: Any
) -> None:
    known = ask_reset(client, "janis.berzins@example.lv")
    unknown = ask_reset(client, "nobody@example.lv")
    assert known.status_code == unknown.status_code == 200

    def page(response: Any, email: str) -> str:
        # The page names the address typed, and its buttons carry a CSRF token; nothing
        # else may differ (it never says whether the address has an account).
        text = response.get_data(as_text=True).replace(email, "ADDRESS")
        return re.sub(r'name="csrf_token" value="[^"]*"', "CSRF", text)

    assert page(known, "janis.berzins@example.lv") == page(unknown, "nobody@example.lv")
    mailbox.wait_for(user.email_display)
    assert db.scalar(select(func.count()).select_from(OutboxMail)) == 1


def test_the_reset_link_goes_to_the_stored_address_not_the_typed_one(
    client: FlaskClient, db: Session, user: User, mailbox: Any
) -> None:
    # Typed with another case and a full-width "＠" that NFKC maps to "@".
    ask_reset(client, " JANIS.BERZINS＠EXAMPLE.LV ")
    message = mailbox.wait_for(user.email_display)
    assert message["To"] == user.email_display
    assert [m["To"] for m in mailbox.messages()] == [user.email_display]


def test_a_reset_ends_every_session_and_revokes_refresh_tokens(
    app: Flask,
    client: FlaskClient,
    db: Session,
    user: User,
    mailbox: Any,
    browser: Browser,
    confidential_client: RegisteredClient,
) -> None:
    email = user.email  # read before expire_all: a lazy load would hold SQLite's lock
    tokens = login_tokens(client, browser, confidential_client)
    assert db.scalar(select(func.count()).select_from(BrowserSession)) == 1
    db.commit()

    ask_reset(app.test_client(), user.email)
    link = mailbox.link_for(user.email_display)
    done = set_password(app.test_client(), link)
    assert done.status_code == 303
    assert query(done.headers["Location"])["notice"] == "password_changed"

    db.expire_all()
    assert db.scalar(select(func.count()).select_from(BrowserSession)) == 0
    assert (
        db.scalar(
            select(func.count()).select_from(TokenFamily).where(TokenFamily.revoked_at.is_(None))
        )
        == 0
    )
    db.commit()
    refused = refresh(client, confidential_client, tokens["refresh_token"])
    assert refused.status_code == 400 and refused.json["error"] == "invalid_grant"
    assert browser.login(email, PASSWORD).status_code == 401
    assert browser.login(email, NEW_PASSWORD).status_code == 302


def test_a_second_reset_request_within_a_minute_sends_no_second_mail(
    client: FlaskClient, db: Session, user: User, mailbox: Any
) -> None:
    ask_reset(client, user.email)
    ask_reset(client, user.email)
    mailbox.wait_for(user.email_display)
    assert db.scalar(select(func.count()).select_from(EmailLink)) == 1


def test_a_pending_account_gets_no_reset_link(
    runner: Any, client: FlaskClient, db: Session, customer: Customer, mailbox: Any
) -> None:
    invite(runner, customer)
    mailbox.wait_for(INVITED)
    ask_reset(client, INVITED)
    assert (
        db.scalar(
            select(func.count()).select_from(EmailLink).where(EmailLink.purpose == "reset_password")
        )
        == 0
    )


def test_a_password_in_another_encoding_spends_no_link(
    runner: Any, client: FlaskClient, db: Session, customer: Customer, mailbox: Any
) -> None:
    # Issue 11, point 7: a browser sending cp1257 used to store the password mangled (with
    # replacement characters) and use the link up.
    invite(runner, customer)
    link = mailbox.link_for(INVITED)
    page = client.get(local_path(link))
    token = csrf_token(page.get_data(as_text=True))
    cp1257 = "ābeļziedu pļava dārzā".encode("cp1257")
    escaped = "".join(f"%{byte:02X}" for byte in cp1257).encode()
    body = (
        b"csrf_token=" + token.encode() + b"&password=" + escaped + b"&password_confirm=" + escaped
    )
    refused = client.post(
        local_path(link), data=body, content_type="application/x-www-form-urlencoded"
    )
    assert refused.status_code == 400
    assert "Nothing was saved" in refused.get_data(as_text=True)
    assert fetch_user(db, INVITED).password_hash is None
    assert set_password(client, link).status_code == 303  # the link still works
