"""Roles and rights: the one place that says what a membership allows (docs/domain.md, "People
and accounts" and "What relying apps receive"). Views, tokens and the CLI ask here; no
right or role is a loose string anywhere else.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from idp.models import Membership


class Role(enum.StrEnum):
    # The person who concluded the contract: every right, including managing users.
    CONTRACTOR = "contractor"
    # Authorised by the contractor in a signed application; "activities equated to the
    # contractor's": every right, possibly only until a date.
    AUTHORISED_PERSON = "authorised_person"
    # Added by the contractor: only the rights granted to them.
    ADDITIONAL_USER = "additional_user"


class Right(enum.StrEnum):
    # View the customer's invoices (the invoice service).
    INVOICES_READ = "invoices.read"
    # Report meter readings (the meter-reading service).
    METER_READINGS_SUBMIT = "meter_readings.submit"
    # Add, change and remove the customer's users (the USERS section).
    USERS_MANAGE = "users.manage"


class MembershipState(enum.StrEnum):
    INVITED = "invited"  # the person has not finished activating it
    ACTIVE = "active"
    REVOKED = "revoked"  # removed by the contractor or an admin
    EXPIRED = "expired"  # its validity ended (an authorisation with an end date)


ALL_RIGHTS = frozenset(Right)
# What a contractor may tick for an additional user ("just view invoices or report meter
# readings"); managing users stays with contractors and authorised persons.
GRANTABLE_TO_ADDITIONAL_USERS = frozenset({Right.INVOICES_READ, Right.METER_READINGS_SUBMIT})


class UnknownRight(ValueError):
    """A name that is no right; `name` is it, `known` lists the rights there are."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.known = ", ".join(r.value for r in Right)
        super().__init__(f"unknown right {name!r} (known: {self.known})")


def parse_rights(values: Iterable[str]) -> frozenset[Right]:
    """Rights named by an admin or a form ("invoices.read,meter_readings.submit")."""
    rights = set()
    for value in values:
        for part in value.split(","):
            name = part.strip()
            if not name:
                continue
            try:
                rights.add(Right(name))
            except ValueError:
                raise UnknownRight(name) from None
    return frozenset(rights)


def effective_rights(
    role: str,
    granted: Iterable[str],
    state: str,
    valid_from: dt.datetime | None,
    valid_until: dt.datetime | None,
    now: dt.datetime,
) -> frozenset[Right]:
    """What a membership allows at `now`: nothing unless it is active and within its
    validity; everything for a contractor or an authorised person; for an additional user
    only the granted rights it may hold (a stored `users.manage` gives nothing)."""
    if state != MembershipState.ACTIVE:
        return frozenset()
    if (valid_from is not None and now < valid_from) or (
        valid_until is not None and now >= valid_until
    ):
        return frozenset()
    if role in (Role.CONTRACTOR, Role.AUTHORISED_PERSON):
        return ALL_RIGHTS
    if role == Role.ADDITIONAL_USER:
        return (
            frozenset(r for r in Right if r.value in set(granted)) & GRANTABLE_TO_ADDITIONAL_USERS
        )
    return frozenset()


# Domain scopes (idp/consent/scopes.py describes them to people): a client receives one only
# while the membership it acts through holds the right of the same name.
SCOPE_RIGHTS: dict[str, Right] = {
    "invoices.read": Right.INVOICES_READ,
    "meter_readings.submit": Right.METER_READINGS_SUBMIT,
}


def scopes_allowed_by(scopes: Iterable[str], rights: Iterable[str]) -> list[str]:
    """The scopes that the rights let through, in their order: every non-domain scope, and
    a domain scope only with its right (no acting customer: no rights, no domain scope)."""
    held = {str(r) for r in rights}
    return [s for s in scopes if s not in SCOPE_RIGHTS or SCOPE_RIGHTS[s].value in held]


def shown_rights(membership: Membership) -> list[str]:
    """The rights to show for a membership: all for a contractor or an authorised person,
    the granted ones for an additional user (whatever its state)."""
    if membership.role in (Role.CONTRACTOR, Role.AUTHORISED_PERSON):
        return sorted(r.value for r in ALL_RIGHTS)
    return sorted(r for r in membership.rights if r in GRANTABLE_TO_ADDITIONAL_USERS)
