"""The applications a person let in (issue 15, "Apps with access"): every remembered
consent (idp.models.ConsentGrant, per application and customer acted for), and
withdrawing one.

Withdrawing deletes the grant, so the application's next login asks again (the consent
record is what idp.consent.services.missing_scopes reads), and revokes at once that
application's token families for the person acting for that customer: its refresh tokens
answer invalid_grant, its access tokens are inactive. The utility's own (first-party)
applications never ask and keep no grant, so they are not listed; the page says so.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp import access_history
from idp.access_history import Kind, Origin
from idp.consent.scopes import CATALOGUE
from idp.models import Client, ConsentGrant, Customer
from idp.token_families import revoke_client_families

# Ids are 32-bit integer columns (PostgreSQL `integer`).
MAX_ID = 2**31
REVOKED_REASON = "consent_withdrawn"
_SAME_MOMENT = dt.timedelta(seconds=1)


@dataclass(frozen=True)
class AppAccess:
    """One remembered consent, as the page shows it."""

    grant_id: int
    client: Client
    customer: Customer | None
    # What the application may do, in the consent page's words (the catalogue's); a scope
    # no longer in the catalogue by its name.
    allowed: list[str]
    since: dt.datetime
    # When more scopes were allowed later (a grant is widened, never narrowed); else None.
    widened: dt.datetime | None


def apps_with_access(session: Session, user_id: int) -> list[AppAccess]:
    """Every consent the person gave, by application name, then customer."""
    rows = session.execute(
        select(ConsentGrant, Client, Customer)
        .join(Client, Client.id == ConsentGrant.client_id)
        .outerjoin(Customer, Customer.id == ConsentGrant.customer_id)
        .where(ConsentGrant.user_id == user_id)
        .order_by(Client.name, Customer.name, ConsentGrant.id)
    )
    return [_shown(grant, client, customer) for grant, client, customer in rows]


def app_access(session: Session, user_id: int, grant_id: int) -> AppAccess | None:
    """One of the person's consents; None for an unknown id or another person's."""
    if not 0 < grant_id < MAX_ID:  # beyond the column: the database would refuse it
        return None
    row = session.execute(
        select(ConsentGrant, Client, Customer)
        .join(Client, Client.id == ConsentGrant.client_id)
        .outerjoin(Customer, Customer.id == ConsentGrant.customer_id)
        .where(ConsentGrant.id == grant_id, ConsentGrant.user_id == user_id)
    ).first()
    return None if row is None else _shown(*row)


def _shown(grant: ConsentGrant, client: Client, customer: Customer | None) -> AppAccess:
    allowed = [
        str(CATALOGUE[scope].description) if scope in CATALOGUE else scope for scope in grant.scopes
    ]
    # Both columns default to "now", taken a moment apart when the grant is made.
    widened = grant.updated_at if grant.updated_at - grant.created_at > _SAME_MOMENT else None
    return AppAccess(grant.id, client, customer, allowed, grant.created_at, widened)


def withdraw(session: Session, user_id: int, access: AppAccess, origin: Origin) -> int:
    """Forget the consent and end the application's tokens for this person and customer
    (the caller commits: both or neither). Returns how many token families ended."""
    grant = session.get(ConsentGrant, access.grant_id)
    scopes = list(grant.scopes) if grant is not None else []
    if grant is not None:  # (None: withdrawn in another tab meanwhile; end the tokens anyway)
        session.delete(grant)
    customer_id = access.customer.id if access.customer is not None else None
    families = revoke_client_families(
        session, user_id, access.client.id, customer_id, REVOKED_REASON
    )
    access_history.record(
        session,
        Kind.CONSENT_WITHDRAWN,
        user_id,
        origin,
        client=access.client,
        customer=access.customer,
        details={"scopes": scopes, "apps_logged_out": families},
    )
    return families
