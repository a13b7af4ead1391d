"""The rules of "My account" for the profile, the e-mail address and the password (issue
15). Every function takes the database session and leaves the commit to the caller, so a
change, its record in the access history and its mails commit together or not at all.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from idp import access_history, mail
from idp.access_history import Kind, Origin
from idp.accounts.links import Purpose, consume_link, find_link, issue_link, link_url
from idp.accounts.names import clean
from idp.accounts.registration import sent_recently
from idp.accounts.services import (
    AccountError,
    authenticate_password,
    display_email,
    find_user_by_email,
    normalize_email,
)
from idp.db import rowcount, utcnow
from idp.models import BrowserSession, EmailLink, User
from idp.security import Passwords
from idp.settings import Settings
from idp.token_families import revoke_user_families

# How long the link to a new address works.
EMAIL_CHANGE_LINK_LIFETIME = dt.timedelta(hours=24)


def mask_personal_code(code: str | None) -> str | None:
    """A personal code as "My account" shows it: never in full (a stolen session or a look
    over the shoulder must not give it away), only its last two digits, enough for the
    person to recognise it."""
    if not code:
        return None
    digits = "".join(c for c in code if c.isdigit())
    return "••••••-•••" + digits[-2:]


def update_profile(
    session: Session, user: User, origin: Origin, *, name: str | None, phone: str
) -> bool:
    """A new name (accounts without a bank-verified identity only: the bank's name stands
    otherwise) and phone (already in the one phone form, idp.identifiers). Returns whether
    anything changed; a change is recorded with the fields' names, not their values."""
    changed = []
    if name is not None and user.verified_personal_code is None and clean(name) != user.name:
        user.name = clean(name)
        changed.append("name")
    if (phone or None) != user.phone:
        user.phone = phone or None
        changed.append("phone")
    if changed:
        access_history.record(
            session, Kind.PROFILE_CHANGED, user.id, origin, details={"fields": changed}
        )
    return bool(changed)


class EmailChange(enum.Enum):
    SENT = "sent"  # a link went to the new address, a notice to the old one
    SAME = "same"  # the address is already the account's
    TOO_SOON = "too_soon"  # a link went out less than a minute ago


