"""The registered client as Authlib sees it: an immutable snapshot of a `Client` row."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc6749 import ClientMixin, scope_to_list
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.models import Client
from idp.security import secret_matches


@dataclass(frozen=True)
class OAuthClient(ClientMixin):
    id: int
    client_id: str
    name: str
    secret_hash: str | None
    token_endpoint_auth_method: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    allowed_scopes: tuple[str, ...]
    audience: str
    first_party: bool
    id_token_signed_response_alg: str
    jwks: dict[str, Any] | None

    @classmethod
    def from_row(cls, row: Client) -> OAuthClient:
        return cls(
            id=row.id,
            client_id=row.client_id,
            name=row.name,
            secret_hash=row.secret_hash,
            token_endpoint_auth_method=row.token_endpoint_auth_method,
            redirect_uris=tuple(row.redirect_uris),
            post_logout_redirect_uris=tuple(row.post_logout_redirect_uris),
            grant_types=tuple(row.grant_types),
            allowed_scopes=tuple(row.allowed_scopes),
            audience=row.audience,
            first_party=row.first_party,
            id_token_signed_response_alg=row.id_token_signed_response_alg,
            jwks=row.jwks,
        )

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"

    # --- authlib ClientMixin ---------------------------------------------------------
    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        # OIDC Core §3.1.2.1: redirect_uri is required; we never guess one.
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        allowed = set(self.allowed_scopes)
        return " ".join(s for s in dict.fromkeys(scope_to_list(scope)) if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # Exact string comparison (OAuth 2.0 Security BCP, RFC 9700 §4.1.3).
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secret_matches(client_secret, self.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


def find_client(session: Session, client_id: object) -> OAuthClient | None:
    if not isinstance(client_id, str) or not client_id or len(client_id) > 64:
        return None
    row = session.scalar(select(Client).where(Client.client_id == client_id))
    return OAuthClient.from_row(row) if row else None
