"""The consent record: one function answers "which scopes still need consent?", another
what the consent page asks.

Consent is remembered per user, client and customer acted for (customer None: a person
acting for no customer): allowing the invoice app for one's own contract allows nothing
for another customer's."""

from __future__ import annotations

from dataclasses import dataclass

from authlib.oauth2.rfc6749 import scope_to_list
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from idp.clients import OAuthClient, find_client
from idp.db import utcnow
from idp.interactions import interaction_params
from idp.memberships.acting import Acting, acting_for
from idp.memberships.rights import scopes_allowed_by
from idp.models import ConsentGrant, Interaction


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


@dataclass(frozen=True)
class ConsentRequest:
    """What the consent page asks: which client, acting for whom, which scopes."""

    client: OAuthClient
    acting: Acting | None
    scopes: list[str]


def consent_request(
    session: Session, interaction: Interaction, user_id: int
) -> ConsentRequest | None:
    """The scopes a paused request would be granted (for the consent page): those the
    client may have and the membership's rights allow. None if the client is gone or the
    membership ended meanwhile."""
    params = interaction_params(interaction)
    client = find_client(session, params.get("client_id", ""))
    if client is None:
        return None
    acting = None
    if interaction.customer_id is not None:
        acting = acting_for(session, user_id, interaction.customer_id, utcnow())
        if acting is None:
            return None
    requested = scope_to_list(client.get_allowed_scope(params.get("scope"))) or []
    return ConsentRequest(
        client, acting, scopes_allowed_by(requested, acting.rights if acting else ())
    )
