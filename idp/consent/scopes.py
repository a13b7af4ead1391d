"""The scope catalogue: every scope the IdP knows, with the words people see on the
consent page. Discovery advertises exactly these; a client may be allowed a subset.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import lazy_gettext as _l


@dataclass(frozen=True)
class ScopeInfo:
    name: str
    description: object  # a lazy gettext string
    # Claims released by userinfo and the ID token when this scope is granted.
    claims: tuple[str, ...]


CATALOGUE: dict[str, ScopeInfo] = {
    s.name: s
    for s in (
        ScopeInfo("openid", _l("Confirm who you are (a stable, anonymous identifier)"), ("sub",)),
        ScopeInfo("profile", _l("Your name"), ("name",)),
        ScopeInfo("email", _l("Your e-mail address"), ("email", "email_verified")),
        ScopeInfo("phone", _l("Your phone number"), ("phone_number", "phone_number_verified")),
        # Domain scopes: granted only while the membership holds the right of the same
        # name (idp.memberships.rights.SCOPE_RIGHTS).
        ScopeInfo("invoices.read", _l("View the invoices of the customer you act for"), ()),
        ScopeInfo(
            "meter_readings.submit", _l("Report meter readings for the customer you act for"), ()
        ),
    )
}

SUPPORTED_SCOPES: tuple[str, ...] = tuple(CATALOGUE)


def claims_for(scopes: list[str] | tuple[str, ...]) -> list[str]:
    names: list[str] = []
    for scope in scopes:
        info = CATALOGUE.get(scope)
        if info:
            names.extend(info.claims)
    return names
