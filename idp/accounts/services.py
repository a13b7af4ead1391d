"""Accounts: e-mail addresses, password login with throttling, browser sessions.

Every function takes the DB session explicitly and can be called without a request.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, delete, exists, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from idp.db import utcnow
from idp.delegation.rights import MembershipState, Role
from idp.email_address import EmailAddress, InvalidEmail, parse_email
from idp.models import BrowserSession, Customer, LoginFailure, Membership, User
from idp.models.users import PENDING
from idp.security import Passwords, hash_secret, new_token
from idp.settings import Settings

# DOMAIN.md, "Ways to log in": e-mail + password proves only the mailbox and password.
PASSWORD_ACR = "low"  # noqa: S105  (an assurance level, not a password)
PASSWORD_AMR = ["pwd"]


class AccountError(Exception):
    """Bad input for an account operation; the message is for an admin or a form."""


def normalize_email(address: str) -> str:
    """The one rule for comparing addresses (idp.email_address): trim, NFKC, lower-case
    the whole address, the domain in IDNA (punycode) form so that look-alike Unicode
    spellings compare equal.

    The local part is lower-cased too: in practice mailboxes are case-insensitive, and two
    accounts differing only in case would be a support and phishing hazard.
    """
    return parse_address(address).normalized


def display_email(address: str) -> str:
    """The form of a usable address that mail is sent to (User.email_display): trimmed and
    NFKC, so that the outbox's check_address accepts exactly what the forms accepted."""
    return parse_address(address).display


def parse_address(address: str) -> EmailAddress:
    try:
        return parse_email(address)
    except InvalidEmail as exc:
        raise AccountError(str(exc)) from None


def pending_self_registration() -> ColumnElement[bool]:
    """SQL condition on User: an account the person registered themselves (by e-mail, flow
    2, or after a bank login, flow 1) and never confirmed. Only such an account may be
    replaced by a new registration for the same customer, or purged when its link is dead.

    Told apart by what only a self-registration has while pending: a password (flow 2) or a
    verified personal code (flow 1). An account an admin created (flow 5) or invited (flows
    6, 7) has neither until its link is used, and an invitation adds a membership that is
    not an active contractor one granted by nobody; legacy accounts are active.
    """
    other = aliased(Membership)
    not_own = exists().where(other.user_id == User.id, or_(
        other.role != Role.CONTRACTOR, other.state != MembershipState.ACTIVE,
        other.granted_by_user_id.is_not(None)))
    return and_(User.status == PENDING, User.email_verified.is_(False), User.legacy.is_(False),
                or_(User.password_hash.is_not(None), User.verified_personal_code.is_not(None)),
                ~not_own)


def is_pending_self_registration(session: Session, user: User) -> bool:
    session.flush()
    return session.scalar(select(User.id).where(
        User.id == user.id, pending_self_registration())) is not None


def find_user_by_email(session: Session, address: str) -> User | None:
    try:
        normalized = normalize_email(address)
    except AccountError:
        return None
    return session.scalar(select(User).where(User.email == normalized))


