"""Accounts: e-mail addresses, password login with throttling, browser sessions.

Every function takes the DB session explicitly and can be called without a request.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from flask_babel import LazyString
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_ngettext as _nl
from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    and_,
    case,
    delete,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from idp import access_history, observability
from idp.access_history import Kind, Origin
from idp.assurance import below
from idp.db import utcnow
from idp.email_address import EmailAddress, InvalidEmail, parse_email
from idp.memberships.rights import MembershipState, Role
from idp.models import (
    BrowserSession,
    Customer,
    LoginFailure,
    LoginPairFailure,
    Membership,
    User,
)
from idp.models.users import PENDING
from idp.security import Passwords, hash_secret, new_token
from idp.settings import Settings

# docs/domain.md, "Ways to log in": e-mail + password proves only the mailbox and password.
PASSWORD_ACR = "low"  # noqa: S105  (an assurance level, not a password)
PASSWORD_AMR = ["pwd"]
NAME_MAX = 255  # the users.name column


def no_customer(number: str) -> LazyString:
    return _l("There is no customer with number %(number)s.", number=number.strip())


class AccountError(Exception):
    """Bad input for an account operation; `message` is for an admin or a form, as a
    message id: str() gives it in the current language (English in the CLI)."""

    def __init__(self, message: LazyString) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return str(self.message)


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
        raise AccountError(exc.message) from None


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
    not_own = exists().where(
        other.user_id == User.id,
        or_(
            other.role != Role.CONTRACTOR,
            other.state != MembershipState.ACTIVE,
            other.granted_by_user_id.is_not(None),
        ),
    )
    return and_(
        User.status == PENDING,
        User.email_verified.is_(False),
        User.legacy.is_(False),
        or_(User.password_hash.is_not(None), User.verified_personal_code.is_not(None)),
        ~not_own,
    )


def is_pending_self_registration(session: Session, user: User) -> bool:
    session.flush()
    return (
        session.scalar(select(User.id).where(User.id == user.id, pending_self_registration()))
        is not None
    )


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
        raise AccountError(_l("The name is empty."))
    if len(name.strip()) > NAME_MAX:
        raise AccountError(_l("The name must have 1 to %(max)s characters.", max=NAME_MAX))
    if len(password) < 12:
        raise AccountError(
            _nl(
                "The password must have at least %(num)s character.",
                "The password must have at least %(num)s characters.",
                12,
            )
        )
    customer = None
    if customer_number is not None:
        customer = session.scalar(select(Customer).where(Customer.number == customer_number))
        if customer is None:
            raise AccountError(no_customer(customer_number))
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
        raise AccountError(
            _l("An account for %(email)s already exists.", email=email.strip())
        ) from None
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


def _throttle_subjects(email: str, ip: str) -> tuple[str, str]:
    """The account (as normalised for lookup, so spellings of one address share a counter)
    and the client address, both cut to their columns' lengths."""
    try:
        account = normalize_email(email)
    except AccountError:
        account = email.strip().lower()[:320]
    return account, (ip or "unknown")[:64]


def _wait_seconds(
    settings: Settings,
    count: int,
    budget: int,
    last_failure_at: dt.datetime | None,
    now: dt.datetime,
) -> int:
    """Growing delay past the budget: base * 2^(count - budget), capped, counted from the
    last failure; nothing once that failure is older than the window."""
    if last_failure_at is None or count < budget:
        return 0
    elapsed = (now - last_failure_at).total_seconds()
    if elapsed > settings.login_failure_window:
        return 0
    extra = count - budget
    delay = min(settings.login_delay_max, settings.login_delay_base * (1 << min(extra, 20)))
    return max(0, math.ceil(delay - elapsed))


def _count_failure(
    session: Session,
    model: type[LoginFailure] | type[LoginPairFailure],
    key: dict[str, str],
    now: dt.datetime,
    cutoff: dt.datetime,
) -> None:
    """One more failure for `key`, in one INSERT … ON CONFLICT DO UPDATE: two failures for
    the same new key at once both count, and neither fails on the primary key (PostgreSQL
    and SQLite both have this upsert). A count whose last failure left the window restarts.
    """
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(model).values(**key, failures=1, last_failure_at=now)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=list(key),
            set_={
                "failures": case((model.last_failure_at < cutoff, 1), else_=model.failures + 1),
                "last_failure_at": now,
            },
        )
    )


