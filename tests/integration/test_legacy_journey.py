"""Users of the previous portal (docs/domain.md flow 4): their first login is by bank or
eSignature with the personal code the old portal had for them, and right after it the
contact-information form must be confirmed — no code for any client until then."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.access_history import Origin
from idp.accounts import upstream
from idp.accounts.services import start_browser_session
from idp.models import Customer, Membership, UpstreamLogin, User
from providers.base import VerifiedIdentity
from tests.conftest import Browser, RegisteredClient, auth_params, csrf_token, query

CODE = "01019010001"


@pytest.fixture
def legacy(db: Session, customer: Customer) -> User:
    """As `idp users import-legacy` leaves them: no password, contact details unconfirmed."""
    row = User(
        email="old.user@example.lv",
        email_display="Old.User@example.lv",
        name="Vecais Lietotājs",
        password_hash=None,
        status="active",
        legacy=True,
        contact_confirmed=False,
        legacy_personal_code=CODE,
    )
    db.add(row)
    db.flush()
    db.add(Membership(user_id=row.id, customer_id=customer.id, role="contractor"))
    db.commit()
    return row


def bank_identity(code: str = CODE) -> VerifiedIdentity:
    return VerifiedIdentity(
        provider="bank",
        method="bank",
        subject="s-1",
        country="LV",
        personal_code=code,
        given_name="Vecais",
        family_name="Lietotājs",
        assurance="substantial",
        amr=("ext", "bank"),
    )


def resolve(app: Flask, db: Session, identity: VerifiedIdentity) -> upstream.Resolution:
    now = dt.datetime.now(dt.UTC)
    row = UpstreamLogin(
        state_hash="s" * 64,
        provider="bank",
        pending_encrypted=b"x",
        purpose="login",
        expires_at=now + dt.timedelta(minutes=5),
        used_at=now,
    )
    db.add(row)
    db.flush()
    return upstream.resolve(
        db, app.config["IDP_SETTINGS"], identity, upstream.TakenLogin("bank", {}, None, row.id)
    )


def test_a_legacy_user_cannot_log_in_with_a_password(browser: Browser, legacy: User) -> None:
    assert browser.login("old.user@example.lv", "any password at all").status_code == 401


def test_the_first_bank_login_with_their_code_finds_them(
    app: Flask, db: Session, legacy: User
) -> None:
    result = resolve(app, db, bank_identity())
    assert result.outcome is upstream.Outcome.LOGGED_IN and result.user is not None
    assert result.user.id == legacy.id
    assert result.user.verified_personal_code == CODE  # verified from now on
    db.commit()


def test_another_code_does_not_find_them(app: Flask, db: Session, legacy: User) -> None:
    result = resolve(app, db, bank_identity("32098765438"))
    assert result.outcome is upstream.Outcome.NO_CUSTOMER
    db.rollback()


def log_in_as(app: Flask, client: FlaskClient, user: User) -> None:
    from idp.db import session_factory

    with session_factory(app)() as session:
        cookie, _ = start_browser_session(
            session,
            app.config["IDP_SETTINGS"],
            session.get(User, user.id),  # type: ignore[arg-type]
            "substantial",
            ["ext", "bank"],
            Origin("127.0.0.1", "pytest"),
            "bank",
        )
        session.commit()
    client.set_cookie("idp_session", cookie, domain="localhost")


def test_no_code_until_the_contact_form_is_confirmed(
    app: Flask,
    client: FlaskClient,
    db: Session,
    legacy: User,
    mailbox: Any,
    confidential_client: RegisteredClient,
) -> None:
    log_in_as(app, client, legacy)
    silent, _ = auth_params(confidential_client, prompt="none")
    refused = query(client.get("/authorize", query_string=silent).headers["Location"])
    assert refused["error"] == "interaction_required" and "code" not in refused

    params, _ = auth_params(confidential_client)
    to_contact = client.get("/authorize", query_string=params).headers["Location"]
    assert to_contact.startswith("/contact?")
    page = client.get(to_contact)
    text = page.get_data(as_text=True)
    assert 'value="Old.User@example.lv"' in text and '<label for="correct"' in text

    form = {
        "csrf_token": csrf_token(text),
        "email": "new.address@example.lv",
        "phone": "+37120000002",
        "interaction": query(to_contact)["interaction"],
    }
    unticked = client.post("/contact", data=form)
    assert unticked.status_code == 400 and "Tick the box" in unticked.get_data(as_text=True)

    done = client.post("/contact", data={**form, "correct": "y"})
    assert done.status_code == 303 and done.headers["Location"].startswith("/authorize/resume")
    code = query(client.get(done.headers["Location"]).headers["Location"])
    assert "code" in code

    db.expire_all()
    row = db.scalar(select(User).where(User.id == legacy.id))
    assert row is not None and row.contact_confirmed and row.email == "new.address@example.lv"
    assert not row.email_verified and row.phone == "+37120000002"
    db.commit()
    assert "/register/confirm/" in mailbox.link_for("new.address@example.lv")


def test_the_contact_form_refuses_another_accounts_address(
    app: Flask, client: FlaskClient, db: Session, legacy: User, user: User
) -> None:
    log_in_as(app, client, legacy)
    page = client.get("/contact").get_data(as_text=True)
    answer = client.post(
        "/contact",
        data={"csrf_token": csrf_token(page), "email": "janis.berzins@example.lv", "correct": "y"},
    )
    assert answer.status_code == 400
    assert "Another account already uses this e-mail address." in answer.get_data(as_text=True)


def test_the_contact_form_refuses_another_accounts_address_in_russian(
    app: Flask, client: FlaskClient, db: Session, legacy: User, user: User
) -> None:
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "ru"
    log_in_as(app, client, legacy)
    page = client.get("/contact").get_data(as_text=True)
    answer = client.post(
        "/contact",
        data={"csrf_token": csrf_token(page), "email": "janis.berzins@example.lv", "correct": "y"},
    )
    assert answer.status_code == 400
    assert (
        "Этот адрес электронной почты нельзя использовать. Этот адрес электронной почты уже "
        "используется другой учётной записью. Проверьте его или укажите другой."
    ) in answer.get_data(as_text=True)
