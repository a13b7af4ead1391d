"""Acting for a customer, the services behind the USERS section and the admin commands
(docs/domain.md flows 6 and 7): invitations to additional users and authorised persons, rights
changed and revoked with the person's tokens for that customer, authorisations that expire,
and the invited person's side — a bank or eSignature login that must prove the right person.

Real database, real SMTP server, the real eParaksts connector to start the upstream login;
the identities coming back are built as a connector returns them (the connectors are tested
against real peers in tests/providers)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from idp.accounts import invitations, upstream
from idp.accounts.invitations import AcceptanceOutcome, InvitationError
from idp.audit import Action, Actor
from idp.db import utcnow
from idp.delegation import services
from idp.delegation.services import DelegationError
from idp.i18n import local_date, local_minute
from idp.memberships.rights import MembershipState, Role
from idp.models import (
    AuditEvent,
    Client,
    Customer,
    EmailLink,
    Membership,
    TokenFamily,
    UpstreamLink,
    User,
)
from idp.models.users import ACTIVE, PENDING
from idp.settings import Settings
from providers.base import ConnectorConfig, VerifiedIdentity
from providers.eparaksts import EparakstsProvider, build
from tests.conftest import ISSUER, PASSWORD, Mailbox, RegisteredClient, text_body

ILZE = "Ilze.Kalna@Example.lv"
ILZE_CODE = "32111111114"
OTHER_CODE = "32222222220"
HERE = "192.0.2.10"
CALLBACK = ISSUER + "/upstream/callback/eparaksts"
BINDING = "b" * 32  # the browser-binding cookie of the person's browser


@pytest.fixture
def settings(app: Flask) -> Settings:
    return app.config["IDP_SETTINGS"]


@pytest.fixture
def in_app(app: Flask) -> Iterator[None]:
    """Mail is rendered from templates: the services run inside the app, as under a view."""
    with app.app_context():
        yield


@pytest.fixture
def contractor(user: User) -> Actor:
    """Jānis, the contractor of `customer`, working in the USERS section."""
    return Actor.person(user, HERE)


@pytest.fixture
def company(db: Session) -> Customer:
    row = Customer(
        number="900800700",
        kind="company",
        name="Gāzes Serviss SIA",
        registration_number="40003000001",
    )
    db.add(row)
    db.commit()
    return row


@pytest.fixture
def esignature() -> EparakstsProvider:
    """The real connector: starting a login needs no network."""
    return build(
        ConnectorConfig(
            name="eparaksts",
            method="esignature",
            display_name="eParaksts",
            base_url="https://eidas.eparaksts.lv",
            client_id="idp",
            client_secret="secret",
            kind="eparaksts",
        )
    )


def identity(code: str = ILZE_CODE, subject: str = "eps-ilze") -> VerifiedIdentity:
    return VerifiedIdentity(
        provider="eparaksts",
        method="esignature",
        subject=subject,
        country="LV",
        personal_code=code,
        given_name="Ilze",
        family_name="Kalna",
        assurance="high",
        amr=("ext", "sc"),
    )


def invite(
    db: Session,
    settings: Settings,
    customer: Customer,
    actor: Actor,
    *,
    email: str = ILZE,
    rights: Any = ("invoices.read",),
    personal_code: str | None = None,
) -> services.Invitation:
    invitation = services.invite_additional_user(
        db,
        settings,
        customer=customer,
        email=email,
        name="Ilze Kalna",
        personal_code=personal_code,
        rights=rights,
        evidence=None,
        actor=actor,
    )
    db.commit()
    return invitation


def token_of(link: str) -> str:
    path = urlsplit(link).path
    assert path.startswith("/invitation/"), link
    return path.removeprefix("/invitation/")


def events(db: Session, action: Action | None = None) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.id)
    if action is not None:
        query = query.where(AuditEvent.action == action.value)
    return list(db.scalars(query))


def family(db: Session, rp: RegisteredClient, user_id: int, customer_id: int | None) -> str:
    client_pk = db.scalar(select(Client.id).where(Client.client_id == rp.client_id))
    assert client_pk is not None
    row = TokenFamily(
        id=secrets.token_hex(16),
        client_id=client_pk,
        user_id=user_id,
        customer_id=customer_id,
        scope="openid",
        auth_time=0,
        expires_at=utcnow() + dt.timedelta(days=1),
    )
    db.add(row)
    db.commit()
    return row.id


def revoked(db: Session, family_id: str) -> bool:
    db.expire_all()
    row = db.get(TokenFamily, family_id)
    assert row is not None
    return row.revoked_at is not None


def active_member(
    db: Session,
    customer: Customer,
    email: str,
    role: Role = Role.ADDITIONAL_USER,
    rights: list[str] | None = None,
    **values: Any,
) -> Membership:
    """A membership that is already active (its invitation accepted long ago)."""
    person = db.scalar(select(User).where(User.email == email.lower()))
    if person is None:
        person = User(
            email=email.lower(),
            email_display=email,
            name=email.split("@")[0],
            status=ACTIVE,
            email_verified=True,
        )
        db.add(person)
        db.flush()
    row = Membership(
        user_id=person.id,
        customer_id=customer.id,
        role=role,
        rights=rights if rights is not None else ["invoices.read"],
        state="active",
        **values,
    )
    db.add(row)
    db.commit()
    return row


# --- inviting -----------------------------------------------------------------------------------


def test_a_new_address_gets_a_pending_account_an_invited_membership_and_a_working_link(
    db: Session,
    settings: Settings,
    in_app: None,
    customer: Customer,
    user: User,
    contractor: Actor,
    mailbox: Mailbox,
) -> None:
    invitation = invite(db, settings, customer, contractor)
    assert not invitation.existing_account
    message = mailbox.wait_for(ILZE)
    body = text_body(message)
    assert customer.name in message["Subject"]
    assert "Janis.Berzins@Example.lv added you" in body
    assert "view invoices" in body and "report meter readings" not in body
    assert "choose a password" in body
    assert f"until {local_minute(invitation.expires_at)} (Latvian time)" in body

    person = db.scalar(select(User).where(User.email == ILZE.lower()))
    assert person is not None and person.status == PENDING and person.password_hash is None
    membership = db.scalar(select(Membership).where(Membership.user_id == person.id))
    assert membership is not None
    assert (membership.role, membership.state, membership.rights) == (
        Role.ADDITIONAL_USER,
        MembershipState.INVITED,
        ["invoices.read"],
    )
    assert membership.granted_by_user_id == user.id and membership.customer_id == customer.id

    pending = invitations.check_invitation(db, token_of(services_link(body)))
    assert pending is not None and pending.needs_password
    assert (pending.membership.id, pending.user.id, pending.customer.id) == (
        membership.id,
        person.id,
        customer.id,
    )
    # Checking (the GET of the page) does not use the link up.
    assert invitations.check_invitation(db, token_of(services_link(body))) is not None

    [event] = events(db)
    assert (event.action, event.actor, event.actor_user_id, event.origin) == (
        "invited",
        "Janis.Berzins@Example.lv",
        user.id,
        HERE,
    )
    assert (event.customer_number, event.subject_email) == (customer.number, ILZE)
    assert event.details["rights"] == ["invoices.read"] and event.details["new_account"]
    db.commit()


def services_link(body: str) -> str:
    return next(word for word in body.split() if word.startswith(ISSUER + "/invitation/"))


def test_an_existing_account_gets_a_new_membership_never_a_second_account(
    db: Session,
    settings: Settings,
    in_app: None,
    customer: Customer,
    user: User,
    company: Customer,
    mailbox: Mailbox,
) -> None:
    # Jānis, contractor of his own customer, is added to a company's profile by an admin.
    invitation = invite(
        db,
        settings,
        company,
        Actor.cli(),
        email="janis.berzins@example.lv",
        rights=["invoices.read", "meter_readings.submit"],
    )
    assert invitation.existing_account and invitation.user.id == user.id
    body = text_body(mailbox.wait_for("Janis.Berzins@Example.lv"))
    assert "the utility added you" in body
    assert "view invoices" in body and "report meter readings" in body
    assert "choose a password" not in body

    assert db.scalar(select(func.count()).select_from(User)) == 1
    roles = {m.customer_id: (m.role, m.state) for m in db.scalars(select(Membership))}
    assert roles == {
        customer.id: ("contractor", "active"),
        company.id: ("additional_user", "invited"),
    }
    pending = invitations.check_invitation(db, token_of(services_link(body)))
    assert pending is not None and not pending.needs_password
    db.commit()


def test_a_second_invitation_while_one_is_live_is_refused_and_a_revoked_one_is_reused(
    db: Session, settings: Settings, in_app: None, customer: Customer, contractor: Actor
) -> None:
    first = invite(db, settings, customer, contractor)
    with pytest.raises(
        DelegationError,
        match=r"already acts for customer 100200300 \(Additional user, Invited\)\. "
        "Send the invitation again instead",
    ):
        invite(db, settings, customer, contractor, email=ILZE.upper())
    db.rollback()

    services.revoke(db, membership=first.membership, actor=contractor)
    db.commit()
    again = invite(db, settings, customer, contractor, rights=["meter_readings.submit"])
    assert again.membership.id == first.membership.id
    assert again.existing_account
    db.expire_all()
    row = db.get(Membership, first.membership.id)
    assert row is not None
    assert (row.state, row.rights) == ("invited", ["meter_readings.submit"])
    assert (
        db.scalar(
            select(func.count())
            .select_from(Membership)
            .where(Membership.customer_id == customer.id, Membership.role == "additional_user")
        )
        == 1
    )
    assert events(db)[-1].details["previous_state"] == "revoked"
    db.commit()


@pytest.mark.parametrize(
    ("rights", "message"),
    [
        (["users.manage"], "An additional user cannot be given users.manage"),
        (["invoices.read,users.manage"], "An additional user cannot be given users.manage"),
        ([], "Choose at least one right"),
        ([" , "], "Choose at least one right"),
        (["invoices.write"], "Unknown right 'invoices.write'"),
    ],
)
def test_an_additional_user_gets_only_grantable_rights(
    db: Session,
    settings: Settings,
    in_app: None,
    customer: Customer,
    contractor: Actor,
    rights: list[str],
    message: str,
) -> None:
    with pytest.raises(DelegationError, match=message):
        invite(db, settings, customer, contractor, rights=rights)
    db.rollback()
    assert db.scalar(select(func.count()).select_from(User)) == 1  # only the contractor
    assert events(db) == []
    db.commit()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("personal_code", "123", "Personal code: A personal code has 11 digits, not 3."),
        ("email", "not-an-address", "not an e-mail address"),
        ("name", "  ", "The name must have 1 to 255 characters."),
    ],
)
def test_bad_input_is_one_clear_refusal(
    db: Session,
    settings: Settings,
    in_app: None,
    customer: Customer,
    contractor: Actor,
    field: str,
    value: str,
    message: str,
) -> None:
    kwargs: dict[str, Any] = {"email": ILZE, "name": "Ilze", "personal_code": None}
    kwargs[field] = value
    with pytest.raises(DelegationError, match=message):
        services.invite_additional_user(
            db,
            settings,
            customer=customer,
            rights=["invoices.read"],
            evidence=None,
            actor=contractor,
            **kwargs,
        )
    db.rollback()


def test_a_typed_personal_code_is_normalised_and_kept_for_the_acceptance(
    db: Session, settings: Settings, in_app: None, customer: Customer, contractor: Actor
) -> None:
    invitation = invite(db, settings, customer, contractor, personal_code="321111-11114")
    assert invitation.membership.invited_personal_code == ILZE_CODE
    assert events(db)[0].details["personal_code_required"] is True
    db.commit()


# --- the USERS section's reads ---------------------------------------------------------------


def test_members_lists_the_contractor_first_and_member_refuses_another_customers_id(
    db: Session,
    settings: Settings,
    in_app: None,
    customer: Customer,
    user: User,
    company: Customer,
    contractor: Actor,
) -> None:
    zane = active_member(db, customer, "zane@example.lv")
    authorised = active_member(db, customer, "aivars@example.lv", Role.AUTHORISED_PERSON, [])
    invited = invite(db, settings, customer, contractor).membership
    foreign = active_member(db, company, "other@example.lv")

    listed = services.members(db, customer.id)
    assert [m.id for m in listed][:2] == [user.memberships[0].id, authorised.id]
    assert {m.id for m in listed[2:]} == {zane.id, invited.id}
    assert all(m.user is not None and m.customer.id == customer.id for m in listed)

    assert services.member(db, customer.id, zane.id) is not None
    assert services.member(db, customer.id, foreign.id) is None  # a tampered id
    assert services.shown_rights(authorised) == [
        "invoices.read",
        "meter_readings.submit",
        "users.manage",
    ]
    db.commit()


def test_contractors_and_authorised_persons_manage_users_additional_users_do_not(
    db: Session, customer: Customer, user: User, company: Customer
) -> None:
    now = utcnow()
    assert services.may_manage(db, user.id, customer.id, now)
    assert [c.id for c in services.managed_customers(db, user.id, now)] == [customer.id]
    helper = active_member(
        db,
        customer,
        "zane@example.lv",
        rights=["invoices.read", "meter_readings.submit", "users.manage"],
    )
    assert not services.may_manage(db, helper.user_id, customer.id, now)  # stored, not held
    assert services.managed_customers(db, helper.user_id, now) == []
    assert not services.may_manage(db, user.id, company.id, now)

    authorised = active_member(
        db,
        company,
        "aivars@example.lv",
        Role.AUTHORISED_PERSON,
        [],
        valid_until=now + dt.timedelta(hours=1),
    )
    assert services.may_manage(db, authorised.user_id, company.id, now)
    assert not services.may_manage(
        db, authorised.user_id, company.id, now + dt.timedelta(hours=2)
    )  # the authorisation ended
    db.commit()


# --- changing, revoking, resending --------------------------------------------------------------


def test_changing_rights_revokes_that_users_tokens_for_that_customer_only(
    db: Session,
    customer: Customer,
    user: User,
    company: Customer,
    contractor: Actor,
    confidential_client: RegisteredClient,
) -> None:
    zane = active_member(db, customer, "zane@example.lv", rights=["invoices.read"])
    active_member(db, company, "zane@example.lv", rights=["invoices.read"])
    for_customer = family(db, confidential_client, zane.user_id, customer.id)
    for_company = family(db, confidential_client, zane.user_id, company.id)
    janis_family = family(db, confidential_client, user.id, customer.id)

    services.change_rights(db, membership=zane, rights=["meter_readings.submit"], actor=contractor)
    db.commit()
    assert revoked(db, for_customer)
    assert not revoked(db, for_company) and not revoked(db, janis_family)
    row = db.get(Membership, zane.id)
    assert row is not None and row.rights == ["meter_readings.submit"]
    [event] = events(db, Action.RIGHTS_CHANGED)
    assert event.details["previous"] == ["invoices.read"]
    assert event.details["rights"] == ["meter_readings.submit"]
    assert (event.actor_user_id, event.origin) == (user.id, HERE)

    # The same set again changes nothing and records nothing.
    services.change_rights(db, membership=row, rights=["meter_readings.submit"], actor=contractor)
    db.commit()
    assert len(events(db, Action.RIGHTS_CHANGED)) == 1
    db.commit()


def test_only_an_additional_users_rights_change_and_only_to_grantable_ones(
    db: Session, customer: Customer, user: User, contractor: Actor
) -> None:
    with pytest.raises(DelegationError, match="Only an additional user's rights"):
        services.change_rights(
            db, membership=user.memberships[0], rights=["invoices.read"], actor=contractor
        )
    zane = active_member(db, customer, "zane@example.lv")
    with pytest.raises(DelegationError, match="cannot be given users.manage"):
        services.change_rights(db, membership=zane, rights=["users.manage"], actor=contractor)
    with pytest.raises(DelegationError, match="at least one right"):
        services.change_rights(db, membership=zane, rights=[], actor=contractor)
    db.rollback()


def test_revoking_ends_the_membership_its_tokens_and_its_invitation_link(
    db: Session,
    settings: Settings,
    in_app: None,
    customer: Customer,
    user: User,
    contractor: Actor,
    mailbox: Mailbox,
    confidential_client: RegisteredClient,
) -> None:
    zane = active_member(db, customer, "zane@example.lv")
    zane_family = family(db, confidential_client, zane.user_id, customer.id)
    services.revoke(db, membership=zane, actor=contractor, reason="left the company")
    invited = invite(db, settings, customer, contractor)
    token = token_of(mailbox.link_for(ILZE))
    assert invitations.check_invitation(db, token) is not None
    services.revoke(db, membership=invited.membership, actor=contractor)
    db.commit()

    assert revoked(db, zane_family)
    assert invitations.check_invitation(db, token) is None
    states = {m.id: m.state for m in db.scalars(select(Membership))}
    assert states[zane.id] == states[invited.membership.id] == "revoked"
    first, second = events(db, Action.REVOKED)
    assert first.details["reason"] == "left the company"
    assert first.details["previous_state"] == "active"
    assert second.details["previous_state"] == "invited"
    with pytest.raises(DelegationError, match="has already ended"):
        services.revoke(db, membership=db.get(Membership, zane.id), actor=contractor)
    db.rollback()


def test_contractors_and_authorised_persons_are_removed_only_by_an_admin(
    db: Session, customer: Customer, user: User, contractor: Actor
) -> None:
    authorised = active_member(db, customer, "aivars@example.lv", Role.AUTHORISED_PERSON, [])
    peer = active_member(db, customer, "zane@example.lv", Role.AUTHORISED_PERSON, [])
    helper = active_member(db, customer, "ilze@example.lv", Role.ADDITIONAL_USER, ["invoices.read"])
    as_authorised = Actor.person(authorised.user, HERE)
    for target in (user.memberships[0], peer, authorised):
        with pytest.raises(DelegationError, match="Only the utility can do this"):
            services.revoke(db, membership=target, actor=as_authorised)
        with pytest.raises(DelegationError, match="Only the utility can do this"):
            services.revoke(db, membership=target, actor=contractor)
    # Nobody removes themselves either.
    with pytest.raises(DelegationError, match="You cannot remove yourself"):
        services.revoke(db, membership=helper, actor=Actor.person(helper.user, HERE))
    assert {m.state for m in (user.memberships[0], peer, authorised, helper)} == {"active"}
    services.revoke(db, membership=user.memberships[0], actor=Actor.cli())
    db.commit()
    [event] = events(db, Action.REVOKED)
    assert event.origin == "cli" and event.actor.startswith("admin (CLI: ")
    assert event.actor_user_id is None
    db.commit()


def test_resending_voids_only_that_memberships_earlier_link(
    db: Session,
    settings: Settings,
    in_app: None,
    customer: Customer,
    company: Customer,
    contractor: Actor,
    mailbox: Mailbox,
) -> None:
    # Ilze is invited by two customers: two live links.
    by_janis = invite(db, settings, customer, contractor)
    first = token_of(mailbox.link_for(ILZE))
    invite(db, settings, company, Actor.cli())
    by_company = token_of(mailbox.link_for(ILZE))
    assert invitations.check_invitation(db, first) is not None
    assert invitations.check_invitation(db, by_company) is not None

    again = services.resend_invitation(
        db, settings, membership=by_janis.membership, actor=contractor
    )
    db.commit()
    newer = token_of(mailbox.link_for(ILZE))
    assert again.expires_at > utcnow()
    assert invitations.check_invitation(db, first) is None
    assert invitations.check_invitation(db, by_company) is not None
    pending = invitations.check_invitation(db, newer)
    assert pending is not None and pending.membership.id == by_janis.membership.id
    [event] = events(db, Action.INVITATION_RESENT)
    assert event.customer_number == customer.number and event.origin == HERE
    db.commit()


def test_only_a_waiting_invitation_is_resent(
    db: Session, settings: Settings, in_app: None, customer: Customer, contractor: Actor
) -> None:
    zane = active_member(db, customer, "zane@example.lv")
    with pytest.raises(DelegationError, match="is not waiting for an invitation"):
        services.resend_invitation(db, settings, membership=zane, actor=contractor)
    db.rollback()


# --- flow 7: authorised persons -----------------------------------------------------------------


def test_an_authorised_person_is_invited_with_every_right_until_the_end_date(
    db: Session, settings: Settings, in_app: None, customer: Customer, mailbox: Mailbox
) -> None:
    until = services.end_of_local_day(dt.date.today() + dt.timedelta(days=30))
    invitation = services.invite_authorised_person(
        db,
        settings,
        customer=customer,
        email="aivars@example.lv",
        name="Aivars Ozols",
        until=until,
        evidence="application 2026/17",
        actor=Actor.cli(),
    )
    db.commit()
    body = text_body(mailbox.wait_for("aivars@example.lv"))
    membership = invitation.membership
    assert (membership.role, membership.state, membership.valid_until) == (
        "authorised_person",
        "invited",
        until,
    )
    assert services.shown_rights(membership) == [
        "invoices.read",
        "meter_readings.submit",
        "users.manage",
    ]
    assert membership.evidence == "application 2026/17"
    last_day = dt.date.today() + dt.timedelta(days=30)
    assert f"valid to the end of {local_date(last_day)} (Latvian time)" in body
    # Deadlines in mails are in Latvian time, as on the pages (Riga is never UTC).
    assert f"Approve it by {local_minute(invitation.expires_at)} (Latvian time)" in body
    assert invitation.expires_at.strftime("%Y-%m-%d %H:%M") not in body
    lifetime = dt.timedelta(seconds=settings.activation_link_lifetime)
    assert abs(invitation.expires_at - (utcnow() + lifetime)) < dt.timedelta(minutes=1)
    db.commit()


def test_the_approval_deadline_never_outlives_the_authorisation(
    db: Session, settings: Settings, in_app: None, customer: Customer
) -> None:
    until = utcnow() + dt.timedelta(hours=1)
    invitation = services.invite_authorised_person(
        db,
        settings,
        customer=customer,
        email="aivars@example.lv",
        name="Aivars Ozols",
        until=until,
        evidence="copy of the authorisation",
        actor=Actor.cli(),
    )
    db.commit()
    assert invitation.expires_at == until
    link = db.scalar(select(EmailLink).where(EmailLink.membership_id == invitation.membership.id))
    assert link is not None and abs(link.expires_at - until) < dt.timedelta(seconds=5)
    db.commit()


@pytest.mark.parametrize(
    ("until", "evidence", "message"),
    [
        (-1, "application 1", "must be in the future"),
        (30, "  ", "on what evidence"),
    ],
)
def test_an_authorisation_needs_a_future_end_and_evidence(
    db: Session,
    settings: Settings,
    in_app: None,
    customer: Customer,
    until: int,
    evidence: str,
    message: str,
) -> None:
    with pytest.raises(DelegationError, match=message):
        services.invite_authorised_person(
            db,
            settings,
            customer=customer,
            email="aivars@example.lv",
            name="Aivars",
            until=utcnow() + dt.timedelta(days=until),
            evidence=evidence,
            actor=Actor.cli(),
        )
    db.rollback()


def test_an_authorisation_past_its_end_expires_with_its_tokens(
    db: Session, customer: Customer, confidential_client: RegisteredClient
) -> None:
    now = utcnow()
    ended = active_member(
        db,
        customer,
        "aivars@example.lv",
        Role.AUTHORISED_PERSON,
        [],
        valid_until=now - dt.timedelta(minutes=1),
    )
    running = active_member(
        db,
        customer,
        "zane@example.lv",
        Role.AUTHORISED_PERSON,
        [],
        valid_until=now + dt.timedelta(days=1),
    )
    ended_family = family(db, confidential_client, ended.user_id, customer.id)

    assert services.expire_due(db, now) == 1
    db.commit()
    assert services.expire_due(db, now) == 0  # already done: nothing twice
    db.commit()
    db.expire_all()
    assert db.get(Membership, ended.id).state == "expired"  # type: ignore[union-attr]
    assert db.get(Membership, running.id).state == "active"  # type: ignore[union-attr]
    assert revoked(db, ended_family)
    [event] = events(db, Action.EXPIRED)
    assert (event.actor, event.origin, event.actor_user_id) == ("system", "system", None)
    assert event.subject_email == "aivars@example.lv"
    db.commit()


def test_an_invitation_past_the_end_of_its_authorisation_expires_and_its_link_dies(
    db: Session, settings: Settings, in_app: None, customer: Customer, mailbox: Mailbox
) -> None:
    services.invite_authorised_person(
        db,
        settings,
        customer=customer,
        email="aivars@example.lv",
        name="Aivars Ozols",
        until=utcnow() + dt.timedelta(minutes=10),
        evidence="application 5",
        actor=Actor.cli(),
    )
    db.commit()
    token = token_of(mailbox.link_for("aivars@example.lv"))
    assert invitations.check_invitation(db, token) is not None
    later = utcnow() + dt.timedelta(minutes=11)
    assert services.expire_due(db, later) == 1
    db.commit()
    assert invitations.check_invitation(db, token) is None
    db.commit()


# --- the invited person's side ------------------------------------------------------------------


def start(
    db: Session,
    settings: Settings,
    connector: EparakstsProvider,
    token: str,
    password_hash: str | None,
) -> upstream.TakenLogin:
    """begin_acceptance, then the callback's take() with the state the browser brings."""
    target = invitations.begin_acceptance(
        db,
        settings,
        connector,
        token=token,
        password_hash=password_hash,
        callback_url=CALLBACK,
        browser_binding=BINDING,
    )
    db.commit()
    state = parse_qs(urlsplit(target).query)["state"][0]
    taken = upstream.take(db, settings, "eparaksts", state)
    assert taken is not None
    db.commit()
    return taken