def request_email_change(
    session: Session,
    settings: Settings,
    user: User,
    new_address: str,
    origin: Origin,
    language: str,
) -> EmailChange:
    """Flow: the person types a new address; a link goes to it and a notice to the old one.
    Nothing changes until the link is used; the old address keeps working meanwhile.

    An address another account holds gets a mail saying so instead of the link, and the
    page says the same as for a free one: the form tells nobody whose addresses exist."""
    if normalize_email(new_address) == user.email:
        return EmailChange.SAME
    if sent_recently(session, user, Purpose.CHANGE_EMAIL):
        return EmailChange.TOO_SOON
    shown = display_email(new_address)
    language = user.language or language
    holder = find_user_by_email(session, new_address)
    # A link is issued either way (the resend pause counts it), but only a free address
    # receives it.
    token = issue_link(
        session, user, Purpose.CHANGE_EMAIL, EMAIL_CHANGE_LINK_LIFETIME, new_email=shown
    )
    if holder is None:
        mail.enqueue(
            session,
            to=shown,
            template="email_change",
            language=language,
            name=user.name,
            link=link_url(settings.issuer, Purpose.CHANGE_EMAIL, token),
            hours=int(EMAIL_CHANGE_LINK_LIFETIME.total_seconds() // 3600),
        )
    else:
        mail.enqueue(session, to=shown, template="email_change_taken", language=language)
    mail.enqueue(
        session,
        to=user.email_display,
        template="email_change_notice",
        language=language,
        name=user.name,
        new_email=shown,
    )
    access_history.record(
        session, Kind.EMAIL_CHANGE_REQUESTED, user.id, origin, details={"to": shown}
    )
    return EmailChange.SENT


def pending_email_change(session: Session, token: str) -> EmailLink | None:
    """The live change_email link of `token`, without using it up (the page's GET)."""
    return find_link(session, token, Purpose.CHANGE_EMAIL)


class EmailChanged(enum.Enum):
    CHANGED = "changed"
    INVALID = "invalid"  # unknown, used, expired, voided or out-of-date link
    TAKEN = "taken"  # another account took the address meanwhile


def confirm_email_change(
    session: Session, token: str, origin: Origin
) -> tuple[EmailChanged, User | None]:
    """The link from the new address, used up exactly once: the account's address becomes
    the new one, confirmed. Its other live links (a reset, an earlier change) stop
    matching, as they are bound to the old address."""
    link = pending_email_change(session, token)
    user = consume_link(session, token, Purpose.CHANGE_EMAIL)
    if link is None or user is None or not link.new_email:
        return EmailChanged.INVALID, None
    old = user.email_display
    try:
        normalized = normalize_email(link.new_email)
    except AccountError:
        return EmailChanged.INVALID, None
    holder = find_user_by_email(session, link.new_email)
    if holder is not None and holder.id != user.id:
        return EmailChanged.TAKEN, user
    user.email = normalized
    user.email_display = link.new_email
    user.email_verified = True
    try:
        # Two accounts racing for one address: the unique index decides.
        session.flush()
    except IntegrityError:
        session.rollback()
        return EmailChanged.TAKEN, None
    access_history.record(
        session, Kind.EMAIL_CHANGED, user.id, origin, details={"from": old, "to": link.new_email}
    )
    return EmailChanged.CHANGED, user


class PasswordChange(enum.Enum):
    CHANGED = "changed"
    WRONG = "wrong"  # the current password is not right
    WAIT = "wait"  # too many wrong ones: the login throttle applies here too


def change_password(
    session: Session,
    settings: Settings,
    passwords: Passwords,
    browser: BrowserSession,
    current: str,
    new: str,
    origin: Origin,
) -> tuple[PasswordChange, int]:
    """A new password for a person who has one, proved with the current one. The current
    password is checked as a login is (authenticate_password: the same throttle and the
    same record of failures), so a stolen session cannot guess it faster. Returns the
    outcome and, for WAIT, the seconds to wait."""
    user = browser.user
    result = authenticate_password(session, settings, passwords, user.email, current, origin.ip)
    if result.retry_after:
        return PasswordChange.WAIT, result.retry_after
    if result.user is None or result.user.id != user.id:
        return PasswordChange.WRONG, 0
    _replace_password(session, passwords, browser, new, origin, Kind.PASSWORD_CHANGED)
    return PasswordChange.CHANGED, 0


def set_password(
    session: Session, passwords: Passwords, browser: BrowserSession, new: str, origin: Origin
) -> None:
    """A first password for a person who logs in by bank or eSignature only (the caller
    made sure their login is recent)."""
    _replace_password(session, passwords, browser, new, origin, Kind.PASSWORD_SET)


def _replace_password(
    session: Session,
    passwords: Passwords,
    browser: BrowserSession,
    new: str,
    origin: Origin,
    kind: Kind,
) -> None:
    """The new password, and whoever knew the old one is shut out: every other browser
    session of the person ends and every refresh-token family is revoked (this browser
    stays logged in; its apps log in again silently through it). A notice mail says so."""
    user = browser.user
    user.password_hash = passwords.hash(new)
    ended = session.execute(
        delete(BrowserSession)
        .where(BrowserSession.user_id == user.id, BrowserSession.id_hash != browser.id_hash)
        .execution_options(synchronize_session=False)
    )
    revoke_user_families(session, user.id, kind.value)
    # The person just proved who they are (the current password, or a recent login).
    browser.auth_time = utcnow()
    mail.enqueue(
        session,
        to=user.email_display,
        template="password_changed",
        language=user.language,
        name=user.name,
        first=kind is Kind.PASSWORD_SET,
    )
    access_history.record(
        session, kind, user.id, origin, details={"sessions_ended": rowcount(ended)}
    )
