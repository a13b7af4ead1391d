"""Roles and rights in words, for pages and mails (one place, translated)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from idp.memberships.rights import MembershipState, Right, Role

ROLE_LABELS = {
    Role.CONTRACTOR: _l("Contractor"),
    Role.AUTHORISED_PERSON: _l("Authorised person"),
    Role.ADDITIONAL_USER: _l("Additional user"),
}

RIGHT_LABELS = {
    Right.INVOICES_READ: _l("View invoices"),
    Right.METER_READINGS_SUBMIT: _l("Report meter readings"),
    Right.USERS_MANAGE: _l("Manage users"),
}

STATE_LABELS = {
    MembershipState.INVITED: _l("Invited"),
    MembershipState.ACTIVE: _l("Active"),
    MembershipState.REVOKED: _l("Removed"),
    MembershipState.EXPIRED: _l("Expired"),
}


def role_label(role: str) -> str:
    return str(ROLE_LABELS.get(role, role))  # type: ignore[call-overload]


def right_label(right: str) -> str:
    return str(RIGHT_LABELS.get(right, right))  # type: ignore[call-overload]


def state_label(state: str) -> str:
    return str(STATE_LABELS.get(state, state))  # type: ignore[call-overload]
