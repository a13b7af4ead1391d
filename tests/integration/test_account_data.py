"""My data (issue 15, GDPR Art. 15): the person downloads, as JSON, everything the IdP holds
about them — and never a secret or a hash — after a recent login, with a CSRF-protected
form."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from idp.db import utcnow
from idp.models import (
    AccountEvent,
    AuthorizationCode,
    BrowserSession,
    Client,
    EmailLink,
    OutboxMail,
    RefreshToken,
    UpstreamLink,
    User,
)
from tests.conftest import Browser, RegisteredClient, csrf_token
from tests.integration.conftest import login_tokens
from tests.integration.demo_people import text

NUMBER = "100200300"  # the `customer` fixture; `user` (Jānis) is its contractor
CODE = "32123456785"
MAIL_BODY = b"gAAAAB-the-encrypted-body-with-a-link-token"
SECTIONS = {
    "account",
    "memberships",
    "upstream_links",
    "consents",
    "browser_sessions",
    "token_families",
    "account_events",
    "email_links_waiting",
    "mails_waiting",
}


@pytest.fixture
def janis(
    browser: Browser, db: Session, user: User, make_client: Callable[..., RegisteredClient]
) -> Browser:
    """Jānis, logged in and using the invoice app (he consented to it), with a bank login
    linked, a reset link and a mail to him waiting."""
    invoices = make_client(name="Invoice app", grant_types=["authorization_code", "refresh_token"])
    login_tokens(browser.client, browser, invoices)
    user_id = user.id
    db.execute(update(User).where(User.id == user_id).values(verified_personal_code=CODE))
    now = utcnow()
    db.add_all(
        [
            UpstreamLink(
                user_id=user_id, provider="demo-bank", subject="bank-sub-1", assurance="substantial"
            ),
            EmailLink(
                token_hash="t" * 64,
                purpose="reset_password",
                user_id=user_id,
                state_hash="s" * 64,
                expires_at=now + dt.timedelta(hours=1),
            ),
            # Due only tomorrow: the sender never reads this stand-in body.
            OutboxMail(
                to_address="Janis.Berzins@Example.lv",
                subject="Set a new password",
                body_encrypted=MAIL_BODY,
                language="lv",
                next_attempt_at=now + dt.timedelta(days=1),
            ),
        ]
    )
    db.commit()
    return browser


def _download(janis: Browser) -> Any:
    page = janis.client.get("/account/data")
    assert page.status_code == 200
    return janis.client.post("/account/data", data={"csrf_token": csrf_token(text(page))})


def _values(data: Any) -> Iterator[str]:
    """Every value in the export, as text (keys too)."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield str(key)
            yield from _values(value)
    elif isinstance(data, list):
        for value in data:
            yield from _values(value)
    elif data is not None:
        yield str(data)


def _secrets(db: Session) -> list[str]:
    """Every hash and secret the database holds."""
    db.expire_all()
    found: list[str] = []
    for column in (
        User.password_hash,
        BrowserSession.id_hash,
        RefreshToken.token_hash,
        AuthorizationCode.code_hash,
        EmailLink.token_hash,
        EmailLink.state_hash,
        Client.secret_hash,
    ):
        found += [value for value in db.scalars(select(column)) if value]
    found += [body.decode() for body in db.scalars(select(OutboxMail.body_encrypted)) if body]
    db.commit()
    return found


def test_the_page_says_what_the_download_holds(janis: Browser) -> None:
    page = janis.client.get("/account/data")
    html = text(page)
    assert page.status_code == 200
    assert "personal code" in html and "never holds your password" in html
    assert re.search(r'<form method="post" action="/account/data">', html)
    assert 'href="/account/data"' in html and 'aria-current="page"' in html


def test_the_download_holds_everything_about_the_person_and_no_secret(
    janis: Browser, db: Session
) -> None:
    answer = _download(janis)
    assert answer.status_code == 200, text(answer)
    assert answer.mimetype == "application/json"
    today = utcnow().date().isoformat()
    assert answer.headers["Content-Disposition"] == f'attachment; filename="my-data-{today}.json"'
    assert answer.headers["Cache-Control"] == "no-store"
    data = json.loads(answer.get_data(as_text=True))
    assert set(data) == SECTIONS

    account = data["account"]
    assert account["email"] == "Janis.Berzins@Example.lv" and account["name"] == "Jānis Bērziņš"
    assert account["verified_personal_code"] == CODE
    assert account["password_set"] is True and account["legacy_account"] is False
    assert dt.datetime.fromisoformat(account["created_at"]).tzinfo is not None
    (membership,) = data["memberships"]
    assert (membership["customer_number"], membership["role"]) == (NUMBER, "contractor")
    (link,) = data["upstream_links"]
    assert (link["provider"], link["upstream_subject"]) == ("demo-bank", "bank-sub-1")
    (consent,) = data["consents"]
    assert consent["application"] == "Invoice app" and "openid" in consent["scopes"]
    (family,) = data["token_families"]
    assert family["application"] == "Invoice app" and family["revoked_at"] is None
    (session,) = data["browser_sessions"]
    assert session["amr"] == ["pwd"] and session["expires_at"]
    kinds = [event["kind"] for event in data["account_events"]]
    assert kinds == ["tokens_issued", "login"]  # newest first
    assert [w["purpose"] for w in data["email_links_waiting"]] == ["reset_password"]
    (mail,) = data["mails_waiting"]
    assert (mail["subject"], mail["state"]) == ("Set a new password", "waiting")

    values = list(_values(data))
    secrets = _secrets(db)
    assert len(secrets) >= 7
    leaked = [s for s in secrets for v in values if s in v]
    assert not leaked
    for name in ("password_hash", "id_hash", "token_hash", "state_hash", "code_hash", "body"):
        assert name not in values

    # The download is in the history (not the export it was part of).
    db.expire_all()
    assert db.scalars(select(AccountEvent.kind).order_by(AccountEvent.id.desc())).first() == (
        "data_exported"
    )
    db.commit()


def test_without_the_form_token_nothing_is_downloaded(janis: Browser, db: Session) -> None:
    answer = janis.client.post("/account/data")
    assert answer.status_code == 400
    assert "application/json" not in answer.content_type
    db.expire_all()
    assert "data_exported" not in db.scalars(select(AccountEvent.kind)).all()
    db.commit()


def test_a_login_that_is_not_recent_is_confirmed_first(
    app: Flask, janis: Browser, db: Session
) -> None:
    long_ago = utcnow() - dt.timedelta(seconds=app.config["IDP_SETTINGS"].account_reauth_after + 60)
    db.execute(update(BrowserSession).values(auth_time=long_ago))
    db.commit()
    answer = _download(janis)
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/account/confirm-login?next=/account/data"
    db.expire_all()
    assert "data_exported" not in db.scalars(select(AccountEvent.kind)).all()
    db.commit()


def test_my_data_needs_a_login(client: Any, user: User) -> None:
    for answer in (client.get("/account/data"), client.post("/account/data")):
        assert answer.status_code in (303, 400)
    assert client.get("/account/data").headers["Location"] == "/login"
