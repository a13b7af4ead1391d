"""Registered relying apps (OAuth 2.0 / OIDC clients)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, utcnow


class Client(Base):
    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    # SHA-256 of the secret (secrets are 256-bit random, so a fast hash is enough);
    # None for public clients and private_key_jwt clients.
    secret_hash: Mapped[str | None] = mapped_column(String(128))
    # client_secret_basic | client_secret_post | private_key_jwt | none
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(32))
    redirect_uris: Mapped[list[str]] = mapped_column(default=list)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(default=list)
    grant_types: Mapped[list[str]] = mapped_column(default=list)
    # Scopes this client may ever receive.
    allowed_scopes: Mapped[list[str]] = mapped_column(default=list)
    # `aud` of its access tokens: the resource server it calls.
    audience: Mapped[str] = mapped_column(String(255))
    # First-party clients are pre-approved by the admin and skip the consent page.
    first_party: Mapped[bool] = mapped_column(default=False)
    id_token_signed_response_alg: Mapped[str] = mapped_column(String(8), default="RS256")
    # Public keys for private_key_jwt (a JWK Set).
    jwks: Mapped[dict[str, Any] | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"  # noqa: S105 (a method name)