@pytest.fixture
def password_hash(app: Flask) -> str:
    return str(app.extensions["idp.passwords"].hash(PASSWORD))


def test_accepting_with_the_right_code_then_confirming_the_contact_form_activates(
    db: Session,
    settings: Settings,
    in_app: None,
    customer: Customer,
    contractor: Actor,
    mailbox: Mailbox,
    esignature: EparakstsProvider,
    password_hash: str,
) -> None:
    invitation = invite(db, settings, customer, contractor, personal_code=ILZE_CODE)
    token = token_of(mailbox.link_for(ILZE))

    taken = start(db, settings, esignature, token, password_hash)
    assert (taken.purpose, taken.password_hash) == ("invitation", password_hash)
    # The link stays live until the bank or eSignature login comes back.
    assert invitations.check_invitation(db, token) is not None

    result = invitations.finish_acceptance(db, settings, taken, identity(), HERE)
    db.commit()
    assert result.outcome is AcceptanceOutcome.ACCEPTED
    assert result.user is not None and result.customer is not None
    assert result.customer.id == customer.id
    person = db.get(User, invitation.user.id)
    assert person is not None
    assert (
        person.status,
        person.email_verified,
        person.verified_personal_code,
        person.contact_confirmed,
        person.password_hash,
    ) == (ACTIVE, True, ILZE_CODE, False, password_hash)
    assert (
        db.scalar(select(UpstreamLink.subject).where(UpstreamLink.user_id == person.id))
        == "eps-ilze"
    )
    membership = db.get(Membership, invitation.membership.id)
    assert membership is not None
    assert membership.state == "invited" and membership.accepted_at is not None
    assert invitations.check_invitation(db, token) is None  # used up

    activated = invitations.activate_accepted(db, person, "198.51.100.7")
    db.commit()
    assert [m.id for m in activated] == [membership.id]
    db.expire_all()
    membership = db.get(Membership, invitation.membership.id)
    assert membership is not None
    assert membership.state == "active" and membership.valid_from is not None
    [event] = events(db, Action.ACTIVATED)
    assert (event.actor, event.actor_user_id, event.origin) == (ILZE, person.id, "198.51.100.7")
    assert invitations.activate_accepted(db, person, HERE) == []  # nothing left to activate
    db.commit()


