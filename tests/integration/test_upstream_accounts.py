"""From a verified upstream identity to a person (docs/domain.md flows 1 and 3): who is logged
in, who is linked (only on a verified personal code at substantial/high, never on an
e-mail address), who registers, and who is told to put their customer data right.

The identities are built here the way a connector returns them (providers/ is tested
against real upstream peers in tests/providers and tests/e2e/test_bank_login.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from idp.accounts import upstream
from idp.models import Customer, Membership, UpstreamLink, UpstreamLogin, User
from idp.models.users import ACTIVE, PENDING
from idp.security import hash_secret
from idp.settings import Settings
from providers.base import VerifiedIdentity

ANNA_CODE = "01019010001"


def identity(
    code: str = ANNA_CODE,
    *,
    assurance: Any = "substantial",
    subject: str = "bank-sub-1",
    provider: str = "some-bank",
) -> VerifiedIdentity:
    return VerifiedIdentity(
        provider=provider,
        method="bank",
        subject=subject,
        country="LV",
        personal_code=code,
        given_name="Anna",
        family_name="Liepa",
        assurance=assurance,
        amr=("ext", "bank"),
        upstream_acr="urn:x",
    )


@pytest.fixture
def settings(app: Flask) -> Settings:
    return app.config["IDP_SETTINGS"]


@pytest.fixture
def in_app(app: Flask) -> Any:
    """Mail is rendered from templates: the services run inside the app, as under a view."""
    with app.app_context():
        yield


@pytest.fixture
def anna(db: Session) -> Customer:
    row = Customer(number="500600700", kind="person", name="Anna Liepa", personal_code=ANNA_CODE)
    db.add(row)
    db.commit()
    return row


def taken(db: Session, settings: Settings) -> upstream.TakenLogin:
    """A login in flight, used up by its callback (as the callback view does)."""
    now = dt.datetime.now(dt.UTC)
    row = UpstreamLogin(
        state_hash="h" * 64,
        provider="some-bank",
        pending_encrypted=b"x",
        purpose="login",
        interaction_id=None,
        expires_at=now + dt.timedelta(minutes=10),
        used_at=now,
    )
    db.add(row)
    db.flush()
    return upstream.TakenLogin("some-bank", {}, None, row.id)


def test_a_verified_code_logs_in_its_account(db: Session, settings: Settings, user: User) -> None:
    user.verified_personal_code = ANNA_CODE
    db.commit()
    result = upstream.resolve(db, settings, identity(), taken(db, settings))
    assert result.outcome is upstream.Outcome.LOGGED_IN and result.user is not None
    assert result.user.id == user.id
    assert db.scalar(select(func.count()).select_from(UpstreamLink)) == 1


def test_an_email_registered_contractor_is_linked_on_the_verified_code(
    db: Session, settings: Settings, user: User, customer: Customer
) -> None:
    # `user` registered by e-mail as contractor of `customer` (personal code 32123456785).
    result = upstream.resolve(
        db, settings, identity(customer.personal_code or ""), taken(db, settings)
    )
    assert result.outcome is upstream.Outcome.LOGGED_IN and result.user is not None
    assert result.user.id == user.id
    assert user.verified_personal_code == customer.personal_code


def test_a_low_assurance_code_never_links(
    db: Session, settings: Settings, user: User, customer: Customer
) -> None:
    result = upstream.resolve(
        db, settings, identity(customer.personal_code or "", assurance="low"), taken(db, settings)
    )
    # ... and does not make a second account for the customer either.
    assert result.outcome is upstream.Outcome.CUSTOMER_HAS_ACCOUNT
    assert user.verified_personal_code is None


def test_the_email_address_never_links(
    db: Session, settings: Settings, user: User, anna: Customer
) -> None:
    """Anna's bank identity and Jānis's account share nothing but what an attacker could
    type: an account with the same e-mail address is not logged in."""
    result = upstream.resolve(db, settings, identity(), taken(db, settings))
    assert result.outcome is upstream.Outcome.REGISTER
    assert user.verified_personal_code is None


def test_two_candidate_accounts_link_neither(
    app: Flask, db: Session, settings: Settings, user: User, customer: Customer
) -> None:
    other = User(
        email="other@example.lv", email_display="other@example.lv", name="Other", status=ACTIVE
    )
    db.add(other)
    db.flush()
    db.add(Membership(user_id=other.id, customer_id=customer.id, role="contractor"))
    db.commit()
    result = upstream.resolve(
        db, settings, identity(customer.personal_code or ""), taken(db, settings)
    )
    assert result.outcome is upstream.Outcome.CUSTOMER_HAS_ACCOUNT


def test_a_link_made_for_another_code_logs_nobody_in(
    db: Session, settings: Settings, user: User, anna: Customer
) -> None:
    user.verified_personal_code = "32123456785"
    db.add(UpstreamLink(user_id=user.id, provider="some-bank", subject="bank-sub-1"))
    db.commit()
    result = upstream.resolve(db, settings, identity(ANNA_CODE), taken(db, settings))
    assert result.outcome is upstream.Outcome.REGISTER


def test_no_customer_with_the_code(db: Session, settings: Settings) -> None:
    result = upstream.resolve(db, settings, identity("32098765438"), taken(db, settings))
    assert result.outcome is upstream.Outcome.NO_CUSTOMER


# --- flow 1: the short form ------------------------------------------------------------------


def register(db: Session, settings: Settings, email: str = "anna@example.lv") -> bool:
    result = upstream.resolve(db, settings, identity(), taken(db, settings))
    assert result.form_token
    pending = upstream.pending_registration(db, settings, result.form_token)
    assert pending is not None and pending.identity.personal_code == ANNA_CODE
    return upstream.register_verified(
        db, settings, pending, email=email, phone="+37120000001", language="en"
    )


def test_the_short_form_creates_a_pending_linked_account(
    db: Session, settings: Settings, anna: Customer, mailbox: Any, in_app: None
) -> None:
    assert register(db, settings)
    db.commit()
    new = db.scalar(select(User).where(User.email == "anna@example.lv"))
    assert new is not None and new.status == PENDING
    assert new.verified_personal_code == ANNA_CODE and new.password_hash is None
    assert new.name == "Anna Liepa" and new.phone == "+37120000001"
    membership = db.scalar(select(Membership).where(Membership.user_id == new.id))
    assert membership is not None and membership.customer_id == anna.id
    db.commit()
    assert "/register/confirm/" in mailbox.link_for("anna@example.lv")


def test_the_short_form_works_once(
    db: Session, settings: Settings, anna: Customer, in_app: None
) -> None:
    result = upstream.resolve(db, settings, identity(), taken(db, settings))
    assert result.form_token
    pending = upstream.pending_registration(db, settings, result.form_token)
    assert pending is not None
    assert upstream.register_verified(
        db, settings, pending, email="a@example.lv", phone=None, language="en"
    )
    assert not upstream.register_verified(
        db, settings, pending, email="b@example.lv", phone=None, language="en"
    )
    assert upstream.pending_registration(db, settings, result.form_token) is None
    assert db.scalar(select(func.count()).select_from(User)) == 1


def test_an_address_with_an_account_gets_mail_not_a_second_account(
    db: Session, settings: Settings, anna: Customer, user: User, mailbox: Any, in_app: None
) -> None:
    assert register(db, settings, email="JANIS.berzins@example.lv")
    db.commit()
    assert db.scalar(select(func.count()).select_from(User)) == 1
    db.commit()
    message = mailbox.wait_for("Janis.Berzins@Example.lv")
    assert message["Subject"] == "You already have an account"


def test_an_expired_form_is_gone(db: Session, settings: Settings, anna: Customer) -> None:
    result = upstream.resolve(db, settings, identity(), taken(db, settings))
    db.execute(
        update(UpstreamLogin).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    )
    assert upstream.pending_registration(db, settings, result.form_token or "") is None


# --- the callback's state ---------------------------------------------------------------------


def test_a_state_is_used_once_and_only_for_its_provider(
    app: Flask, db: Session, settings: Settings
) -> None:
    now = dt.datetime.now(dt.UTC)
    db.add(
        UpstreamLogin(
            state_hash=hash_secret("the-state"),
            provider="some-bank",
            pending_encrypted=Fernet(settings.effective_key_encryption_key).encrypt(b'{"n": 1}'),
            purpose="login",
            expires_at=now + dt.timedelta(minutes=5),
        )
    )
    db.commit()
    assert upstream.take(db, settings, "other-bank", "the-state") is None
    first = upstream.take(db, settings, "some-bank", "the-state")
    assert first is not None and first.pending == {"n": 1}
    assert upstream.take(db, settings, "some-bank", "the-state") is None
    assert upstream.take(db, settings, "some-bank", "x" * 5000) is None
    db.commit()


def test_a_callback_after_the_login_expired_finds_nothing(
    app: Flask, db: Session, settings: Settings
) -> None:
    db.add(
        UpstreamLogin(
            state_hash=hash_secret("late-state"),
            provider="some-bank",
            pending_encrypted=Fernet(settings.effective_key_encryption_key).encrypt(b"{}"),
            purpose="login",
            expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1),
        )
    )
    db.commit()
    assert upstream.take(db, settings, "some-bank", "late-state") is None
    db.commit()


def test_the_callback_page_for_an_unknown_or_used_state(client: Any) -> None:
    answer = client.get("/upstream/callback/some-bank", query_string={"state": "nope", "code": "x"})
    assert answer.status_code == 400
    assert "Start the login again" in answer.get_data(as_text=True)
    cross_site = client.post("/upstream/callback/some-bank", data={"state": "nope"})
    assert cross_site.status_code == 400  # a form_post needs no CSRF token, and is no 500


def test_bad_input_to_the_upstream_pages_gets_a_clear_answer(client: Any) -> None:
    from tests.conftest import csrf_token

    token = csrf_token(client.get("/forgot-password").get_data(as_text=True))
    unknown = client.post("/login/upstream", data={"csrf_token": token, "provider": "nope"})
    assert unknown.status_code == 200  # a page for a person (see unavailable_page)
    assert "The bank login is unavailable" in unknown.get_data(as_text=True)
    assert client.post("/login/upstream", data={"provider": "nope"}).status_code == 400
    too_long = client.post("/login/upstream", data={"csrf_token": token, "provider": "x" * 500})
    assert too_long.status_code == 303  # back to the login page
    assert client.get("/register/upstream/" + "y" * 300).status_code == 400
    assert client.get("/register/upstream/unknown").status_code == 400
    assert client.get("/contact").status_code == 303  # nobody logged in: the login page
    assert client.get("/upstream/callback/" + "z" * 300).status_code == 400


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        # Their own registration waiting for its link: "confirm your address first" (not a
        # dead end), never a second account.
        (PENDING, upstream.Outcome.CONFIRM_FIRST),
        ("inactive", upstream.Outcome.CUSTOMER_HAS_ACCOUNT),
    ],
)
def test_a_code_whose_account_cannot_log_in_is_not_linked_again(
    db: Session, settings: Settings, anna: Customer, status: str, outcome: upstream.Outcome
) -> None:
    waiting = User(
        email="anna@example.lv",
        email_display="anna@example.lv",
        name="Anna",
        status=status,
        verified_personal_code=ANNA_CODE,
    )
    db.add(waiting)
    db.commit()
    result = upstream.resolve(db, settings, identity(), taken(db, settings))
    assert result.outcome is outcome
    assert (result.form_token is not None) == (outcome is upstream.Outcome.CONFIRM_FIRST)
    db.rollback()


def test_a_banks_capitals_keep_the_customer_datas_spelling(
    db: Session, settings: Settings, in_app: None
) -> None:
    db.add(
        Customer(
            number="500600701",
            kind="person",
            name="Anna Pastāvīgā",
            given_name="Anna",
            family_name="Pastāvīgā",
            personal_code=ANNA_CODE,
        )
    )
    db.commit()
    shouting = VerifiedIdentity(
        provider="some-bank",
        method="bank",
        subject="bank-sub-9",
        country="LV",
        personal_code=ANNA_CODE,
        given_name="ANNA",
        family_name="PASTĀVĪGĀ",
        assurance="substantial",
    )
    result = upstream.resolve(db, settings, shouting, taken(db, settings))
    assert result.form_token
    pending = upstream.pending_registration(db, settings, result.form_token)
    assert pending is not None
    assert upstream.registration_name(db, pending.identity) == "Anna Pastāvīgā"
    assert upstream.register_verified(
        db, settings, pending, email="anna@example.lv", phone=None, language="en"
    )
    db.commit()
    assert db.scalar(select(User.name).where(User.email == "anna@example.lv")) == "Anna Pastāvīgā"
