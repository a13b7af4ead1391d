"""Acting for a customer: inviting additional users (docs/domain.md flow 6) and authorised
persons (flow 7), changing and revoking what they may do, expiring authorisations. The
invited person's side of an invitation is the accounts journey's (idp.accounts.invitations).

Every function takes the DB session explicitly and never commits: the caller commits the
change, its audit record (idp.audit), the link and the mail that carries it in one
transaction, or rolls all of it back (the admin CLI's --dry-run). Who may call what is the
caller's business (`may_manage` for the USERS pages; the admin CLI may do everything); the
rules of the domain are here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask_babel import LazyString
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_ngettext as _nl
from sqlalchemy import Select, case, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, contains_eager, joinedload

from idp import mail
from idp.accounts.links import (
    Purpose,
    issue_link,
    link_url,
    void_links,
)
from idp.accounts.registration import create_pending_user
from idp.accounts.services import AccountError, display_email, normalize_email
from idp.audit import Action, Actor, record
from idp.db import rowcount, utcnow
from idp.i18n import LOCAL_TIMEZONE
from idp.identifiers import InvalidPersonalCode, normalize_personal_code
from idp.memberships.labels import ROLE_LABELS, STATE_LABELS
from idp.memberships.rights import (
    ALL_RIGHTS,
    GRANTABLE_TO_ADDITIONAL_USERS,
    MembershipState,
    Right,
    Role,
    UnknownRight,
    effective_rights,
    parse_rights,
    shown_rights,
)
from idp.models import Customer, Membership, User
from idp.models.users import ACTIVE, INACTIVE
from idp.settings import Settings
from idp.token_families import revoke_customer_families

# A membership that still counts: a second invitation for it is refused.
_LIVE_STATES = (MembershipState.ACTIVE, MembershipState.INVITED)
# The USERS list: contractor first, then authorised persons, then additional users.
_ROLE_ORDER = case(
    {Role.CONTRACTOR.value: 0, Role.AUTHORISED_PERSON.value: 1}, value=Membership.role, else_=2
)
_NAME_MAX = 255  # users.name
_EVIDENCE_MAX = 255  # memberships.evidence
_REASON_MAX = 500


class DelegationError(Exception):
    """Refused: `message` is one line for the person or admin who asked, as a message id:
    str() gives it in the current language (English in the CLI)."""

    def __init__(self, message: LazyString) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return str(self.message)


@dataclass(frozen=True)
class Invitation:
    membership: Membership
    user: User
    customer: Customer
    # When the link in the mail stops working.
    expires_at: dt.datetime
    # The address already had an account (it got a new membership, not a second account).
    existing_account: bool


# --- reading --------------------------------------------------------------------------------


def find_customer(session: Session, number: str) -> Customer | None:
    return session.scalar(select(Customer).where(Customer.number == number.strip()))


def _manager_memberships(session: Session, user_id: int) -> list[Membership]:
    return list(
        session.scalars(
            select(Membership)
            .join(User, User.id == Membership.user_id)
            .where(
                Membership.user_id == user_id,
                Membership.state == MembershipState.ACTIVE,
                User.status == ACTIVE,
            )
            .options(joinedload(Membership.customer))
        )
    )


def _manages(membership: Membership, now: dt.datetime) -> bool:
    return Right.USERS_MANAGE in effective_rights(
        membership.role,
        membership.rights,
        membership.state,
        membership.valid_from,
        membership.valid_until,
        now,
    )


def managed_customers(session: Session, user_id: int, now: dt.datetime) -> list[Customer]:
    """The customers whose users this person may manage right now (the USERS section):
    contractors and authorised persons within their validity."""
    customers = [m.customer for m in _manager_memberships(session, user_id) if _manages(m, now)]
    return sorted(customers, key=lambda c: (c.name, c.number))


def may_manage(session: Session, user_id: int, customer_id: int, now: dt.datetime) -> bool:
    return any(
        m.customer_id == customer_id and _manages(m, now)
        for m in _manager_memberships(session, user_id)
    )


def _membership_query() -> Select[Membership]:
    return (
        select(Membership)
        .join(User, User.id == Membership.user_id)
        .join(Customer, Customer.id == Membership.customer_id)
        .options(contains_eager(Membership.user), contains_eager(Membership.customer))
    )


def members(session: Session, customer_id: int) -> list[Membership]:
    """A customer's users with their memberships (user and customer loaded): the
    contractor first, then authorised persons, then additional users, by name."""
    return list(
        session.scalars(
            _membership_query()
            .where(Membership.customer_id == customer_id)
            .order_by(_ROLE_ORDER, User.name, User.email)
        )
    )


def list_memberships(
    session: Session, *, customer_id: int | None = None, state: str | None = None
) -> list[Membership]:
    """Memberships of every customer (or one), by customer number then as `members`."""
    query = _membership_query().order_by(Customer.number, _ROLE_ORDER, User.name, User.email)
    if customer_id is not None:
        query = query.where(Membership.customer_id == customer_id)
    if state is not None:
        query = query.where(Membership.state == state)
    return list(session.scalars(query))


def member(session: Session, customer_id: int, membership_id: int) -> Membership | None:
    """One membership of this customer; None when the id belongs to another customer (a
    tampered form must never reach someone else's user)."""
    return session.scalar(
        _membership_query().where(
            Membership.id == membership_id, Membership.customer_id == customer_id
        )
    )


def membership_by_email(session: Session, customer_id: int, email: str) -> Membership | None:
    """The membership of this customer held by the account with this address, if any."""
    return session.scalar(
        _membership_query().where(
            Membership.customer_id == customer_id, User.email == _email(email)
        )
    )


# --- inviting (flows 6 and 7) ---------------------------------------------------------------


def _additional_user_rights(rights: Iterable[str]) -> list[str]:
    """A non-empty subset of what a contractor may grant an additional user."""
    try:
        parsed = parse_rights(rights)
    except UnknownRight as exc:
        raise DelegationError(
            _l(
                "Unknown right %(right)s (known rights: %(known)s).",
                right=repr(exc.name),
                known=exc.known,
            )
        ) from None
    grantable = ", ".join(sorted(GRANTABLE_TO_ADDITIONAL_USERS))
    if not parsed:
        raise DelegationError(_l("Choose at least one right: %(rights)s.", rights=grantable))
    beyond = parsed - GRANTABLE_TO_ADDITIONAL_USERS
    if beyond:
        raise DelegationError(
            _l(
                "An additional user cannot be given %(rights)s, only %(grantable)s.",
                rights=", ".join(sorted(beyond)),
                grantable=grantable,
            )
        )
    return sorted(r.value for r in parsed)


def _email(email: str) -> str:
    try:
        return normalize_email(email)
    except AccountError as exc:
        raise DelegationError(
            _l("%(address)s: %(problem)s", address=repr(email.strip()), problem=exc.message)
        ) from None


def _name(name: str) -> str:
    if not name.strip() or len(name.strip()) > _NAME_MAX:
        raise DelegationError(_l("The name must have 1 to %(max)s characters.", max=_NAME_MAX))
    return name.strip()


def _evidence(evidence: str | None, *, required: bool) -> str | None:
    value = (evidence or "").strip()
    if required and not value:
        raise DelegationError(
            _l("Say on what evidence (e.g. the number of the signed application).")
        )
    if len(value) > _EVIDENCE_MAX:
        raise DelegationError(
            _nl(
                "The evidence may have at most %(num)s character.",
                "The evidence may have at most %(num)s characters.",
                _EVIDENCE_MAX,
            )
        )
    return value or None


def invite_additional_user(
    session: Session,
    settings: Settings,
    *,
    customer: Customer,
    email: str,
    name: str,
    personal_code: str | None,
    rights: Iterable[str],
    evidence: str | None,
    actor: Actor,
    language: str | None = None,
) -> Invitation:
    """Flow 6: ADD USER in the USERS section, or `idp delegation add-user`. The person gets
    an invitation mail; the membership turns active only once they have proved who they
    are with a bank or eSignature (the personal code typed here, if any, must be theirs)
    and confirmed the contact form."""
    granted = _additional_user_rights(rights)
    code = None
    if personal_code and personal_code.strip():
        try:
            code = normalize_personal_code(personal_code)
        except InvalidPersonalCode as exc:
            raise DelegationError(_l("Personal code: %(problem)s", problem=exc.message)) from None
    now = utcnow()
    return _invite(
        session,
        settings,
        customer=customer,
        email=email,
        name=name,
        role=Role.ADDITIONAL_USER,
        rights=granted,
        personal_code=code,
        valid_until=None,
        evidence=_evidence(evidence, required=False),
        actor=actor,
        language=language,
        link_expires_at=now + dt.timedelta(seconds=settings.activation_link_lifetime),
    )


def invite_authorised_person(
    session: Session,
    settings: Settings,
    *,
    customer: Customer,
    email: str,
    name: str,
    until: dt.datetime,
    evidence: str,
    actor: Actor,
    language: str | None = None,
) -> Invitation:
    """Flow 7: an admin registers the person a contractor authorised in a signed
    application. They must approve the link by its deadline (never later than the end of
    the authorisation); then they act as the main user, with every right, until `until`."""
    if until.tzinfo is None:
        raise ValueError("until must be timezone-aware")
    now = utcnow()
    if until <= now:
        raise DelegationError(_l("The end of the authorisation must be in the future."))
    return _invite(
        session,
        settings,
        customer=customer,
        email=email,
        name=name,
        role=Role.AUTHORISED_PERSON,
        rights=sorted(r.value for r in ALL_RIGHTS),
        personal_code=None,
        valid_until=until,
        evidence=_evidence(evidence, required=True),
        actor=actor,
        language=language,
        link_expires_at=min(now + dt.timedelta(seconds=settings.activation_link_lifetime), until),
    )


def _invite(
    session: Session,
    settings: Settings,
    *,
    customer: Customer,
    email: str,
    name: str,
    role: Role,
    rights: list[str],
    personal_code: str | None,
    valid_until: dt.datetime | None,
    evidence: str | None,
    actor: Actor,
    language: str | None,
    link_expires_at: dt.datetime,
) -> Invitation:
    normalized = _email(email)
    display = display_email(email)
    name = _name(name)
    user = session.scalar(select(User).where(User.email == normalized))
    existing_account = user is not None
    if user is None:
        user = create_pending_user(
            session,
            email=normalized,
            email_display=display,
            name=name,
            password_hash=None,
            language=language,
        )
        if user is None:  # a concurrent request created the address first
            raise DelegationError(
                _l(
                    "An account for %(email)s was being created at the same moment. Try again.",
                    email=display,
                )
            )
    elif user.status == INACTIVE:
        raise DelegationError(
            _l("The account %(email)s is switched off.", email=user.email_display)
        )

    membership = session.scalar(
        select(Membership).where(
            Membership.user_id == user.id, Membership.customer_id == customer.id
        )
    )
    now = utcnow()
    if membership is not None and membership.state in _LIVE_STATES:
        facts = {
            "email": user.email_display,
            "number": customer.number,
            "role": _role(membership),
            "state": _state(membership),
        }
        if membership.state == MembershipState.INVITED:
            raise DelegationError(
                _l(
                    "%(email)s already acts for customer %(number)s (%(role)s, %(state)s). "
                    "Send the invitation again instead.",
                    **facts,
                )
            )
        raise DelegationError(
            _l("%(email)s already acts for customer %(number)s (%(role)s, %(state)s).", **facts)
        )
    values: dict[str, Any] = {
        "role": role.value,
        "rights": rights,
        "state": MembershipState.INVITED.value,
        "granted_by_user_id": actor.user_id,
        "granted_at": now,
        "evidence": evidence,
        "valid_from": None,
        "valid_until": valid_until,
        "invited_personal_code": personal_code,
        "accepted_at": None,
    }
    if membership is None:
        membership = Membership(user_id=user.id, customer_id=customer.id, **values)
        try:
            with session.begin_nested():
                session.add(membership)
        except IntegrityError:  # a concurrent invitation of the same person won
            raise DelegationError(
                _l(
                    "%(email)s was being invited to customer %(number)s at the same moment.",
                    email=user.email_display,
                    number=customer.number,
                )
            ) from None
        previous = None
    else:  # revoked or expired earlier: the same row is invited again
        previous = membership.state
        for key, value in values.items():
            setattr(membership, key, value)
        session.flush()
    membership.user, membership.customer = user, customer

    expires_at = _send_invitation(session, settings, membership, actor, link_expires_at, language)
    details: dict[str, Any] = {
        "role": role.value,
        "rights": rights,
        "evidence": evidence,
        "valid_until": valid_until,
        "link_expires_at": expires_at,
        "new_account": not existing_account,
        "personal_code_required": personal_code is not None,
    }
    if previous is not None:
        details["previous_state"] = previous
    record(session, Action.INVITED, membership, actor, details)
    return Invitation(membership, user, customer, expires_at, existing_account)


def _send_invitation(
    session: Session,
    settings: Settings,
    membership: Membership,
    actor: Actor,
    expires_at: dt.datetime,
    language: str | None,
) -> dt.datetime:
    """Issue the membership's link (voiding its earlier one) and mail it. Returns when the
    link expires."""
    user, customer = membership.user, membership.customer
    lifetime = expires_at - utcnow()
    token = issue_link(session, user, Purpose.INVITATION, lifetime, membership_id=membership.id)
    # A person's actor label is their address; an admin's says only "the utility" in a mail.
    inviter = actor.label if actor.user_id is not None else None
    context: dict[str, Any] = {
        "name": user.name,
        "customer_name": customer.name,
        "inviter": inviter,
        "link": link_url(settings.issuer, Purpose.INVITATION, token),
        "expires_at": expires_at,
        "has_account": user.status == ACTIVE,
    }
    if membership.role == Role.AUTHORISED_PERSON:
        assert membership.valid_until is not None
        template = "authorisation"
        context.update(local_validity(membership.valid_until))
    else:
        template = "invitation"
        context["rights"] = shown_rights(membership)
    mail.enqueue(
        session,
        to=user.email_display,
        template=template,
        language=user.language or language,
        **context,
    )
    return expires_at


def local_validity(until: dt.datetime) -> dict[str, Any]:
    """How a mail states the end of an authorisation, in Latvian time: its last day when it
    ends at a midnight there (what `idp delegation add-authorised --until` makes), else the
    exact moment. The template formats them (local_date, local_minute) in the mail's own
    language."""
    local = until.astimezone(LOCAL_TIMEZONE)
    if (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0):
        return {"valid_through": (local - dt.timedelta(days=1)).date(), "valid_until": None}
    return {"valid_through": None, "valid_until": until}


def end_of_local_day(day: dt.date) -> dt.datetime:
    """The first moment after `day` in Latvia, as UTC: an authorisation "until 2026-12-31"
    works throughout that day there and stops at its end."""
    midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), LOCAL_TIMEZONE)
    return midnight.astimezone(dt.UTC)


