"""A pending, never-confirmed registration never locks the real person out (issue 11, point
6): a new registration replaces it, a bank login offers "confirm first" with resend and
another address, the right password hears "confirm first", and `idp db purge` removes the
ones whose link expired. Mail goes through the real SMTP server of the tests."""

from __future__ import annotations

import datetime as dt
import html
import re
import secrets
import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from idp.accounts import registration, upstream
from idp.housekeeping import purge_expired
from idp.models import Customer, EmailLink, Membership, UpstreamLink, UpstreamLogin, User
from idp.models.users import ACTIVE, PENDING
from idp.security import hash_secret
from idp.settings import Settings
from tests.conftest import Browser, csrf_token
from tests.integration.test_registration import NEW_PASSWORD, confirm, local_path, register
from tests.integration.test_upstream_accounts import ANNA_CODE, identity

MISTYPED = "anna.lipea@example.lv"
RIGHT = "anna.liepa@example.lv"


@pytest.fixture
def settings(app: Flask) -> Settings:
    return app.config["IDP_SETTINGS"]


@pytest.fixture
def anna(db: Session) -> Customer:
    # The customer data of tests/integration/test_registration.py's form.
    row = Customer(
        number="500600700",
        kind="person",
        name="Anna Liepa",
        given_name="Anna",
        family_name="Liepa",
        personal_code=ANNA_CODE,
    )
    db.add(row)
    db.commit()
    return row


def age_links(db: Session, minutes: int = 5) -> None:
    """Past the pause that swallows double submissions and resend clicks."""
    db.execute(
        update(EmailLink).values(created_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes))
    )
    db.commit()


def count(db: Session, model: Any) -> int:
    db.expire_all()
    n = db.scalar(select(func.count()).select_from(model)) or 0
    db.commit()
    return n


def user_named(db: Session, email: str) -> User | None:
    db.expire_all()
    row = db.scalar(select(User).where(User.email == email))
    db.commit()
    return row


# --- flow 2: a mistyped address, then the right one -------------------------------------------


def test_registering_again_with_the_right_address_replaces_the_mistyped_one(
    client: FlaskClient, db: Session, anna: Customer, mailbox: Any, browser: Browser
) -> None:
    assert register(client, email=MISTYPED).status_code == 200
    first = mailbox.link_for(MISTYPED)

    second = register(client, email=RIGHT)
    assert second.status_code == 200, second.get_data(as_text=True)
    assert "Check your mailbox" in second.get_data(as_text=True)
    link = mailbox.link_for(RIGHT)
    assert user_named(db, MISTYPED) is None  # the pending one is gone, with its membership
    assert count(db, Membership) == 1

    assert client.get(local_path(first)).status_code == 404  # its link died
    assert confirm(client, link).status_code == 303
    assert browser.login(RIGHT, NEW_PASSWORD).status_code == 302


def test_an_active_account_of_the_customer_still_refuses_a_second_one(
    client: FlaskClient, db: Session, anna: Customer, mailbox: Any
) -> None:
    register(client, email=MISTYPED)
    assert confirm(client, mailbox.link_for(MISTYPED)).status_code == 303
    again = register(client, email=RIGHT)
    assert again.status_code == 422
    assert "already has an account" in again.get_data(as_text=True)
    assert user_named(db, MISTYPED) is not None and user_named(db, RIGHT) is None


def test_an_admin_invited_account_awaiting_activation_is_never_replaced(
    app: Flask, client: FlaskClient, db: Session, anna: Customer, settings: Settings, mailbox: Any
) -> None:
    with app.app_context():
        registration.invite_user(
            db,
            settings,
            customer_number=anna.number,
            email="invited@example.lv",
            name="Anna Liepa",
            lifetime=dt.timedelta(days=3),
        )
        db.commit()
    answer = register(client, email=RIGHT)
    assert answer.status_code == 422
    invited = user_named(db, "invited@example.lv")
    assert invited is not None and invited.status == PENDING
    assert user_named(db, RIGHT) is None


# --- the password login of an unconfirmed account ---------------------------------------------