def test_a_low_assurance_login_is_refused_and_keeps_the_link(
    db: Session,
    settings: Settings,
    in_app: None,
    customer: Customer,
    contractor: Actor,
    mailbox: Mailbox,
    esignature: EparakstsProvider,
    password_hash: str,
) -> None:
    invitation = invite(db, settings, customer, contractor, personal_code=ILZE_CODE)
    token = token_of(mailbox.link_for(ILZE))
    taken = start(db, settings, esignature, token, password_hash)

    weak = dataclasses.replace(identity(), assurance="low")
    result = invitations.finish_acceptance(db, settings, taken, weak, HERE)
    db.commit()
    assert result.outcome is AcceptanceOutcome.TOO_WEAK
    assert invitations.check_invitation(db, token) is not None  # still live
    person = db.get(User, invitation.user.id)
    assert person is not None and person.status == PENDING
    assert person.verified_personal_code is None
    assert db.scalar(select(UpstreamLink).where(UpstreamLink.user_id == person.id)) is None
    [event] = events(db, Action.INVITATION_REFUSED)  # the inviter sees why it is stuck
    assert event.details == {"reason": "too_weak", "provider": "eparaksts"}
    # A substantial login (an internet bank) is enough.
    again = start(db, settings, esignature, token, password_hash)
    substantial = dataclasses.replace(identity(), assurance="substantial")
    assert (
        invitations.finish_acceptance(db, settings, again, substantial, HERE).outcome
        is AcceptanceOutcome.ACCEPTED
    )
    db.commit()


