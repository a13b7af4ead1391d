"""The one place where claims about a user are built, for ID tokens and userinfo alike."""

from __future__ import annotations

from typing import Any, Protocol

from authlib.oauth2.rfc6749 import scope_to_list

from idp.consent.scopes import claims_for
from idp.memberships.acting import Acting
from idp.models import User


class ClaimSource(Protocol):
    """What claims are built from: a `User`, or a row of USER_CLAIM_COLUMNS (read only)."""

    @property
    def subject(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def email_display(self) -> str: ...
    @property
    def email_verified(self) -> bool: ...
    @property
    def phone(self) -> str | None: ...


# The columns user_claims reads, for queries that need claims but not a whole User.
USER_CLAIM_COLUMNS = (User.subject, User.name, User.email_display, User.email_verified, User.phone)

SUPPORTED_CLAIMS = (
    "sub",
    "name",
    "email",
    "email_verified",
    "phone_number",
    "phone_number_verified",
    "acr",
    "amr",
    "auth_time",
    "sid",
    "nonce",
    "at_hash",
    "iss",
    "aud",
    "azp",
    "exp",
    "iat",
    "customer",
    "role",
    "rights",
)


def user_claims(user: ClaimSource, scope: str, acting: Acting | None = None) -> dict[str, Any]:
    """OIDC Core §5.4: the claims each granted scope releases, and the acting context
    (`customer`, `role`, `rights`), which every token of a user acting for a customer
    carries whatever the scope (docs/domain.md, "What relying apps receive")."""
    available: dict[str, Any] = {
        "sub": user.subject,
        "name": user.name,
        "email": user.email_display,
        "email_verified": user.email_verified,
        "phone_number": user.phone,
        # Phone numbers are not verified by the IdP (yet); say so only when there is one.
        "phone_number_verified": False if user.phone else None,
    }
    claims: dict[str, Any] = {"sub": user.subject}
    for name in claims_for(scope_to_list(scope) or []):
        value = available.get(name)
        if value is not None:
            claims[name] = value
    if acting is not None:
        claims.update(acting.id_token_claims())
    return claims


def userinfo_claims(
    user: ClaimSource, scope: str, acting: Acting | None = None
) -> dict[str, Any] | None:
    """The userinfo answer for an active token, or None when its scope lacks `openid`
    (OIDC Core §5.3: userinfo serves OpenID Connect access tokens only)."""
    if "openid" not in scope.split():
        return None
    return user_claims(user, scope, acting)