# --- changing, revoking, resending, expiring -------------------------------------------------


def _role(membership: Membership) -> object:
    """The membership's role in words (lazy: in the language of the page or the CLI)."""
    return ROLE_LABELS.get(membership.role, membership.role)


def _state(membership: Membership) -> object:
    return STATE_LABELS.get(membership.state, membership.state)


def _admin_only(membership: Membership, actor: Actor) -> None:
    """Contractors and authorised persons come from signed applications: only an admin
    (the CLI) changes them; the USERS pages manage additional users only."""
    if actor.origin != "cli" and membership.role != Role.ADDITIONAL_USER:
        raise DelegationError(
            _l(
                "Only the utility can do this for %(email)s (%(role)s). Contact the utility.",
                email=membership.user.email_display,
                role=_role(membership),
            )
        )


def change_rights(
    session: Session, *, membership: Membership, rights: Iterable[str], actor: Actor
) -> None:
    """A contractor ticks other rights for an additional user. When the set changes on an
    active membership, the person's refresh tokens for this customer stop working at once
    (docs/domain.md, "Revoking a membership or a right takes effect at once"); their next login
    gets the new rights. Nothing changes, nothing is recorded."""
    if membership.role != Role.ADDITIONAL_USER:
        raise DelegationError(
            _l(
                "Only an additional user's rights can be changed (%(email)s: %(role)s).",
                email=membership.user.email_display,
                role=_role(membership),
            )
        )
    if membership.state not in _LIVE_STATES:
        raise DelegationError(
            _l(
                "The membership of %(email)s cannot be changed (state: %(state)s).",
                email=membership.user.email_display,
                state=_state(membership),
            )
        )
    new = _additional_user_rights(rights)
    previous = sorted(membership.rights)
    if new == previous:
        return
    membership.rights = new
    revoked = 0
    if membership.state == MembershipState.ACTIVE:
        revoked = revoke_customer_families(
            session, membership.user_id, membership.customer_id, "rights changed"
        )
    record(
        session,
        Action.RIGHTS_CHANGED,
        membership,
        actor,
        {"previous": previous, "rights": new, "token_families_revoked": revoked},
    )


