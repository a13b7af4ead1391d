"""Upstream identity providers (banks, eSignature) as admins configure them, the upstream
logins in flight, and the links between upstream identities and portal users.

`providers/` (the connectors) never sees these tables: `providers/registry.py` builds a
connector from an `UpstreamProviderConfig`, and `idp.accounts` keeps the rest.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, utcnow


class UpstreamProviderConfig(Base):
    """One configured upstream (`idp providers add`)."""

    __tablename__ = "upstream_providers"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Short, URL-safe name used in callback paths and VerifiedIdentity.provider.
    name: Mapped[str] = mapped_column(String(32), unique=True)
    # The connector: "oidc" (generic OpenID Connect) or "eparaksts".
    kind: Mapped[str] = mapped_column(String(16))
    # "bank" or "esignature" (docs/domain.md, "Ways to log in").
    method: Mapped[str] = mapped_column(String(16))
    # What the login page's button says.
    display_name: Mapped[str] = mapped_column(String(100))
    # OIDC: the issuer (discovery under it); eParaksts: the service's base URL.
    base_url: Mapped[str] = mapped_column(String(255))
    client_id: Mapped[str] = mapped_column(String(255))
    # Fernet-encrypted with the key-encryption key, like signing keys.
    client_secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Connector options (scopes, the claim carrying the personal code, acr/amr mapping,
    # acr_values, ...), validated by the connector's own configuration class.
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class UpstreamLogin(Base):
    """An upstream login in flight: what the connector must check at the callback (state,
    nonce, PKCE verifier), kept server-side so that the callback can arrive on any app
    instance; the browser brings only its binding cookie (SameSite=None, so that a
    cross-site form_post carries it too)."""

    __tablename__ = "upstream_logins"

    id: Mapped[int] = mapped_column(primary_key=True)
    # SHA-256 of the `state` sent upstream: the callback finds its row by it.
    state_hash: Mapped[str] = mapped_column(String(128), unique=True)
    provider: Mapped[str] = mapped_column(String(32))
    # What the connector kept (LoginStart.pending), encrypted: it holds the PKCE verifier.
    pending_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    # "login", "register" or "link": what the person started.
    purpose: Mapped[str] = mapped_column(String(16))
    # The paused authorization request to resume afterwards, if any.
    interaction_id: Mapped[str | None] = mapped_column(String(64))
    # SHA-256 of the browser-binding cookie set when the button was pressed: the callback
    # counts only in that browser (login CSRF). None (a row from before 0007) matches none.
    browser_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    # Set once, atomically, by the callback that uses it (a replayed callback finds it used).
    used_at: Mapped[dt.datetime | None] = mapped_column()
    # After the callback of a registration: the verified identity (encrypted, it holds the
    # personal code) waiting for the short registration form, found by this token's hash.
    identity_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    form_token_hash: Mapped[str | None] = mapped_column(String(128), unique=True)
    # purpose "invitation": the invitation link being accepted (consumed only when the
    # bank or eSignature login succeeds) and the argon2id hash of the password the person
    # chose on the invitation page, if they had none.
    email_link_id: Mapped[int | None] = mapped_column(
        ForeignKey("email_links.id", ondelete="CASCADE")
    )
    password_hash: Mapped[str | None] = mapped_column(String(255))


class UpstreamLink(Base):
    """A (provider, upstream subject) seen for a user. Secondary: people are linked on the
    verified personal code (docs/domain.md, "Facts worth knowing"); this records the upstream
    accounts that logged in, for support and audit."""

    __tablename__ = "upstream_links"
    __table_args__ = (UniqueConstraint("provider", "subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # The assurance of the latest login through it (idp.assurance: low/substantial/high);
    # None for a link recorded before 0009.
    assurance: Mapped[str | None] = mapped_column(String(16))