def test_the_right_password_of_an_unconfirmed_account_offers_to_send_the_link_again(
    client: FlaskClient, db: Session, anna: Customer, mailbox: Any, browser: Browser
) -> None:
    register(client, email=RIGHT)
    first = mailbox.link_for(RIGHT)

    wrong = browser.login(RIGHT, "not the password at all")
    assert wrong.status_code == 401
    assert "The e-mail or password is not right" in wrong.get_data(as_text=True)
    assert "Confirm your e-mail address first" not in wrong.get_data(as_text=True)

    right = browser.login(RIGHT, NEW_PASSWORD)
    assert right.status_code == 403
    page = right.get_data(as_text=True)
    assert "Confirm your e-mail address first" in page
    assert 'action="/register/resend"' in page

    age_links(db)
    resent = client.post(
        "/register/resend", data={"csrf_token": csrf_token(page), "email": RIGHT, "interaction": ""}
    )
    assert resent.status_code == 200
    assert "we sent it a new link" in resent.get_data(as_text=True)
    link = mailbox.link_for(RIGHT)
    assert link != first
    assert client.get(local_path(first)).status_code == 404
    assert confirm(client, link).status_code == 303
    assert browser.login(RIGHT, NEW_PASSWORD).status_code == 302


def test_send_again_answers_the_same_and_sends_nothing_for_others(
    client: FlaskClient, db: Session, anna: Customer, user: User, mailbox: Any
) -> None:
    token = csrf_token(client.get("/login").get_data(as_text=True))
    register(client, email=RIGHT)
    mailbox.link_for(RIGHT)
    before = len(mailbox.messages())
    emails = (
        RIGHT,  # sent less than a minute ago: nothing new
        user.email,  # an active account
        "nobody@example.lv",
        "<script>@example.lv",
    )
    answers = [
        client.post("/register/resend", data={"csrf_token": token, "email": email})
        for email in emails
    ]
    assert {a.status_code for a in answers} == {200}

    def page(answer: Any, email: str) -> str:
        # The page repeats the address typed and its buttons carry a CSRF token: nothing
        # else may differ.
        text = answer.get_data(as_text=True).replace(html.escape(email), "ADDRESS")
        return re.sub(r'name="csrf_token" value="[^"]*"', "CSRF", text)

    assert len({page(a, e) for a, e in zip(answers, emails, strict=True)}) == 1
    db.commit()
    time.sleep(0.5)  # anything wrongly sent would have arrived by now
    assert len(mailbox.messages()) == before


# --- flow 1: registered by bank, never confirmed, back at the bank ----------------------------


def bank_login(db: Session, settings: Settings) -> upstream.Resolution:
    """The callback of a bank login by Anna (what idp/accounts/upstream_views.callback does
    with the connector's VerifiedIdentity)."""
    now = dt.datetime.now(dt.UTC)
    row = UpstreamLogin(
        state_hash=hash_secret(secrets.token_urlsafe(16)),
        provider="some-bank",
        pending_encrypted=b"x",
        purpose="login",
        interaction_id=None,
        expires_at=now + dt.timedelta(minutes=10),
        used_at=now,
    )
    db.add(row)
    db.flush()
    result = upstream.resolve(
        db, settings, identity(), upstream.TakenLogin("some-bank", {}, None, row.id)
    )
    db.commit()
    return result


def short_form(client: FlaskClient, token: str, email: str) -> Any:
    page = client.get(f"/register/upstream/{token}").get_data(as_text=True)
    return client.post(
        f"/register/upstream/{token}",
        data={"csrf_token": csrf_token(page), "email": email, "phone": ""},
    )


