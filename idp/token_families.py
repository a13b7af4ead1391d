"""Revoking token families: how a login's tokens stop working, whoever decides it (a
reused code or refresh token, a client's revocation, a password reset, a membership
removed or changed). A revoked family's refresh tokens are spent and its access tokens
answer inactive at introspection and userinfo.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from idp.db import utcnow
from idp.models import RefreshToken, TokenFamily


def revoke_family(session: Session, family_id: str, reason: str) -> None:
    now = utcnow()
    session.execute(
        update(TokenFamily)
        .where(TokenFamily.id == family_id, TokenFamily.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )


def revoke_user_families(session: Session, user_id: int, reason: str) -> None:
    """Revoke every token family of a user (e.g. after a password reset): their refresh
    tokens stop working and their access tokens are inactive at introspection/userinfo."""
    family_ids = list(
        session.scalars(
            select(TokenFamily.id).where(
                TokenFamily.user_id == user_id, TokenFamily.revoked_at.is_(None)
            )
        )
    )
    for family_id in family_ids:
        revoke_family(session, family_id, reason)


def revoke_customer_families(session: Session, user_id: int, customer_id: int, reason: str) -> int:
    """Revoke the token families of a user acting for one customer (a membership removed,
    expired or its rights changed): refresh answers invalid_grant, introspection and
    userinfo answer inactive, from this commit on. Returns how many were revoked."""
    family_ids = list(
        session.scalars(
            select(TokenFamily.id).where(
                TokenFamily.user_id == user_id,
                TokenFamily.customer_id == customer_id,
                TokenFamily.revoked_at.is_(None),
            )
        )
    )
    for family_id in family_ids:
        revoke_family(session, family_id, reason)
    return len(family_ids)