def revoke(
    session: Session, *, membership: Membership, actor: Actor, reason: str | None = None
) -> None:
    """The person no longer acts for the customer: the membership is revoked, its live
    invitation link dies, and their refresh tokens for this customer stop working. Only an
    admin (the CLI) removes a contractor; nobody removes themselves from the USERS page."""
    if membership.state not in _LIVE_STATES:
        raise DelegationError(
            _l(
                "The membership of %(email)s has already ended (state: %(state)s).",
                email=membership.user.email_display,
                state=_state(membership),
            )
        )
    _admin_only(membership, actor)
    if actor.origin != "cli" and actor.user_id == membership.user_id:
        raise DelegationError(_l("You cannot remove yourself."))
    text = (reason or "").strip()[:_REASON_MAX] or None
    previous = membership.state
    membership.state = MembershipState.REVOKED.value
    void_links(session, membership_id=membership.id)
    revoked = revoke_customer_families(
        session, membership.user_id, membership.customer_id, "membership revoked"
    )
    record(
        session,
        Action.REVOKED,
        membership,
        actor,
        {
            "reason": text,
            "previous_state": previous,
            "role": membership.role,
            "token_families_revoked": revoked,
        },
    )


def resend_invitation(
    session: Session, settings: Settings, *, membership: Membership, actor: Actor
) -> Invitation:
    """A new invitation mail; the earlier link of this membership (and only that one)
    stops working."""
    _admin_only(membership, actor)
    if membership.state != MembershipState.INVITED:
        raise DelegationError(
            _l(
                "%(email)s is not waiting for an invitation (state: %(state)s).",
                email=membership.user.email_display,
                state=_state(membership),
            )
        )
    now = utcnow()
    deadline = now + dt.timedelta(seconds=settings.activation_link_lifetime)
    if membership.valid_until is not None:
        if membership.valid_until <= now:
            raise DelegationError(_l("The authorisation has already ended."))
        deadline = min(deadline, membership.valid_until)
    expires_at = _send_invitation(session, settings, membership, actor, deadline, None)
    record(session, Action.INVITATION_RESENT, membership, actor, {"link_expires_at": expires_at})
    return Invitation(membership, membership.user, membership.customer, expires_at, True)