def test_a_low_assurance_login_on_a_dead_link_says_the_link_is_used(
    db: Session,
    settings: Settings,
    in_app: None,
    customer: Customer,
    contractor: Actor,
    mailbox: Mailbox,
    esignature: EparakstsProvider,
    password_hash: str,
) -> None:
    invitation = invite(db, settings, customer, contractor)
    token = token_of(mailbox.link_for(ILZE))
    taken = start(db, settings, esignature, token, password_hash)
    services.revoke(db, membership=invitation.membership, actor=Actor.cli())
    db.commit()

    weak = dataclasses.replace(identity(), assurance="low")
    result = invitations.finish_acceptance(db, settings, taken, weak, HERE)
    db.commit()
    assert result.outcome is AcceptanceOutcome.LINK_USED  # not "try another method"
    assert events(db, Action.INVITATION_REFUSED) == []
    db.commit()


def test_a_login_proving_another_code_is_refused_and_uses_the_link_up(
    db: Session,
    settings: Settings,
    in_app: None,
    customer: Customer,
    contractor: Actor,
    mailbox: Mailbox,
    esignature: EparakstsProvider,
    password_hash: str,
) -> None:
    invitation = invite(db, settings, customer, contractor, personal_code=ILZE_CODE)
    token = token_of(mailbox.link_for(ILZE))
    taken = start(db, settings, esignature, token, password_hash)

    result = invitations.finish_acceptance(db, settings, taken, identity(OTHER_CODE), HERE)
    db.commit()
    assert result.outcome is AcceptanceOutcome.WRONG_PERSON
    assert invitations.check_invitation(db, token) is None  # the inviter must resend
    person = db.get(User, invitation.user.id)
    assert person is not None and person.status == PENDING
    assert person.verified_personal_code is None and person.password_hash is None
    membership = db.get(Membership, invitation.membership.id)
    assert membership is not None and membership.accepted_at is None
    [event] = events(db, Action.INVITATION_REFUSED)
    assert event.details == {"reason": "wrong_person", "provider": "eparaksts"}
    assert OTHER_CODE not in str(event.details)
    db.commit()


