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
        ScopeInfo(
            "openid",
            _l("Recognise you when you come back (by a number that tells nothing about you)"),
            ("sub",),
        ),
        ScopeInfo("profile", _l("See your name"), ("name",)),
        ScopeInfo("email", _l("See your e-mail address"), ("email", "email_verified")),
        ScopeInfo("phone", _l("See your phone number"), ("phone_number", "phone_number_verified")),
        # Domain scopes: granted only while the membership holds the right of the same
        # name (idp.memberships.rights.SCOPE_RIGHTS).
        ScopeInfo("invoices.read", _l("See the invoices of the customer you act for"), ()),
        ScopeInfo(
            "meter_readings.submit", _l("Send meter readings for the customer you act for"), ()
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
