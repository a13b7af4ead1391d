"""The invited person's side of an invitation (docs/domain.md flows 6 and 7), a step of their
account journey: open the link, set a password if they have no account, prove who they
are with a bank or eSignature, confirm the contact form; then the membership is active.
Inviting, changing and revoking are the USERS section's (idp.delegation.services).

Every function takes the DB session explicitly and never commits.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from flask_babel import LazyString
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.accounts import upstream
from idp.accounts.links import Purpose, consume_link_by_id, find_link, find_link_by_id
from idp.audit import Action, Actor, record
from idp.db import utcnow
from idp.memberships.rights import MembershipState, shown_rights
from idp.models import Customer, Membership, User
from idp.models.users import ACTIVE, INACTIVE
from idp.settings import Settings
from providers.base import UpstreamProvider, VerifiedIdentity

# The UpstreamLogin.purpose of a bank or eSignature login that accepts an invitation.
UPSTREAM_PURPOSE = "invitation"


class InvitationError(Exception):
    """The invitation cannot go on: `message` is one line for the person, as a message id:
    str() gives it in the current language."""

    def __init__(self, message: LazyString) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return str(self.message)


@dataclass(frozen=True)
class PendingInvitation:
    link_id: int
    membership: Membership
    user: User
    customer: Customer
    # The account cannot log in yet (a new one, or one whose registration was never
    # confirmed): the person chooses a password on the invitation page.
    needs_password: bool


def _usable(
    session: Session, membership_id: int | None, user_id: int, now: dt.datetime
) -> Membership | None:
    """The invited membership behind a link, if it can still be accepted."""
    if membership_id is None:
        return None
    membership = session.get(Membership, membership_id)
    if (
        membership is None
        or membership.user_id != user_id
        or membership.state != MembershipState.INVITED
        or membership.user.status == INACTIVE
        or (membership.valid_until is not None and membership.valid_until <= now)
    ):
        return None
    return membership


def check_invitation(session: Session, token: str) -> PendingInvitation | None:
    """The invitation behind a link, without using it up (the GET of its page); None for
    an unknown, used, expired or voided link, or a membership no longer waiting."""
    link = find_link(session, token, Purpose.INVITATION)
    if link is None:
        return None
    membership = _usable(session, link.membership_id, link.user_id, utcnow())
    if membership is None:
        return None
    user = membership.user
    return PendingInvitation(
        link.id, membership, user, membership.customer, needs_password=user.status != ACTIVE
    )


def begin_acceptance(
    session: Session,
    settings: Settings,
    connector: UpstreamProvider,
    *,
    token: str,
    password_hash: str | None,
    callback_url: str,
    browser_binding: str,
) -> str:
    """The invited person chose a password (if they need one) and a bank or eSignature:
    start that login, keeping the link and the password hash server-side until the
    callback. The link stays live, so a cancelled or failed login can be retried from the
    mail. `browser_binding` ties the bank login to this browser (upstream.begin). Returns
    where to send the browser (connector errors propagate)."""
    pending = check_invitation(session, token)
    if pending is None:
        raise InvitationError(_l("This invitation link cannot be used any more."))
    if pending.needs_password and not password_hash:
        raise InvitationError(_l("Choose a password first."))
    return upstream.begin(
        session,
        settings,
        connector,
        callback_url=callback_url,
        interaction_id=None,
        browser_binding=browser_binding,
        purpose=UPSTREAM_PURPOSE,
        email_link_id=pending.link_id,
        password_hash=password_hash if pending.needs_password else None,
    )


class AcceptanceOutcome(enum.Enum):
    ACCEPTED = "accepted"
    # The inviter typed a personal code and the bank or eSignature proved another one.
    WRONG_PERSON = "wrong_person"
    # The proved code is another account's, or this account is bound to another code.
    CODE_OF_ANOTHER_ACCOUNT = "code_of_another_account"
    # The link was used, expired or voided meanwhile (or its membership changed).
    LINK_USED = "link_used"
    # The login asserted the code at low assurance: too little to bind it to an account.
    # The link stays live for another method.
    TOO_WEAK = "too_weak"


@dataclass(frozen=True)
class Acceptance:
    outcome: AcceptanceOutcome
    user: User | None = None
    customer: Customer | None = None


def finish_acceptance(
    session: Session,
    settings: Settings,
    taken: upstream.TakenLogin,
    identity: VerifiedIdentity,
    origin: str,
) -> Acceptance:
    """The bank or eSignature login of an invited person came back (flow 6). A login that
    asserts the code at substantial or high assurance uses the link up exactly once,
    whatever the outcome: one that proved someone else is refused and recorded, and the
    inviter must send a new invitation. A weaker login (the same rule as linking an
    account on a code, upstream.LINKING_ASSURANCE) is refused and recorded too, but leaves
    the link live for another method. On success the account is active with a verified
    address and personal code, and owes the contact form; the membership turns active
    when that is confirmed (activate_accepted)."""
    if taken.purpose != UPSTREAM_PURPOSE or taken.email_link_id is None:
        return Acceptance(AcceptanceOutcome.LINK_USED)
    too_weak = identity.assurance not in upstream.LINKING_ASSURANCE
    take_link = find_link_by_id if too_weak else consume_link_by_id
    link = take_link(session, taken.email_link_id, Purpose.INVITATION)
    now = utcnow()
    membership = None if link is None else _usable(session, link.membership_id, link.user_id, now)
    if membership is None:
        return Acceptance(AcceptanceOutcome.LINK_USED)
    user, customer = membership.user, membership.customer
    code = identity.personal_code

    refusal = None
    if too_weak:
        refusal = AcceptanceOutcome.TOO_WEAK
    elif membership.invited_personal_code and membership.invited_personal_code != code:
        refusal = AcceptanceOutcome.WRONG_PERSON
    elif not upstream.may_bind(session, user, code):
        refusal = AcceptanceOutcome.CODE_OF_ANOTHER_ACCOUNT
    if refusal is not None:
        record(
            session,
            Action.INVITATION_REFUSED,
            membership,
            Actor.person(user, origin),
            {"reason": refusal.value, "provider": identity.provider},
        )
        return Acceptance(refusal, user, customer)

    if user.status != ACTIVE:
        # A new account, or a registration never confirmed (whose password nobody proved
        # to own): the password chosen on the invitation page is the one.
        user.password_hash = taken.password_hash or user.password_hash
    user.status = ACTIVE
    user.email_verified = True  # the invitation link came through this mailbox
    if user.verified_personal_code is None:
        user.verified_personal_code = code
    user.contact_confirmed = False
    membership.accepted_at = now
    upstream.remember_link(session, user, identity)
    return Acceptance(AcceptanceOutcome.ACCEPTED, user, customer)


def activate_accepted(session: Session, user: User, origin: str) -> list[Membership]:
    """The person confirmed the contact form: every invitation they accepted becomes an
    active membership (flow 6, "Only then is the membership active")."""
    now = utcnow()
    accepted = list(
        session.scalars(
            select(Membership)
            .where(
                Membership.user_id == user.id,
                Membership.state == MembershipState.INVITED,
                Membership.accepted_at.is_not(None),
            )
            .order_by(Membership.id)
        )
    )
    actor = Actor.person(user, origin)
    for membership in accepted:
        membership.state = MembershipState.ACTIVE.value
        if membership.valid_from is None:
            membership.valid_from = now
        record(
            session,
            Action.ACTIVATED,
            membership,
            actor,
            {
                "role": membership.role,
                "rights": shown_rights(membership),
                "valid_until": membership.valid_until,
            },
        )
    return accepted