def expire_due(session: Session, now: dt.datetime) -> int:
    """Memberships whose validity ended (an authorisation past its end date) become
    expired: links voided, refresh tokens revoked, recorded as done by the system. Reading
    rights never waits for this (effective_rights checks valid_until itself); it makes the
    end visible and final. Safe to run concurrently: each row is claimed by one UPDATE."""
    due = list(
        session.scalars(
            select(Membership.id)
            .where(
                Membership.state.in_(_LIVE_STATES),
                Membership.valid_until.is_not(None),
                Membership.valid_until <= now,
            )
            .order_by(Membership.id)
        )
    )
    expired = 0
    for membership_id in due:
        claimed = session.execute(
            update(Membership)
            .where(Membership.id == membership_id, Membership.state.in_(_LIVE_STATES))
            .values(state=MembershipState.EXPIRED.value)
            .execution_options(synchronize_session=False)
        )
        if rowcount(claimed) != 1:
            continue
        membership = session.get(Membership, membership_id, populate_existing=True)
        assert membership is not None
        void_links(session, membership_id=membership_id)
        revoked = revoke_customer_families(
            session, membership.user_id, membership.customer_id, "membership expired"
        )
        record(
            session,
            Action.EXPIRED,
            membership,
            Actor.system(),
            {
                "valid_until": membership.valid_until,
                "role": membership.role,
                "token_families_revoked": revoked,
            },
        )
        expired += 1
    return expired