def test_a_code_of_another_account_is_refused(
    db: Session,
    settings: Settings,
    in_app: None,
    customer: Customer,
    user: User,
    contractor: Actor,
    mailbox: Mailbox,
    esignature: EparakstsProvider,
    password_hash: str,
) -> None:
    user.verified_personal_code = OTHER_CODE  # Jānis's account is bound to this code
    db.commit()
    invite(db, settings, customer, contractor)  # no code typed
    token = token_of(mailbox.link_for(ILZE))
    taken = start(db, settings, esignature, token, password_hash)

    result = invitations.finish_acceptance(db, settings, taken, identity(OTHER_CODE), HERE)
    db.commit()
    assert result.outcome is AcceptanceOutcome.CODE_OF_ANOTHER_ACCOUNT
    assert invitations.check_invitation(db, token) is None
    assert events(db, Action.INVITATION_REFUSED)[0].details["reason"] == ("code_of_another_account")
    db.commit()


def accepted_from_cli(
    db: Session,
    settings: Settings,
    mailbox: Mailbox,
    connector: EparakstsProvider,
    customer: Customer,
    code: str,
    *,
    email: str = ILZE,
    mail_to: str | None = None,
    password_hash: str | None = None,
) -> invitations.Acceptance:
    """An admin invites `email` for `customer`; the person opens the mail's link and comes
    back from the bank having proven `code`."""
    invite(db, settings, customer, Actor.cli(), email=email)
    token = token_of(mailbox.link_for(mail_to or email))
    taken = start(db, settings, connector, token, password_hash)
    result = invitations.finish_acceptance(db, settings, taken, identity(code), HERE)
    db.commit()
    return result


