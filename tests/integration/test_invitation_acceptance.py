"""An invited person accepts (docs/domain.md flow 6): the contractor adds them in USERS, the mail
arrives, they choose a password (unless they have an account), prove who they are at the
DEMO bank — a real OpenID provider (idp/demo/bank_sim.py) that the IdP's OIDC connector
reaches over real HTTP — and confirm the contact form; only then is the membership active.
A bank login that proves someone else is refused and recorded."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from idp.accounts.services import create_user
from idp.demo import bank_sim
from idp.demo.seed import DEMO_CUSTOMER
from idp.models import AuditEvent, BrowserSession, UpstreamProviderConfig, User
from tests.conftest import PASSWORD
from tests.integration.demo_people import (
    ANNA,
    ANNA_CODE,
    NEW_PASSWORD,
    PETERIS_CODE,
    Person,
    invite,
    local,
    membership,
    text,
)


def invited_at_the_bank(
    demo: Flask, db: Session, mailbox: Any, code: str, personal_code: str = ""
) -> tuple[Person, Person, str, Any]:
    """Jānis adds Anna (typing `personal_code`, if any); the invited person opens the link,
    chooses a password and proves `code` at the DEMO bank. (contractor, invited person,
    link, the IdP's answer to the bank's callback)."""
    contractor = Person(demo)
    contractor.log_in()
    link = invite(contractor, db, mailbox, personal_code=personal_code)
    person = Person(demo)
    to_bank = person.post_page(
        link, password=NEW_PASSWORD, password_confirm=NEW_PASSWORD, provider="demo-bank"
    )
    return contractor, person, link, person.at_the_bank(to_bank, code)


def test_an_added_user_activates_with_a_password_the_bank_and_the_contact_form(
    demo: Flask, db: Session, mailbox: Any
) -> None:
    contractor = Person(demo)
    contractor.log_in()
    link = invite(contractor, db, mailbox)

    anna = Person(demo)
    page = anna.get(link)
    html = text(page)
    assert page.status_code == 200
    assert "Jānis Bērziņš (janis.berzins@example.lv) added you, Anna Liepa" in html
    assert "View invoices" in html and "Report meter readings" not in html
    assert 'name="password"' in html and 'name="password_confirm"' in html
    assert "Continue with DEMO bank (internet bank)" in html
    assert "Continue with DEMO eParaksts (eSignature)" in html

    # The password rules of the activation page apply; nothing starts without them.
    short = anna.post_page(link, password="short", password_confirm="short", provider="demo-bank")
    assert short.status_code == 400 and "Use at least" in text(short)
    assert membership(db, ANNA).user.password_hash is None

    to_bank = anna.post_page(
        link, password=NEW_PASSWORD, password_confirm=NEW_PASSWORD, provider="demo-bank"
    )
    back = anna.at_the_bank(to_bank, ANNA_CODE)
    assert back.status_code == 303 and back.headers["Location"] == "/contact"
    row = membership(db, ANNA)
    assert row.state == "invited" and row.accepted_at is not None  # not active yet
    assert row.user.status == "active" and row.user.verified_personal_code == ANNA_CODE
    assert demo.extensions["idp.passwords"].verify(row.user.password_hash, NEW_PASSWORD)

    done = anna.confirm_contact()
    assert done.status_code == 303 and done.headers["Location"] == "/"
    home = text(anna.get("/"))
    assert "You can now act for Jānis Bērziņš (customer 100200300)." in home
    assert 'href="/users"' not in home  # an additional user manages nobody

    row = membership(db, ANNA)
    assert (row.state, row.rights, row.role) == ("active", ["invoices.read"], "additional_user")
    db.expire_all()
    assert list(db.scalars(select(AuditEvent.action).order_by(AuditEvent.id))) == [
        "invited",
        "activated",
    ]
    session = db.scalar(select(BrowserSession).where(BrowserSession.user_id == row.user_id))
    assert session is not None and session.acr == "substantial"
    db.commit()

    listing = text(contractor.get(f"/users/{DEMO_CUSTOMER}"))
    assert "Anna Liepa" in listing and "Active" in listing and "Invited" not in listing
    assert anna.get(link).status_code == 404  # the link is used up
    assert anna.get(f"/users/{DEMO_CUSTOMER}").status_code == 403
    Person(demo).log_in(ANNA, NEW_PASSWORD)  # the chosen password works


def test_a_bank_login_that_proves_another_person_is_refused(
    demo: Flask, db: Session, mailbox: Any
) -> None:
    contractor, someone, link, refused = invited_at_the_bank(
        demo, db, mailbox, PETERIS_CODE, personal_code="010190-10001"
    )
    assert refused.status_code == 403
    assert "confirmed a different person than the one who was invited" in text(refused)
    assert "check the personal code" in text(refused)
    assert "idp_session=" not in refused.headers.get("Set-Cookie", "")  # nobody logged in

    row = membership(db, ANNA)
    assert row.state == "invited" and row.accepted_at is None
    assert row.user.status == "pending" and row.user.verified_personal_code is None
    db.expire_all()
    event = db.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert event is not None and event.action == "invitation_refused"
    assert event.details["reason"] == "wrong_person" and event.subject_email == ANNA
    db.commit()
    assert someone.get(link).status_code == 404  # used up: the contractor sends a new one
    history = text(contractor.get(f"/users/{DEMO_CUSTOMER}/history"))
    assert "Invitation refused at the bank or eSignature login" in history


def test_an_existing_account_gets_a_new_membership_not_a_second_account(
    demo: Flask, db: Session, mailbox: Any
) -> None:
    create_user(
        db,
        demo.extensions["idp.passwords"],
        email="peteris@example.lv",
        name="Pēteris Ozols",
        password=PASSWORD,
        customer_number="300400500",
    )
    db.commit()
    users_before = db.scalar(select(func.count()).select_from(User))
    db.commit()
    contractor = Person(demo)
    contractor.log_in()
    link = invite(
        contractor,
        db,
        mailbox,
        email="Peteris@Example.lv",
        name="P. Ozols",
        personal_code=PETERIS_CODE,
        rights=("invoices.read", "meter_readings.submit"),
    )

    peteris = Person(demo)
    html = text(peteris.get(link))
    assert 'name="password"' not in html and "Continue with DEMO bank" in html
    back = peteris.at_the_bank(peteris.post_page(link, provider="demo-bank"), PETERIS_CODE)
    assert back.status_code == 303 and back.headers["Location"] == "/contact"
    assert peteris.confirm_contact().status_code == 303

    db.expire_all()
    assert db.scalar(select(func.count()).select_from(User)) == users_before
    db.commit()
    row = membership(db, "peteris@example.lv")
    assert row.state == "active"
    assert row.rights == ["invoices.read", "meter_readings.submit"]
    assert row.user.name == "Pēteris Ozols"  # the account is theirs; the invite named it
    own = membership(db, "peteris@example.lv", "300400500")
    assert (own.role, own.state) == ("contractor", "active")
    Person(demo).log_in("peteris@example.lv", PASSWORD)  # their password is unchanged


def test_a_code_that_belongs_to_another_account_is_refused(
    demo: Flask, db: Session, mailbox: Any
) -> None:
    other = create_user(
        db,
        demo.extensions["idp.passwords"],
        email="anna.old@example.lv",
        name="Anna Liepa",
        password=PASSWORD,
    )
    other.verified_personal_code = ANNA_CODE
    db.commit()
    _contractor, _anna, _link, refused = invited_at_the_bank(demo, db, mailbox, ANNA_CODE)
    assert refused.status_code == 409
    assert "already uses another customer portal account" in text(refused)
    assert demo.config["IDP_SETTINGS"].support_contact_in("en") in text(refused)
    row = membership(db, ANNA)
    assert row.state == "invited" and row.user.verified_personal_code is None


def test_cancelling_at_the_bank_keeps_the_link(demo: Flask, db: Session, mailbox: Any) -> None:
    contractor = Person(demo)
    contractor.log_in()
    link = invite(contractor, db, mailbox)

    anna = Person(demo)
    to_bank = anna.post_page(
        link, password=NEW_PASSWORD, password_confirm=NEW_PASSWORD, provider="demo-bank"
    )
    cancelled = anna.at_the_bank(to_bank, None)
    assert cancelled.status_code == 200
    assert "open the link in the invitation e-mail again" in text(cancelled)
    assert anna.get(link).status_code == 200
    back = anna.at_the_bank(
        anna.post_page(
            link, password=NEW_PASSWORD, password_confirm=NEW_PASSWORD, provider="demo-bank"
        ),
        ANNA_CODE,
    )
    assert back.headers["Location"] == "/contact"


def test_a_low_assurance_login_cannot_accept_and_keeps_the_link(
    demo: Flask, db: Session, mailbox: Any
) -> None:
    # The DEMO bank configured so that what it asserts counts as low assurance: too little
    # to bind a personal code to an account (the rule of upstream.LINKING_ASSURANCE).
    bank = db.scalar(
        select(UpstreamProviderConfig).where(UpstreamProviderConfig.name == "demo-bank")
    )
    assert bank is not None
    bank.options = {**bank.options, "acr_map": {bank_sim.ACR: "low"}}
    db.commit()
    _contractor, anna, link, refused = invited_at_the_bank(demo, db, mailbox, ANNA_CODE)
    assert refused.status_code == 403
    assert "choose another internet bank or eSignature" in text(refused)
    assert demo.config["IDP_SETTINGS"].support_contact_in("en") in text(refused)
    row = membership(db, ANNA)
    assert (row.state, row.accepted_at) == ("invited", None)
    assert (row.user.status, row.user.verified_personal_code) == ("pending", None)
    db.commit()
    assert anna.get(link).status_code == 200  # the link still works


def test_the_invitation_page_refuses_bad_input(demo: Flask, db: Session, mailbox: Any) -> None:
    contractor = Person(demo)
    contractor.log_in()
    link = invite(contractor, db, mailbox)
    anna = Person(demo)
    for data in (
        {
            "password": NEW_PASSWORD,
            "password_confirm": "another one entirely",
            "provider": "demo-bank",
        },
        {"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD},
        {"password": "x" * 5000, "password_confirm": "x" * 5000, "provider": "demo-bank"},
    ):
        answer = anna.post_page(link, **data)
        assert answer.status_code == 400, data
    no_bank = anna.post_page(link, password=NEW_PASSWORD, password_confirm=NEW_PASSWORD)
    assert "Choose your internet bank or eSignature" in text(no_bank)
    unknown = anna.post_page(
        link, password=NEW_PASSWORD, password_confirm=NEW_PASSWORD, provider="no-such-bank"
    )
    assert unknown.status_code == 200 and "The bank login is unavailable" in text(unknown)
    without_csrf = anna.client.post(
        local(link),
        data={"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD, "provider": "demo-bank"},
    )
    assert without_csrf.status_code == 400
    assert anna.get("/invitation/" + "x" * 2000).status_code == 404
    row = membership(db, ANNA)
    assert row.state == "invited" and row.user.password_hash is None
