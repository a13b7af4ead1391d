"""Revoking token families: how a login's tokens stop working, whoever decides it (a
reused code or refresh token, a client's revocation, a password reset, a membership
removed or changed). A revoked family's refresh tokens are spent and its access tokens
answer inactive at introspection and userinfo.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Table, bindparam, select, update
from sqlalchemy.orm import Session

from idp.db import Runner, atomic, utcnow
from idp.models import RefreshToken, TokenFamily

_families: Table = TokenFamily.__table__  # type: ignore[assignment]
_refresh_tokens: Table = RefreshToken.__table__  # type: ignore[assignment]
# Prebuilt: the refresh road revokes a family on the fast path's bare connection too.
_REVOKE_FAMILY = (
    update(_families)
    .where(_families.c.id == bindparam("family"), _families.c.revoked_at.is_(None))
    .values(
        revoked_at=bindparam("now", type_=_families.c.revoked_at.type),
        revoked_reason=bindparam("reason"),
    )
)
_RETIRE_FAMILY_TOKENS = (
    update(_refresh_tokens)
    .where(_refresh_tokens.c.family_id == bindparam("family"), _refresh_tokens.c.used_at.is_(None))
    .values(used_at=bindparam("now", type_=_refresh_tokens.c.used_at.type))
)


def revoke_family(db: Runner, family_id: str, reason: str) -> None:
    """Revoke one token family: none of its refresh tokens rotates again and its access
    tokens are inactive (verify_access_token reads the family's revoked_at). Core
    statements: they do not autoflush a Session, so callers read before they call."""
    params = {"family": family_id, "now": utcnow(), "reason": reason}
    with atomic(db):
        db.execute(_REVOKE_FAMILY, params)
        db.execute(_RETIRE_FAMILY_TOKENS, params)


def revoke_user_families(session: Session, user_id: int, reason: str) -> None:
    """Revoke every token family of a user (e.g. after a password reset): their refresh
    tokens stop working and their access tokens are inactive at introspection/userinfo."""
    _revoke_live(session, reason, TokenFamily.user_id == user_id)


def revoke_customer_families(session: Session, user_id: int, customer_id: int, reason: str) -> int:
    """Revoke the token families of a user acting for one customer (a membership removed,
    expired or its rights changed): refresh answers invalid_grant, introspection and
    userinfo answer inactive, from this commit on. Returns how many were revoked."""
    return _revoke_live(
        session, reason, TokenFamily.user_id == user_id, TokenFamily.customer_id == customer_id
    )


def revoke_session_families(session: Session, user_id: int, sid: str, reason: str) -> int:
    """Revoke the token families issued under one browser session (its `sid`), when the
    person logs that browser out from "My account": the apps logged in through it lose
    their refresh tokens too, not only the browser its cookie. Returns how many."""
    return _revoke_live(session, reason, TokenFamily.user_id == user_id, TokenFamily.sid == sid)


def revoke_client_families(
    session: Session, user_id: int, client_id: int, customer_id: int | None, reason: str
) -> int:
    """Revoke one application's token families for a user acting for one customer (None:
    for no customer), when the person withdraws that consent. Returns how many."""
    customer = (
        TokenFamily.customer_id.is_(None)
        if customer_id is None
        else TokenFamily.customer_id == customer_id
    )
    return _revoke_live(
        session,
        reason,
        TokenFamily.user_id == user_id,
        TokenFamily.client_id == client_id,
        customer,
    )


def _revoke_live(session: Session, reason: str, *where: ColumnElement[bool]) -> int:
    """Revoke the families not yet revoked that match `where`; how many there were."""
    family_ids = list(
        session.scalars(select(TokenFamily.id).where(*where, TokenFamily.revoked_at.is_(None)))
    )
    for family_id in family_ids:
        revoke_family(session, family_id, reason)
    return len(family_ids)
