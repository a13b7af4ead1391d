"""Whom a person acts for: the acting context every token carries (docs/domain.md, "What relying
apps receive": one user acting for one customer, in a role, with rights).

The context is read from the membership each time it matters (choosing at login, every
refresh, every userinfo and introspection), never copied into a token family: a removed
membership, a changed right or an authorisation past its end date takes effect at once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.memberships.rights import MembershipState, Right, Role, effective_rights
from idp.models import Customer, Membership


@dataclass(frozen=True)
class Acting:
    customer_id: int
    customer_number: str
    customer_name: str
    role: str
    rights: frozenset[Right]

    @property
    def customer_claim(self) -> dict[str, Any]:
        return {"id": self.customer_id, "number": self.customer_number, "name": self.customer_name}

    def id_token_claims(self) -> dict[str, Any]:
        """`customer`, `role` and `rights` for the ID token and userinfo."""
        return {
            "customer": self.customer_claim,
            "role": self.role,
            "rights": sorted(r.value for r in self.rights),
        }

    def access_token_claims(self) -> dict[str, Any]:
        """`customer` and `role` for the access token (its `scope` says the rest)."""
        return {"customer": self.customer_claim, "role": self.role}


def acting_from_columns(
    customer_id: int | None,
    number: str | None,
    name: str | None,
    role: str | None,
    rights: Iterable[str] | None,
    state: str | None,
    valid_from: dt.datetime | None,
    valid_until: dt.datetime | None,
    now: dt.datetime,
) -> Acting | None:
    """The context from a membership's columns (outer-joined, so all may be None), or None
    when there is no membership or it allows nothing now (invited, revoked, expired, or
    outside its validity)."""
    if customer_id is None or role is None or state != MembershipState.ACTIVE:
        return None
    if (valid_from is not None and now < valid_from) or (
        valid_until is not None and now >= valid_until
    ):
        return None
    rights_now = effective_rights(role, rights or (), state, valid_from, valid_until, now)
    if not rights_now and role != Role.ADDITIONAL_USER:
        return None
    return Acting(customer_id, number or "", name or "", role, rights_now)


_ROLE_ORDER: dict[str, int] = {
    Role.CONTRACTOR: 0,
    Role.AUTHORISED_PERSON: 1,
    Role.ADDITIONAL_USER: 2,
}


def acting_options(session: Session, user_id: int, now: dt.datetime) -> list[Acting]:
    """Every customer the person may act for now, for the "act for" page: own contracts
    first, then by customer name."""
    rows = session.execute(
        select(
            Customer.id,
            Customer.number,
            Customer.name,
            Membership.role,
            Membership.rights,
            Membership.state,
            Membership.valid_from,
            Membership.valid_until,
        )
        .join(Customer, Customer.id == Membership.customer_id)
        .where(Membership.user_id == user_id, Membership.state == MembershipState.ACTIVE)
    )
    options = [acting for row in rows if (acting := acting_from_columns(*row, now=now))]
    return sorted(
        options, key=lambda a: (_ROLE_ORDER.get(a.role, 9), a.customer_name, a.customer_number)
    )


def acting_for(session: Session, user_id: int, customer_id: int, now: dt.datetime) -> Acting | None:
    return next(
        (a for a in acting_options(session, user_id, now) if a.customer_id == customer_id), None
    )
