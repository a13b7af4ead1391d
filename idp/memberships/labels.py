"""Roles and rights in words, for pages and mails (one place, translated)."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l

from idp.memberships.rights import MembershipState, Right, Role

# Keyed by str: the enumerations are StrEnums, and callers pass the stored strings.
ROLE_LABELS: dict[str, Any] = {
    Role.CONTRACTOR: _l("Account holder"),
    Role.AUTHORISED_PERSON: _l("Authorised person"),
    Role.ADDITIONAL_USER: _l("Additional user"),
}

RIGHT_LABELS: dict[str, Any] = {
    Right.INVOICES_READ: _l("View invoices"),
    Right.METER_READINGS_SUBMIT: _l("Report meter readings"),
    Right.USERS_MANAGE: _l("Manage users"),
}

STATE_LABELS: dict[str, Any] = {
    MembershipState.INVITED: _l("Invited"),
    MembershipState.ACTIVE: _l("Active"),
    MembershipState.REVOKED: _l("Removed"),
    MembershipState.EXPIRED: _l("Expired"),
}


def role_label(role: str) -> str:
    return str(ROLE_LABELS.get(role, role))


def right_label(right: str) -> str:
    return str(RIGHT_LABELS.get(right, right))


def state_label(state: str) -> str:
    return str(STATE_LABELS.get(state, state))
