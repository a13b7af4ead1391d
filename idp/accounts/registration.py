"""Accounts that start with an e-mail link: registration by e-mail (docs/domain.md flow 2), an
account an admin creates from a signed application (flow 5), and "Forgot password?".

Each function takes the DB session explicitly and leaves committing to the caller, so the
link, the mail that carries it (idp.mail outbox) and the account change are written in one
transaction or not at all.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from idp import mail
from idp.accounts.links import (
    Purpose,
    check_link,
    consume_link,
    issue_link,
    last_issued_at,
    link_url,
)
from idp.accounts.services import (
    NAME_MAX,
    AccountError,
    display_email,
    find_user_by_email,
    is_pending_self_registration,
    no_customer,
    normalize_email,
    pending_self_registration,
)
from idp.customers.services import find_customer_for_registration
from idp.db import utcnow
from idp.memberships.rights import MembershipState, Role
from idp.models import BrowserSession, Customer, EmailLink, Membership, User
from idp.models.customers import PERSON
from idp.models.users import ACTIVE, PENDING
from idp.security import Passwords
from idp.settings import Settings
from idp.token_families import revoke_user_families

# A second mail of the same kind to the same person within this many seconds is not sent
# (double submissions, and someone filling a stranger's mailbox from the form).
RESEND_PAUSE = dt.timedelta(seconds=60)
CONTRACTOR = Role.CONTRACTOR


class RegistrationOutcome(enum.Enum):
    # The same on-screen answer whether the address was new or already had an account.
    MAIL_SENT = "mail_sent"
    # The customer data typed does not match the customer database.
    NO_CUSTOMER_MATCH = "no_customer_match"
    # The customer already has a portal account under another address.
    CUSTOMER_HAS_ACCOUNT = "customer_has_account"


@dataclass(frozen=True)
class Registration:
    customer_number: str
    identifier: str  # personal code, or a company's registration number
    email: str
    password: str
    name: str = ""
    language: str | None = None
    # The paused authorization request, so that logging in after confirmation resumes it.
    interaction_id: str | None = None


def has_contractor(
    session: Session, customer: Customer, other_than_email: str | None = None
) -> bool:
    """Whether the customer already has a contractor account (other than the one with this
    address): registration never makes a second one. A pending, never-confirmed
    self-registration does not count: a new registration replaces it (a mistyped address
    must not lock the customer out)."""
    query = (
        select(Membership.id)
        .join(User, User.id == Membership.user_id)
        .where(
            Membership.customer_id == customer.id,
            Membership.role == CONTRACTOR,
            Membership.state == MembershipState.ACTIVE,
            ~pending_self_registration(),
        )
    )
    if other_than_email is not None:
        query = query.where(User.email != other_than_email)
    return session.scalar(query.limit(1)) is not None


def register_by_email(
    session: Session, settings: Settings, passwords: Passwords, form: Registration
) -> RegistrationOutcome:
    """Flow 2. On a customer match: a new account waits for its confirmation link; an
    address that already has an account gets a "you already have an account" mail instead,
    so the page never tells whether an address is registered."""
    customer = find_customer_for_registration(session, form.customer_number, form.identifier)
    if customer is None:
        return RegistrationOutcome.NO_CUSTOMER_MATCH
    email = normalize_email(form.email)
    if has_contractor(session, customer, other_than_email=email):
        return RegistrationOutcome.CUSTOMER_HAS_ACCOUNT
    name = form.name.strip() or (customer.name if customer.kind == PERSON else "")
    if not name:
        raise AccountError(_l("The name is empty."))

    user = session.scalar(select(User).where(User.email == email))
    pending = user is not None and is_pending_self_registration(session, user)
    if pending and user is not None and sent_recently(session, user, Purpose.CONFIRM_EMAIL):
        return RegistrationOutcome.MAIL_SENT  # a double submission sends nothing new
    # The customer's pending registrations under other addresses (a mistyped one) give way.
    replace_pending_registrations(session, customer, keep_user_id=user.id if user else None)
    if user is None:
        user = create_pending_user(
            session,
            email=email,
            email_display=form.email.strip(),
            name=name,
            password_hash=passwords.hash(form.password),
            language=form.language,
        )
        if user is None:  # another registration for this address won the race
            user = session.scalar(select(User).where(User.email == email))
    elif pending:
        # The person registers again before confirming (lost mail, new password): the
        # newest attempt wins and gets a fresh link (issuing it voids the earlier one).
        user.password_hash = passwords.hash(form.password)
        user.name = name
    else:
        mail.enqueue(
            session,
            to=user.email_display,
            template="already_registered",
            language=user.language or form.language,
            name=user.name,
            login_url=settings.issuer + "/login",
            reset_url=settings.issuer + "/forgot-password",
        )
        return RegistrationOutcome.MAIL_SENT

    assert user is not None
    _ensure_membership(session, user, customer)
    send_confirmation(
        session,
        settings,
        user,
        customer,
        interaction_id=form.interaction_id,
        language=form.language,
    )
    return RegistrationOutcome.MAIL_SENT


def send_confirmation(
    session: Session,
    settings: Settings,
    user: User,
    customer: Customer,
    *,
    interaction_id: str | None,
    language: str | None,
) -> None:
    """The confirmation link of a new registration (by e-mail, or by bank: flow 1)."""
    token = issue_link(
        session,
        user,
        Purpose.CONFIRM_EMAIL,
        dt.timedelta(seconds=settings.confirmation_link_lifetime),
    )
    url = link_url(settings.issuer, Purpose.CONFIRM_EMAIL, token)
    if interaction_id:
        url += "?interaction=" + interaction_id
    mail.enqueue(
        session,
        to=user.email_display,
        template="confirm_email",
        language=user.language or language,
        name=user.name,
        customer_name=customer.name,
        link=url,
        hours=settings.confirmation_link_lifetime // 3600,
    )


def replace_pending_registrations(
    session: Session, customer: Customer, *, keep_user_id: int | None = None
) -> int:
    """A new registration for the customer supersedes the pending, never-confirmed
    self-registrations that act for it (but `keep_user_id`): their membership for the
    customer goes, and an account left acting for no customer is deleted with its links
    and upstream links (ON DELETE CASCADE), so its confirmation link dies. Returns how many
    accounts gave way."""
    rows = session.execute(
        select(User.id, Membership.id)
        .join(Membership, Membership.user_id == User.id)
        .where(
            Membership.customer_id == customer.id,
            Membership.role == CONTRACTOR,
            pending_self_registration(),
            User.id != (keep_user_id if keep_user_id is not None else -1),
        )
    ).all()
    for user_id, membership_id in rows:
        session.execute(delete(Membership).where(Membership.id == membership_id))
        others = session.scalar(select(Membership.id).where(Membership.user_id == user_id).limit(1))
        if others is None:
            delete_account(session, user_id)
        else:  # still pending for another customer: only the links sent so far die
            session.execute(
                update(EmailLink)
                .where(
                    EmailLink.user_id == user_id,
                    EmailLink.used_at.is_(None),
                    EmailLink.voided_at.is_(None),
                )
                .values(voided_at=utcnow())
                .execution_options(synchronize_session=False)
            )
    return len(rows)


def delete_account(session: Session, user_id: int) -> None:
    """Delete an account row; what hangs off it goes by ON DELETE CASCADE (memberships,
    e-mail links, upstream links, sessions) or is kept with SET NULL (audit)."""
    session.flush()
    loaded = session.identity_map.get(identity_key(User, user_id))
    session.execute(
        delete(User).where(User.id == user_id).execution_options(synchronize_session=False)
    )
    if loaded is not None:
        session.expunge(loaded)


def resend_confirmation(
    session: Session,
    settings: Settings,
    user: User,
    *,
    interaction_id: str | None,
    language: str | None,
) -> bool:
    """A new confirmation link for a pending self-registration (the earlier one dies), at
    most one per RESEND_PAUSE. Returns whether a mail was written."""
    if not is_pending_self_registration(session, user) or sent_recently(
        session, user, Purpose.CONFIRM_EMAIL
    ):
        return False
    customer = session.scalar(
        select(Customer)
        .join(Membership)
        .where(Membership.user_id == user.id)
        .order_by(Membership.id)
        .limit(1)
    )
    if customer is None:
        return False
    send_confirmation(
        session, settings, user, customer, interaction_id=interaction_id, language=language
    )
    return True


def resend_confirmation_to(
    session: Session,
    settings: Settings,
    typed_email: str,
    *,
    interaction_id: str | None,
    language: str | None,
) -> None:
    """ "Send the link again" of the login page: to the stored address of a pending
    self-registration, if there is one. The caller answers the same whatever happens."""
    user = find_user_by_email(session, typed_email)
    if user is not None:
        resend_confirmation(
            session, settings, user, interaction_id=interaction_id, language=language
        )


def sent_recently(session: Session, user: User, purpose: Purpose) -> bool:
    last = last_issued_at(session, user, purpose)
    return last is not None and utcnow() - last < RESEND_PAUSE


def create_pending_user(
    session: Session,
    *,
    email: str,
    email_display: str,
    name: str,
    password_hash: str | None,
    language: str | None,
    phone: str | None = None,
    verified_personal_code: str | None = None,
) -> User | None:
    """A new account waiting for its e-mail link, or None when a concurrent request
    created the address first (the unique index decides: two racing registrations end with
    one account)."""
    user = User(
        email=email,
        email_display=email_display,
        email_verified=False,
        name=name,
        password_hash=password_hash,
        status=PENDING,
        language=language,
        phone=phone,
        verified_personal_code=verified_personal_code,
    )
    try:
        with session.begin_nested():
            session.add(user)
    except IntegrityError:
        return None
    return user


def _ensure_membership(session: Session, user: User, customer: Customer) -> None:
    exists = session.scalar(
        select(Membership.id).where(
            Membership.user_id == user.id, Membership.customer_id == customer.id
        )
    )
    if exists is None:
        session.add(Membership(user_id=user.id, customer_id=customer.id, role=CONTRACTOR))


def check_registration_link(session: Session, token: str) -> User | None:
    return check_link(session, token, Purpose.CONFIRM_EMAIL)


def confirm_registration(session: Session, token: str) -> User | None:
    """The confirmation link proves the mailbox: a new account becomes active; an active
    one (an address changed on the contact form) gets its address marked verified."""
    user = consume_link(session, token, Purpose.CONFIRM_EMAIL)
    if user is None or user.status not in (PENDING, ACTIVE):
        return None
    user.status = ACTIVE
    user.email_verified = True
    return user


def confirm_contact_details(
    session: Session,
    settings: Settings,
    user: User,
    *,
    email: str,
    phone: str | None,
    language: str | None,
) -> None:
    """The contact-information form (flow 4, and whoever owes it): the person confirms or
    corrects their e-mail address and phone. An address not yet verified gets a
    confirmation link; the form itself is what unblocks the login."""
    normalized = normalize_email(email)
    if normalized != user.email:
        other = session.scalar(select(User.id).where(User.email == normalized, User.id != user.id))
        if other is not None:
            raise AccountError(_l("Another account already uses this e-mail address."))
        display = display_email(email)
        user.email, user.email_display, user.email_verified = normalized, display, False
    elif display_email(email) != user.email_display:
        user.email_display = display_email(email)
    user.phone = phone or None
    user.contact_confirmed = True
    if not user.email_verified:
        token = issue_link(
            session,
            user,
            Purpose.CONFIRM_EMAIL,
            dt.timedelta(seconds=settings.confirmation_link_lifetime),
        )
        mail.enqueue(
            session,
            to=user.email_display,
            template="confirm_contact",
            language=user.language or language,
            name=user.name,
            link=link_url(settings.issuer, Purpose.CONFIRM_EMAIL, token),
            hours=settings.confirmation_link_lifetime // 3600,
        )


# --- flow 5: an account an admin creates from a signed application --------------------------


@dataclass(frozen=True)
class Invitation:
    user: User
    customer: Customer
    expires_at: dt.datetime


def invite_user(
    session: Session,
    settings: Settings,
    *,
    customer_number: str,
    email: str,
    name: str,
    lifetime: dt.timedelta,
    language: str | None = None,
) -> Invitation:
    """A contractor account for the customer, without a password: the activation link
    mailed to the person lets them choose one (until `lifetime` has passed)."""
    customer = session.scalar(select(Customer).where(Customer.number == customer_number.strip()))
    if customer is None:
        raise AccountError(no_customer(customer_number))
    normalized = normalize_email(email)
    if not name.strip() or len(name.strip()) > NAME_MAX:
        raise AccountError(_l("The name must have 1 to %(max)s characters.", max=NAME_MAX))
    if find_user_by_email(session, normalized) is not None:
        raise AccountError(
            _l(
                "An account for %(email)s already exists (if it waits for activation: "
                "idp users resend-activation).",
                email=email.strip(),
            )
        )
    user = create_pending_user(
        session,
        email=normalized,
        email_display=display_email(email),
        name=name.strip(),
        password_hash=None,
        language=language,
    )
    if user is None:
        raise AccountError(_l("An account for %(email)s already exists.", email=email.strip()))
    _ensure_membership(session, user, customer)
    return Invitation(user, customer, _send_activation(session, settings, user, customer, lifetime))


def resend_activation(
    session: Session, settings: Settings, email: str, lifetime: dt.timedelta | None = None
) -> Invitation:
    """A new activation link (the earlier one stops working at once)."""
    user = find_user_by_email(session, email)
    if user is None:
        raise AccountError(_l("There is no account for %(email)s.", email=email.strip()))
    if user.status != PENDING or user.password_hash is not None:
        raise AccountError(
            _l("The account %(email)s is not waiting for activation.", email=user.email_display)
        )
    customer = session.scalar(
        select(Customer)
        .join(Membership)
        .where(Membership.user_id == user.id)
        .order_by(Membership.id)
        .limit(1)
    )
    if customer is None:
        raise AccountError(
            _l("The account %(email)s does not act for any customer.", email=user.email_display)
        )
    lifetime = lifetime or dt.timedelta(seconds=settings.activation_link_lifetime)
    return Invitation(user, customer, _send_activation(session, settings, user, customer, lifetime))


def _send_activation(
    session: Session, settings: Settings, user: User, customer: Customer, lifetime: dt.timedelta
) -> dt.datetime:
    token = issue_link(session, user, Purpose.ACTIVATE, lifetime)
    expires_at = utcnow() + lifetime
    mail.enqueue(
        session,
        to=user.email_display,
        template="activation",
        language=user.language,
        name=user.name,
        customer_name=customer.name,
        link=link_url(settings.issuer, Purpose.ACTIVATE, token),
        expires_at=expires_at,
    )
    return expires_at


def check_activation_link(session: Session, token: str) -> User | None:
    return check_link(session, token, Purpose.ACTIVATE)


def activate_account(
    session: Session, passwords: Passwords, token: str, password: str
) -> User | None:
    """The activation link plus the chosen password make the account usable."""
    user = consume_link(session, token, Purpose.ACTIVATE)
    if user is None or user.status != PENDING:
        return None
    user.password_hash = passwords.hash(password)
    user.status = ACTIVE
    user.email_verified = True
    return user


# --- "Forgot password?" ------------------------------------------------------------------------


def request_password_reset(
    session: Session,
    settings: Settings,
    typed_email: str,
    language: str | None = None,
    *,
    interaction_id: str | None = None,
) -> None:
    """Mail a reset link to the matched account's *stored* address, never to the string
    typed (a look-alike that normalises to the same account must not receive it). The
    caller shows the same answer whatever happens here. `interaction_id`: the paused
    sign-in the link leads back to (login, then the application) in the same browser."""
    user = find_user_by_email(session, typed_email)
    if (
        user is None
        or user.status != ACTIVE
        or sent_recently(session, user, Purpose.RESET_PASSWORD)
    ):
        return
    lifetime = dt.timedelta(seconds=settings.reset_link_lifetime)
    token = issue_link(session, user, Purpose.RESET_PASSWORD, lifetime)
    mail.enqueue(
        session,
        to=user.email_display,
        template="reset_password",
        language=user.language or language,
        name=user.name,
        link=link_url(settings.issuer, Purpose.RESET_PASSWORD, token)
        + ("?interaction=" + interaction_id if interaction_id else ""),
        minutes=settings.reset_link_lifetime // 60,
    )


def check_reset_link(session: Session, token: str) -> User | None:
    return check_link(session, token, Purpose.RESET_PASSWORD)


def reset_password(
    session: Session, passwords: Passwords, token: str, password: str
) -> User | None:
    """A new password from a reset link. Whoever knew the old one is shut out: every
    browser session of the user ends and every refresh-token family is revoked."""
    user = consume_link(session, token, Purpose.RESET_PASSWORD)
    if user is None or user.status != ACTIVE:
        return None
    user.password_hash = passwords.hash(password)
    session.execute(
        delete(BrowserSession)
        .where(BrowserSession.user_id == user.id)
        .execution_options(synchronize_session=False)
    )
    revoke_user_families(session, user.id, "password reset")
    return user