def test_an_account_bound_to_another_code_is_refused(
    db: Session,
    settings: Settings,
    in_app: None,
    user: User,
    company: Customer,
    mailbox: Mailbox,
    esignature: EparakstsProvider,
) -> None:
    user.verified_personal_code = OTHER_CODE
    db.commit()
    result = accepted_from_cli(
        db,
        settings,
        mailbox,
        esignature,
        company,
        ILZE_CODE,
        email="janis.berzins@example.lv",
        mail_to="Janis.Berzins@Example.lv",
    )
    assert result.outcome is AcceptanceOutcome.CODE_OF_ANOTHER_ACCOUNT
    db.commit()


def test_a_previous_portal_account_must_prove_its_own_code(
    db: Session,
    settings: Settings,
    in_app: None,
    company: Customer,
    mailbox: Mailbox,
    esignature: EparakstsProvider,
) -> None:
    db.add(
        User(
            email="vecais@example.lv",
            email_display="vecais@example.lv",
            name="Vecais",
            status=ACTIVE,
            legacy=True,
            contact_confirmed=False,
            legacy_personal_code=OTHER_CODE,
        )
    )
    db.commit()
    result = accepted_from_cli(
        db, settings, mailbox, esignature, company, ILZE_CODE, email="vecais@example.lv"
    )
    assert result.outcome is AcceptanceOutcome.CODE_OF_ANOTHER_ACCOUNT
    db.commit()