def authenticate_password(
    session: Session,
    settings: Settings,
    passwords: Passwords,
    email: str,
    password: str,
    ip: str,
) -> LoginResult:
    """Check e-mail + password. Unknown e-mail and wrong password look alike (same answer,
    an argon2 verification either way, counted alike). Failures slow down, never lock:
    per account (from anywhere), per (address, account), and per address only by the
    number of distinct accounts that failed from it, so one person's correct password is
    not refused for other people's typos behind the same address (CGNAT, offices).
    """
    now = utcnow()
    cutoff = now - dt.timedelta(seconds=settings.login_failure_window)
    account, address = _throttle_subjects(email, ip)
    account_key = f"account:{account}"
    # Plain column reads (not entities), so the upserts below never meet stale objects.
    account_row = session.execute(
        select(LoginFailure.failures, LoginFailure.last_failure_at).where(
            LoginFailure.key == account_key
        )
    ).first()
    pair_row = session.execute(
        select(LoginPairFailure.failures, LoginPairFailure.last_failure_at).where(
            LoginPairFailure.address == address, LoginPairFailure.account == account
        )
    ).first()
    # Bounded: once over budget the address waits, so it adds few rows per window.
    failed_accounts, address_last = session.execute(
        select(func.count(), func.max(LoginPairFailure.last_failure_at)).where(
            LoginPairFailure.address == address, LoginPairFailure.last_failure_at >= cutoff
        )
    ).one()
    wait = max(
        _wait_seconds(
            settings,
            account_row.failures,
            settings.login_free_attempts,
            account_row.last_failure_at,
            now,
        )
        if account_row
        else 0,
        _wait_seconds(
            settings,
            pair_row.failures,
            settings.login_pair_free_attempts,
            pair_row.last_failure_at,
            now,
        )
        if pair_row
        else 0,
        _wait_seconds(
            settings, failed_accounts, settings.login_address_free_accounts, address_last, now
        ),
    )
    # Decided before the password is checked: a wait that a right password skipped would
    # tell the attacker which guess was right.
    if wait:
        observability.count_throttled("password_login")
        observability.count_login("password", "throttled")
        return LoginResult(None, retry_after=wait)

    user = find_user_by_email(session, email)
    ok = passwords.verify(user.password_hash if user else None, password)
    if ok and user is not None and user.is_active:
        if passwords.needs_rehash(user.password_hash or ""):
            user.password_hash = passwords.hash(password)
        # The account and this pair start afresh. The address keeps its other accounts'
        # failures: only this account leaves its count, so a stuffer holding one valid
        # login cannot wipe the address's record by using it.
        session.execute(delete(LoginFailure).where(LoginFailure.key == account_key))
        session.execute(
            delete(LoginPairFailure).where(
                LoginPairFailure.address == address, LoginPairFailure.account == account
            )
        )
        return LoginResult(user)
    if ok and user is not None and is_pending_self_registration(session, user):
        # The right password proves as much as a login would: saying "confirm your address
        # first" tells nothing more. Not a failure (no throttling for the owner).
        return LoginResult(None, unconfirmed=True)

    if user is not None and not ok:
        # The owner sees it in their access history (throttled above, so bounded).
        access_history.record(
            session, Kind.LOGIN_FAILED, user.id, Origin(address), method="password"
        )
    # Always the same order (account, then pair), so concurrent failures cannot deadlock.
    _count_failure(session, LoginFailure, {"key": account_key}, now, cutoff)
    _count_failure(session, LoginPairFailure, {"address": address, "account": account}, now, cutoff)
    observability.count_login("password", "failed")
    return LoginResult(None)


# --- browser sessions ------------------------------------------------------------------------


def start_browser_session(
    session: Session,
    settings: Settings,
    user: User,
    acr: str,
    amr: list[str],
    origin: Origin,
    method: str | None = None,
) -> tuple[str, BrowserSession]:
    """A new session (new id at every login, against session fixation), and the login in
    the person's access history. Returns the cookie value, which is stored only as a hash.
    `method` is the upstream's ("bank", "esignature"); a password login leaves it out."""
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
        user_agent=origin.user_agent[:255] if origin.user_agent else None,
        ip=origin.ip[:64],
        last_seen_at=now,
    )
    session.add(row)
    login_method = access_history.login_method(amr, method)
    access_history.record(session, Kind.LOGIN, user.id, origin, method=login_method)
    observability.count_login(login_method, "ok")
    return cookie_value, row


def reconfirm_browser_session(
    session: Session, browser: BrowserSession, acr: str, amr: list[str], origin: Origin, method: str
) -> None:
    """The person proved who they are again in this browser ("My account" asks before a
    change of e-mail or password): the session's login time is now, its assurance rises to
    this login's when higher, and the login is in the access history."""
    browser.auth_time = utcnow()
    if below(browser.acr, acr):
        browser.acr = acr
    browser.amr = sorted({*browser.amr, *amr})
    access_history.record(session, Kind.LOGIN, browser.user_id, origin, method=method)


def find_browser_session(session: Session, cookie_value: str | None) -> BrowserSession | None:
    if not cookie_value or len(cookie_value) > 128:
        return None
    row = session.get(BrowserSession, hash_secret(cookie_value))
    if row is None or row.expires_at <= utcnow() or not row.user.is_active:
        return None
    return row


# "Last used" on My account: moved at most this often, so that a person clicking around
# costs one small write a minute, not one per page.
LAST_SEEN_EVERY = dt.timedelta(seconds=60)
_browser_sessions: Table = BrowserSession.__table__  # type: ignore[assignment]


def seen_long_ago(row: BrowserSession, now: dt.datetime) -> bool:
    """Whether this browser's "last used" is due to move (LAST_SEEN_EVERY)."""
    return row.last_seen_at is None or now - row.last_seen_at >= LAST_SEEN_EVERY


def mark_seen(conn: Connection, id_hash: str, now: dt.datetime) -> None:
    """Move a session's "last used" to `now`, unless another request did within the
    minute (the condition is in the UPDATE, so two requests at once write once)."""
    conn.execute(
        update(_browser_sessions)
        .where(
            _browser_sessions.c.id_hash == id_hash,
            or_(
                _browser_sessions.c.last_seen_at.is_(None),
                _browser_sessions.c.last_seen_at <= now - LAST_SEEN_EVERY,
            ),
        )
        .values(last_seen_at=now)
    )


def end_browser_session(session: Session, cookie_value: str | None) -> BrowserSession | None:
    row = session.get(BrowserSession, hash_secret(cookie_value)) if cookie_value else None
    if row is not None:
        session.delete(row)
    return row
