"""The consent record: one function answers "which scopes still need consent?".

Consent is remembered per user, client and customer acted for (customer None: a person
acting for no customer): allowing the invoice app for one's own contract allows nothing
for another customer's."""

from __future__ import annotations

from authlib.oauth2.rfc6749 import scope_to_list
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from idp.db import utcnow
from idp.models import ConsentGrant


def _grant(
    session: Session, user_id: int, client_id: int, customer_id: int | None
) -> ConsentGrant | None:
    customer = (
        ConsentGrant.customer_id.is_(None)
        if customer_id is None
        else ConsentGrant.customer_id == customer_id
    )
    return session.scalar(
        select(ConsentGrant)
        .where(ConsentGrant.user_id == user_id, ConsentGrant.client_id == client_id, customer)
        .limit(1)
    )


def missing_scopes(
    session: Session, user_id: int, client_id: int, customer_id: int | None, scope: str
) -> list[str]:
    """Requested scopes this user has not yet allowed this client while acting for this
    customer (empty: nothing to ask)."""
    requested = scope_to_list(scope) or []
    grant = _grant(session, user_id, client_id, customer_id)
    allowed = set(grant.scopes) if grant else set()
    return [s for s in requested if s not in allowed]


def remember(
    session: Session, user_id: int, client_id: int, customer_id: int | None, scope: str
) -> None:
    """Record that the user allowed these scopes (added to what they allowed before).

    The insert comes first, in a savepoint: of two "Allow" clicks at once (two tabs, two
    app instances) both find no grant, and the second insert would break the unique
    index; it then adds its scopes to the row the first one stored."""
    scopes = sorted(set(scope_to_list(scope) or []))
    try:
        with session.begin_nested():
            session.add(
                ConsentGrant(
                    user_id=user_id, client_id=client_id, customer_id=customer_id, scopes=scopes
                )
            )
        return
    except IntegrityError:
        pass
    grant = _grant(session, user_id, client_id, customer_id)
    if grant is None:  # removed in between (the client or the customer was deleted)
        return
    grant.scopes = sorted(set(grant.scopes) | set(scopes))
    grant.updated_at = utcnow()