def create_user(
    session: Session,
    passwords: Passwords,
    *,
    email: str,
    name: str,
    password: str,
    customer_number: str | None = None,
    phone: str | None = None,
) -> User:
    """An active e-mail/password user, optionally a contractor of a customer (admin/demo)."""
    normalized = normalize_email(email)
    if not name.strip():
        raise AccountError("the name is empty")
    if len(name.strip()) > 255:  # the users.name column
        raise AccountError("the name is longer than 255 characters")
    if len(password) < 12:
        raise AccountError("the password must have at least 12 characters")
    customer = None
    if customer_number is not None:
        customer = session.scalar(select(Customer).where(Customer.number == customer_number))
        if customer is None:
            raise AccountError(f"no customer with number {customer_number}")
    user = User(
        email=normalized,
        email_display=display_email(email),
        email_verified=True,
        name=name.strip(),
        phone=phone,
        password_hash=passwords.hash(password),
        status="active",
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise AccountError(f"an account for {email.strip()} already exists") from None
    if customer is not None:
        session.add(Membership(user_id=user.id, customer_id=customer.id, role=Role.CONTRACTOR))
    return user


# --- password login with throttling ------------------------------------------------------


@dataclass(frozen=True)
class LoginResult:
    user: User | None
    # Seconds the person must wait before the next attempt is even checked.
    retry_after: int = 0
    # The password was right, but the account still waits for its confirmation link.
    unconfirmed: bool = False


def _throttle_keys(email: str, ip: str) -> list[str]:
    try:
        account = normalize_email(email)
    except AccountError:
        account = email.strip().lower()[:320]
    return [f"account:{account}", f"ip:{ip}"]


def _wait_seconds(settings: Settings, row: LoginFailure | None, now: dt.datetime) -> int:
    """Growing delay after the free attempts: base * 2^(extra failures), capped."""
    if row is None or row.failures < settings.login_free_attempts:
        return 0
    if (now - row.last_failure_at).total_seconds() > settings.login_failure_window:
        return 0
    extra = row.failures - settings.login_free_attempts
    delay = min(settings.login_delay_max, settings.login_delay_base * (2 ** min(extra, 20)))
    remaining = delay - (now - row.last_failure_at).total_seconds()
    return max(0, int(remaining + 0.999))


def authenticate_password(
    session: Session, settings: Settings, passwords: Passwords, email: str, password: str,
    ip: str,
) -> LoginResult:
    """Check e-mail + password. Unknown e-mail and wrong password look alike (same answer,
    an argon2 verification either way); repeated failures slow down per account and per IP
    without ever locking anyone out for good.
    """
    now = utcnow()
    keys = _throttle_keys(email, ip)
    found = session.scalars(select(LoginFailure).where(LoginFailure.key.in_(keys)))
    rows = {r.key: r for r in found}
    wait = max(_wait_seconds(settings, rows.get(k), now) for k in keys)
    if wait:
        return LoginResult(None, retry_after=wait)

    user = find_user_by_email(session, email)
    ok = passwords.verify(user.password_hash if user else None, password)
    if ok and user is not None and user.is_active:
        if passwords.needs_rehash(user.password_hash or ""):
            user.password_hash = passwords.hash(password)
        session.execute(delete(LoginFailure).where(LoginFailure.key == keys[0]))
        return LoginResult(user)
    if ok and user is not None and is_pending_self_registration(session, user):
        # The right password proves as much as a login would: saying "confirm your address
        # first" tells nothing more. Not a failure (no throttling for the owner).
        return LoginResult(None, unconfirmed=True)

    for key in keys:
        row = rows.get(key)
        if row is None:
            session.add(LoginFailure(key=key, failures=1, last_failure_at=now))
        else:
            if (now - row.last_failure_at).total_seconds() > settings.login_failure_window:
                row.failures = 0
            row.failures += 1
            row.last_failure_at = now
    return LoginResult(None)


# --- browser sessions ------------------------------------------------------------------------


def start_browser_session(
    session: Session, settings: Settings, user: User, acr: str, amr: list[str]
) -> tuple[str, BrowserSession]:
    """A new session (new id at every login, against session fixation). Returns the cookie
    value, which is stored only as a hash."""
    cookie_value = new_token(32)
    now = utcnow()
    row = BrowserSession(
        id_hash=hash_secret(cookie_value),
        sid=new_token(16),
        user_id=user.id,
        auth_time=now,
        acr=acr,
        amr=list(amr),
        expires_at=now + dt.timedelta(seconds=settings.session_lifetime),
    )
    session.add(row)
    return cookie_value, row


def find_browser_session(session: Session, cookie_value: str | None) -> BrowserSession | None:
    if not cookie_value or len(cookie_value) > 128:
        return None
    row = session.get(BrowserSession, hash_secret(cookie_value))
    if row is None or row.expires_at <= utcnow() or not row.user.is_active:
        return None
    return row


def end_browser_session(session: Session, cookie_value: str | None) -> BrowserSession | None:
    row = session.get(BrowserSession, hash_secret(cookie_value)) if cookie_value else None
    if row is not None:
        session.delete(row)
    return row
