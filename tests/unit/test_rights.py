"""Roles and rights (docs/domain.md): what a membership allows, in one function."""

from __future__ import annotations

import datetime as dt

import pytest

from idp.memberships.rights import (
    ALL_RIGHTS,
    MembershipState,
    Right,
    Role,
    effective_rights,
    parse_rights,
)

NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def allowed(
    role: str,
    granted: list[str],
    state: str = "active",
    valid_from: dt.datetime | None = None,
    valid_until: dt.datetime | None = None,
) -> frozenset[Right]:
    return effective_rights(role, granted, state, valid_from, valid_until, NOW)


@pytest.mark.parametrize("role", [Role.CONTRACTOR, Role.AUTHORISED_PERSON])
def test_contractors_and_authorised_persons_hold_every_right(role: Role) -> None:
    assert (
        allowed(role, [])
        == ALL_RIGHTS
        == {Right.INVOICES_READ, Right.METER_READINGS_SUBMIT, Right.USERS_MANAGE}
    )


def test_an_additional_user_holds_only_what_was_granted() -> None:
    assert allowed(Role.ADDITIONAL_USER, ["invoices.read"]) == {Right.INVOICES_READ}
    assert allowed(Role.ADDITIONAL_USER, []) == frozenset()


def test_an_additional_user_never_manages_users_even_if_stored() -> None:
    assert allowed(Role.ADDITIONAL_USER, ["users.manage", "meter_readings.submit", "x"]) == {
        Right.METER_READINGS_SUBMIT
    }


@pytest.mark.parametrize(
    "state", [MembershipState.INVITED, MembershipState.REVOKED, MembershipState.EXPIRED, "garbage"]
)
def test_only_an_active_membership_allows_anything(state: str) -> None:
    assert allowed(Role.CONTRACTOR, [], state=state) == frozenset()


def test_validity_bounds_an_authorisation() -> None:
    assert allowed(Role.AUTHORISED_PERSON, [], valid_until=NOW + DAY) == ALL_RIGHTS
    assert allowed(Role.AUTHORISED_PERSON, [], valid_until=NOW) == frozenset()  # ends at it
    assert allowed(Role.AUTHORISED_PERSON, [], valid_from=NOW + DAY) == frozenset()


def test_an_unknown_role_allows_nothing() -> None:
    assert allowed("owner", ["invoices.read"]) == frozenset()


def test_rights_are_parsed_from_lists_and_commas() -> None:
    assert parse_rights(["invoices.read,meter_readings.submit", " ", "invoices.read"]) == {
        Right.INVOICES_READ,
        Right.METER_READINGS_SUBMIT,
    }
    with pytest.raises(ValueError, match="unknown right 'invoices.write'"):
        parse_rights(["invoices.write"])
