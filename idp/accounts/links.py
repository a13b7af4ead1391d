"""Links sent by e-mail: issued, checked and consumed here and nowhere else.

DOMAIN.md, "Every link sent by e-mail…": a link is single use (one atomic UPDATE … WHERE
used_at IS NULL, so two tabs or two app instances cannot both use it), bound to one purpose,
bound to its user and to a fingerprint of the user's state when it was sent (a reset link
dies when the password changes), stored only as a hash, expiring, and voided when a newer
link of the same purpose is sent.

Opening a link (GET) only *checks* it; the page then posts a form and the POST consumes
it. Mail scanners that prefetch links therefore cannot use them up.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from idp.db import utcnow
from idp.models import EmailLink, User
from idp.security import hash_secret, new_token

# Tokens are 43 url-safe characters; anything much longer is not ours (and is not hashed).
_MAX_TOKEN_LENGTH = 128


class Purpose(enum.StrEnum):
    CONFIRM_EMAIL = "confirm_email"  # registration by e-mail (flow 2)
    ACTIVATE = "activate"  # an account an admin created (flow 5)
    RESET_PASSWORD = "reset_password"  # noqa: S105  ("Forgot password?", not a secret)


# The page each purpose opens. The views route these paths, and mails link to them.
PATHS = {
    Purpose.CONFIRM_EMAIL: "/register/confirm/<token>",
    Purpose.ACTIVATE: "/activate/<token>",
    Purpose.RESET_PASSWORD: "/reset-password/<token>",
}


def link_url(issuer: str, purpose: Purpose, token: str) -> str:
    return issuer + PATHS[purpose].replace("<token>", token)


def _state_fingerprint(user: User, purpose: Purpose) -> str:
    """What the link was issued for. Any change to the address, the status or the password
    (a reset, an activation, a new registration attempt) makes older links stop matching."""
    return hash_secret(
        f"{purpose}|{user.id}|{user.email}|{user.status}|{user.password_hash or ''}")


def issue_link(session: Session, user: User, purpose: Purpose, lifetime: dt.timedelta) -> str:
    """A new link for the user; earlier unused links of the same purpose are voided.
    Returns the token (to put in the mail); only its hash is stored. The caller commits
    it together with the mail that carries it."""
    now = utcnow()
    session.execute(
        update(EmailLink)
        .where(EmailLink.user_id == user.id, EmailLink.purpose == purpose.value,
               EmailLink.used_at.is_(None), EmailLink.voided_at.is_(None))
        .values(voided_at=now)
        .execution_options(synchronize_session=False)
    )
    token = new_token(32)
    session.add(EmailLink(
        token_hash=hash_secret(token), purpose=purpose.value, user_id=user.id,
        state_hash=_state_fingerprint(user, purpose), created_at=now,
        expires_at=now + lifetime,
    ))
    return token


def last_issued_at(session: Session, user: User, purpose: Purpose) -> dt.datetime | None:
    """When the newest link of this purpose was sent (to refuse mail bombing)."""
    return session.scalar(
        select(EmailLink.created_at)
        .where(EmailLink.user_id == user.id, EmailLink.purpose == purpose.value)
        .order_by(EmailLink.created_at.desc())
        .limit(1)
    )


def _live_link_conditions(token: str, purpose: Purpose, now: dt.datetime) -> list:
    return [EmailLink.token_hash == hash_secret(token), EmailLink.purpose == purpose.value,
            EmailLink.used_at.is_(None), EmailLink.voided_at.is_(None),
            EmailLink.expires_at > now]


def _valid_token_text(token: str) -> bool:
    return 0 < len(token) <= _MAX_TOKEN_LENGTH and token.isascii()


def check_link(session: Session, token: str, purpose: Purpose) -> User | None:
    """The user a live link of this purpose belongs to, without using it up (GET)."""
    if not _valid_token_text(token):
        return None
    row = session.scalar(select(EmailLink).where(*_live_link_conditions(token, purpose, utcnow())))
    if row is None:
        return None
    user = session.get(User, row.user_id)
    if user is None or row.state_hash != _state_fingerprint(user, purpose):
        return None
    return user


def consume_link(session: Session, token: str, purpose: Purpose) -> User | None:
    """Use the link up, exactly once: the UPDATE matches only while the link is live, so
    of two concurrent requests (two tabs, two app instances) one alone sees rowcount 1.
    Returns its user, or None for an unknown, used, expired, voided, wrong-purpose or
    out-of-date link. The caller commits together with what the link does."""
    if not _valid_token_text(token):
        return None
    token_hash = hash_secret(token)
    now = utcnow()
    result = session.execute(
        update(EmailLink)
        .where(*_live_link_conditions(token, purpose, now))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return None
    row = session.scalar(select(EmailLink).where(EmailLink.token_hash == token_hash))
    user = session.get(User, row.user_id) if row is not None else None
    if user is None or row is None or row.state_hash != _state_fingerprint(user, purpose):
        return None
    return user