def test_an_unlinked_contractor_account_accepts_only_with_its_customers_code(
    db: Session,
    settings: Settings,
    in_app: None,
    user: User,
    customer: Customer,
    company: Customer,
    mailbox: Mailbox,
    esignature: EparakstsProvider,
) -> None:
    # Jānis registered by e-mail as contractor of `customer` (personal code 32123456785);
    # his account has no verified code yet. Another customer invites him: a bank login
    # proving someone else's code must not bind that code to his account.
    assert user.verified_personal_code is None
    result = accepted_from_cli(
        db,
        settings,
        mailbox,
        esignature,
        company,
        ILZE_CODE,
        email="janis.berzins@example.lv",
        mail_to="Janis.Berzins@Example.lv",
    )
    assert result.outcome is AcceptanceOutcome.CODE_OF_ANOTHER_ACCOUNT
    db.refresh(user)
    assert user.verified_personal_code is None
    db.commit()


def test_a_person_with_an_account_is_not_given_a_second_one(
    db: Session,
    settings: Settings,
    in_app: None,
    company: Customer,
    mailbox: Mailbox,
    esignature: EparakstsProvider,
    password_hash: str,
) -> None:
    # Ilze already has a contractor account (registered by e-mail for her own customer,
    # not yet linked to a bank login), and is invited under another address.
    own = Customer(number="500600700", kind="person", name="Ilze Kalna", personal_code=ILZE_CODE)
    old = User(
        email="ilze.old@example.lv",
        email_display="ilze.old@example.lv",
        name="Ilze Kalna",
        status=ACTIVE,
    )
    db.add_all([own, old])
    db.flush()
    db.add(Membership(user_id=old.id, customer_id=own.id, role="contractor"))
    db.commit()
    result = accepted_from_cli(
        db, settings, mailbox, esignature, company, ILZE_CODE, password_hash=password_hash
    )
    assert result.outcome is AcceptanceOutcome.CODE_OF_ANOTHER_ACCOUNT
    active = db.scalars(select(User.email).where(User.status == ACTIVE)).all()
    assert "ilze.kalna@example.lv" not in active
    db.commit()