def test_a_bank_registration_never_confirmed_offers_resend_and_another_address(
    app: Flask, client: FlaskClient, db: Session, anna: Customer, settings: Settings, mailbox: Any
) -> None:
    first = bank_login(db, settings)
    assert first.outcome is upstream.Outcome.REGISTER and first.form_token
    assert short_form(client, first.form_token, MISTYPED).status_code == 200
    old_link = mailbox.link_for(MISTYPED)

    again = bank_login(db, settings)
    assert again.outcome is upstream.Outcome.CONFIRM_FIRST and again.form_token
    page = client.get(f"/register/upstream/{again.form_token}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Confirm your e-mail address first" in html and MISTYPED in html
    assert f'action="/register/upstream/{again.form_token}/resend"' in html

    # Send it again: a new link to the same address, the old one dead.
    age_links(db)
    resent = client.post(
        f"/register/upstream/{again.form_token}/resend", data={"csrf_token": csrf_token(html)}
    )
    assert resent.status_code == 200
    assert "We sent a new link" in resent.get_data(as_text=True)
    resent_link = mailbox.link_for(MISTYPED)
    assert resent_link != old_link
    assert client.get(local_path(old_link)).status_code == 404

    # Another address: the pending registration is replaced, the link goes there.
    answer = short_form(client, again.form_token, RIGHT)
    assert answer.status_code == 200
    assert "Check your mailbox" in answer.get_data(as_text=True)
    new_link = mailbox.link_for(RIGHT)
    assert user_named(db, MISTYPED) is None
    assert client.get(local_path(resent_link)).status_code == 404
    assert confirm(client, new_link).status_code == 303
    account = user_named(db, RIGHT)
    assert account is not None and account.status == ACTIVE
    assert account.verified_personal_code == ANNA_CODE
    assert count(db, UpstreamLink) == 1 and count(db, Membership) == 1
    # The next bank login logs in.
    assert bank_login(db, settings).outcome is upstream.Outcome.LOGGED_IN


def test_the_confirm_first_page_is_bound_to_the_bank_login(
    client: FlaskClient, db: Session, anna: Customer, settings: Settings, mailbox: Any
) -> None:
    first = bank_login(db, settings)
    assert first.form_token
    short_form(client, first.form_token, MISTYPED)
    mailbox.link_for(MISTYPED)
    token = csrf_token(client.get("/login").get_data(as_text=True))
    # The used-up form token of the first login, or a guess, opens nothing.
    for guess in (first.form_token, "guess"):
        assert (
            client.post(
                f"/register/upstream/{guess}/resend", data={"csrf_token": token}
            ).status_code
            == 400
        )
        assert (
            client.post(
                f"/register/upstream/{guess}", data={"csrf_token": token, "email": RIGHT}
            ).status_code
            == 400
        )
    assert user_named(db, MISTYPED) is not None and user_named(db, RIGHT) is None


def test_a_bank_login_replaces_a_pending_registration_by_email(
    client: FlaskClient, db: Session, anna: Customer, settings: Settings, mailbox: Any
) -> None:
    register(client, email=MISTYPED)
    first = mailbox.link_for(MISTYPED)
    result = bank_login(db, settings)
    assert result.outcome is upstream.Outcome.REGISTER and result.form_token
    assert short_form(client, result.form_token, RIGHT).status_code == 200
    assert confirm(client, mailbox.link_for(RIGHT)).status_code == 303
    assert user_named(db, MISTYPED) is None
    assert client.get(local_path(first)).status_code == 404


# --- idp db purge -----------------------------------------------------------------------------


def test_purge_removes_old_pending_registrations_only(
    app: Flask,
    client: FlaskClient,
    db: Session,
    anna: Customer,
    settings: Settings,
    user: User,
    mailbox: Any,
) -> None:
    lifetime = settings.confirmation_link_lifetime
    other = Customer(
        number="500600701", kind="person", name="Ilze Koka", personal_code="01019010002"
    )
    third = Customer(
        number="500600702", kind="person", name="Pēteris Ozols", personal_code="32098765438"
    )
    db.add_all([other, third])
    db.commit()
    register(client, email="old@example.lv")  # by e-mail, for Anna
    bank = bank_login(db, settings)  # by bank, Anna too: replaces the one above
    assert bank.form_token
    short_form(client, bank.form_token, "oldbank@example.lv")
    with app.app_context():
        registration.invite_user(
            db,
            settings,
            customer_number=other.number,
            email="invited@example.lv",
            name="Ilze Koka",
            lifetime=dt.timedelta(days=30),
        )
        db.commit()
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=lifetime + 60)
    db.execute(update(User).values(created_at=long_ago))
    db.execute(
        update(EmailLink).values(
            created_at=long_ago, expires_at=long_ago + dt.timedelta(seconds=lifetime)
        )
    )
    # ... but the invitation's own link still runs, and so does a young registration's.
    db.execute(
        update(EmailLink)
        .where(EmailLink.purpose == "activate")
        .values(expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    )
    db.commit()
    register(
        client, email="young@example.lv", customer_number=third.number, identifier="320987-65438"
    )
    assert user_named(db, "young@example.lv") is not None

    counts = purge_expired(
        db, settings.login_failure_window, lifetime, settings.access_history_days
    )
    db.commit()
    assert counts["pending_registrations"] == 1
    assert user_named(db, "oldbank@example.lv") is None
    assert count(db, UpstreamLink) == 0
    for kept in ("young@example.lv", "invited@example.lv", user.email):
        assert user_named(db, kept) is not None, kept
    # Through the command too (nothing left to remove).
    result = app.test_cli_runner().invoke(args=["db", "purge", "--json"])
    assert result.exit_code == 0, result.output
    assert '"pending_registrations": 0' in result.output
