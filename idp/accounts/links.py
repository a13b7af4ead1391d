"""Links sent by e-mail: issued, checked and consumed here and nowhere else.

docs/domain.md, "Every link sent by e-mail…": a link is single use (one atomic UPDATE … WHERE
used_at IS NULL, so two tabs or two app instances cannot both use it), bound to one purpose,
bound to its user and to a fingerprint of the user's state when it was sent (a reset link
dies when the password changes), stored only as a hash, expiring, and voided when a newer
link of the same purpose is sent.

An invitation link (flows 6 and 7) also belongs to one membership: a newer invitation voids
only the earlier link of the same membership, so a person invited by two customers holds
two live links, and accepting one does not kill the other.

Opening a link (GET) only *checks* it; the page then posts a form and the POST consumes
it. Mail scanners that prefetch links therefore cannot use them up.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from idp.db import rowcount, utcnow
from idp.models import EmailLink, User
from idp.security import hash_secret, new_token

# Tokens are 43 url-safe characters; anything much longer is not ours (and is not hashed).
_MAX_TOKEN_LENGTH = 128


class Purpose(enum.StrEnum):
    CONFIRM_EMAIL = "confirm_email"  # registration by e-mail (flow 2)
    ACTIVATE = "activate"  # an account an admin created (flow 5)
    RESET_PASSWORD = "reset_password"  # noqa: S105  ("Forgot password?", not a secret)
    INVITATION = "invitation"  # an additional user or an authorised person (flows 6, 7)
    CHANGE_EMAIL = "change_email"  # a new address given on "My account" (issue 15)


# The page each purpose opens. The views route these paths, and mails link to them.
PATHS = {
    Purpose.CONFIRM_EMAIL: "/register/confirm/<token>",
    Purpose.ACTIVATE: "/activate/<token>",
    Purpose.RESET_PASSWORD: "/reset-password/<token>",
    Purpose.INVITATION: "/invitation/<token>",
    Purpose.CHANGE_EMAIL: "/account/email/confirm/<token>",
}


def link_url(issuer: str, purpose: Purpose, token: str) -> str:
    return issuer + PATHS[purpose].replace("<token>", token)


def _state_fingerprint(user: User, purpose: Purpose, membership_id: int | None = None) -> str:
    """What the link was issued for. Any change to the address, the status or the password
    (a reset, an activation, a new registration attempt) makes older links stop matching.

    An invitation is bound to its membership and the address instead: accepting one
    invitation activates the account and may set its password, and that must not kill the
    invitation of another customer (the membership's own state is checked by its reader)."""
    if purpose == Purpose.INVITATION:
        return hash_secret(f"{purpose}|{user.id}|{user.email}|{membership_id}")
    return hash_secret(f"{purpose}|{user.id}|{user.email}|{user.status}|{user.password_hash or ''}")


def issue_link(
    session: Session,
    user: User,
    purpose: Purpose,
    lifetime: dt.timedelta,
    membership_id: int | None = None,
    new_email: str | None = None,
) -> str:
    """A new link for the user; earlier unused links of the same purpose (and, for an
    invitation, of the same membership) are voided. `new_email`: the address a
    change_email link moves the account to. Returns the token (to put in the mail);
    only its hash is stored. The caller commits it together with the mail that carries it."""
    now = utcnow()
    same_membership = (
        EmailLink.membership_id.is_(None)
        if membership_id is None
        else EmailLink.membership_id == membership_id
    )
    session.execute(
        update(EmailLink)
        .where(
            EmailLink.user_id == user.id,
            EmailLink.purpose == purpose.value,
            same_membership,
            EmailLink.used_at.is_(None),
            EmailLink.voided_at.is_(None),
        )
        .values(voided_at=now)
        .execution_options(synchronize_session=False)
    )
    token = new_token(32)
    session.add(
        EmailLink(
            token_hash=hash_secret(token),
            purpose=purpose.value,
            user_id=user.id,
            membership_id=membership_id,
            state_hash=_state_fingerprint(user, purpose, membership_id),
            new_email=new_email,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    return token


def void_links(session: Session, *, membership_id: int) -> int:
    """Kill the live links of a membership (it was revoked or expired). Returns how many."""
    result = session.execute(
        update(EmailLink)
        .where(
            EmailLink.membership_id == membership_id,
            EmailLink.used_at.is_(None),
            EmailLink.voided_at.is_(None),
        )
        .values(voided_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return rowcount(result)


def last_issued_at(session: Session, user: User, purpose: Purpose) -> dt.datetime | None:
    """When the newest link of this purpose was sent (to refuse mail bombing)."""
    return session.scalar(
        select(EmailLink.created_at)
        .where(EmailLink.user_id == user.id, EmailLink.purpose == purpose.value)
        .order_by(EmailLink.created_at.desc())
        .limit(1)
    )


def _live(purpose: Purpose, now: dt.datetime) -> list:
    return [
        EmailLink.purpose == purpose.value,
        EmailLink.used_at.is_(None),
        EmailLink.voided_at.is_(None),
        EmailLink.expires_at > now,
    ]


def _live_link_conditions(token: str, purpose: Purpose, now: dt.datetime) -> list:
    return [EmailLink.token_hash == hash_secret(token), *_live(purpose, now)]


def _matches_state(session: Session, row: EmailLink, purpose: Purpose) -> User | None:
    """The link's user, if the link still matches the user's state."""
    user = session.get(User, row.user_id)
    if user is None or row.state_hash != _state_fingerprint(user, purpose, row.membership_id):
        return None
    return user


def _valid_token_text(token: str) -> bool:
    return 0 < len(token) <= _MAX_TOKEN_LENGTH and token.isascii()


def find_link(session: Session, token: str, purpose: Purpose) -> EmailLink | None:
    """The live link row of this purpose for `token`, without using it up (GET); None for
    an unknown, used, expired, voided, wrong-purpose or out-of-date link."""
    if not _valid_token_text(token):
        return None
    return _live_row(session, purpose, EmailLink.token_hash == hash_secret(token))


def check_link(session: Session, token: str, purpose: Purpose) -> User | None:
    """The user a live link of this purpose belongs to, without using it up (GET)."""
    row = find_link(session, token, purpose)
    return None if row is None else session.get(User, row.user_id)


def find_link_by_id(session: Session, link_id: int, purpose: Purpose) -> EmailLink | None:
    """find_link for a link found earlier (the token no longer at hand): the live row,
    without using it up."""
    return _live_row(session, purpose, EmailLink.id == link_id)


def _live_row(session: Session, purpose: Purpose, which: ColumnElement[bool]) -> EmailLink | None:
    row = session.scalar(select(EmailLink).where(which, *_live(purpose, utcnow())))
    if row is None or _matches_state(session, row, purpose) is None:
        return None
    return row


def consume_link_by_id(session: Session, link_id: int, purpose: Purpose) -> EmailLink | None:
    """consume_link for a link found earlier by find_link (the token is no longer at hand,
    e.g. after a bank login in between): the same atomic, exactly-once UPDATE and the same
    liveness conditions. Returns the row, or None when it is no longer live."""
    now = utcnow()
    result = session.execute(
        update(EmailLink)
        .where(EmailLink.id == link_id, *_live(purpose, now))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) != 1:
        return None
    row = session.get(EmailLink, link_id, populate_existing=True)
    if row is None or _matches_state(session, row, purpose) is None:
        return None
    return row


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
    if rowcount(result) != 1:
        return None
    row = session.scalar(select(EmailLink).where(EmailLink.token_hash == token_hash))
    if row is None:
        return None
    return _matches_state(session, row, purpose)