def test_a_code_a_previous_portal_account_waits_for_is_not_taken(
    db: Session,
    settings: Settings,
    in_app: None,
    company: Customer,
    mailbox: Mailbox,
    esignature: EparakstsProvider,
    password_hash: str,
) -> None:
    db.add(
        User(
            email="vecais@example.lv",
            email_display="vecais@example.lv",
            name="Vecais",
            status=ACTIVE,
            legacy=True,
            contact_confirmed=False,
            legacy_personal_code=ILZE_CODE,
        )
    )
    db.commit()
    result = accepted_from_cli(
        db, settings, mailbox, esignature, company, ILZE_CODE, password_hash=password_hash
    )
    assert result.outcome is AcceptanceOutcome.CODE_OF_ANOTHER_ACCOUNT
    db.commit()


def test_an_existing_account_accepts_without_a_new_password(
    db: Session,
    settings: Settings,
    in_app: None,
    user: User,
    company: Customer,
    mailbox: Mailbox,
    esignature: EparakstsProvider,
    password_hash: str,
) -> None:
    old_hash = user.password_hash
    invitation = invite(db, settings, company, Actor.cli(), email="janis.berzins@example.lv")
    token = token_of(mailbox.link_for("Janis.Berzins@Example.lv"))
    taken = start(db, settings, esignature, token, password_hash)  # ignored: not needed
    assert taken.password_hash is None
    result = invitations.finish_acceptance(db, settings, taken, identity("32123456785"), HERE)
    db.commit()
    assert result.outcome is AcceptanceOutcome.ACCEPTED
    db.expire_all()
    person = db.get(User, user.id)
    assert person is not None and person.password_hash == old_hash
    assert invitations.activate_accepted(db, person, HERE)[0].id == invitation.membership.id
    db.commit()


def test_the_link_is_used_exactly_once_and_a_failed_login_can_be_retried(
    db: Session,
    settings: Settings,
    in_app: None,
    customer: Customer,
    contractor: Actor,
    mailbox: Mailbox,
    esignature: EparakstsProvider,
    password_hash: str,
) -> None:
    invite(db, settings, customer, contractor)
    token = token_of(mailbox.link_for(ILZE))
    cancelled = start(db, settings, esignature, token, password_hash)  # never comes back
    assert cancelled.email_link_id is not None
    first = start(db, settings, esignature, token, password_hash)  # retried from the mail
    second = start(db, settings, esignature, token, password_hash)  # another tab

    assert invitations.finish_acceptance(db, settings, first, identity(), HERE).outcome is (
        AcceptanceOutcome.ACCEPTED
    )
    db.commit()
    assert invitations.finish_acceptance(db, settings, second, identity(), HERE).outcome is (
        AcceptanceOutcome.LINK_USED
    )
    db.commit()
    with pytest.raises(InvitationError, match="cannot be used any more"):
        invitations.begin_acceptance(
            db,
            settings,
            esignature,
            token=token,
            password_hash=password_hash,
            callback_url=CALLBACK,
            browser_binding=BINDING,
        )
    db.rollback()


def test_a_new_account_must_choose_a_password_before_the_bank_login(
    db: Session,
    settings: Settings,
    in_app: None,
    customer: Customer,
    contractor: Actor,
    mailbox: Mailbox,
    esignature: EparakstsProvider,
) -> None:
    invite(db, settings, customer, contractor)
    token = token_of(mailbox.link_for(ILZE))
    with pytest.raises(InvitationError, match="Choose a password first"):
        invitations.begin_acceptance(
            db,
            settings,
            esignature,
            token=token,
            password_hash=None,
            callback_url=CALLBACK,
            browser_binding=BINDING,
        )
    db.rollback()


def test_an_ordinary_login_is_never_taken_for_an_acceptance(
    db: Session, settings: Settings, in_app: None
) -> None:
    taken = upstream.TakenLogin("eparaksts", {}, None, 1)
    assert invitations.finish_acceptance(db, settings, taken, identity(), HERE).outcome is (
        AcceptanceOutcome.LINK_USED
    )
    db.rollback()


def test_a_revoked_invitation_cannot_be_accepted_after_the_bank_login(
    db: Session,
    settings: Settings,
    in_app: None,
    customer: Customer,
    contractor: Actor,
    mailbox: Mailbox,
    esignature: EparakstsProvider,
    password_hash: str,
) -> None:
    invitation = invite(db, settings, customer, contractor)
    token = token_of(mailbox.link_for(ILZE))
    taken = start(db, settings, esignature, token, password_hash)
    services.revoke(db, membership=invitation.membership, actor=contractor)
    db.commit()
    result = invitations.finish_acceptance(db, settings, taken, identity(), HERE)
    db.commit()
    assert result.outcome is AcceptanceOutcome.LINK_USED
    person = db.get(User, invitation.user.id)
    assert person is not None and person.status == PENDING
    db.commit()
