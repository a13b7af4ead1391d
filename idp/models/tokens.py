"""Authorization codes, token families (one per login grant) and refresh tokens.

Only hashes of codes and refresh tokens are stored. Access tokens are self-contained JWTs;
those that come from a user's grant carry the family id (`gid`), so revoking the family
makes them inactive at userinfo and introspection.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, utcnow


class TokenFamily(Base):
    """Everything issued from one authorization code: refresh tokens rotate inside it."""

    __tablename__ = "token_families"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # The customer the user acts for (docs/domain.md: one user acting for one customer); None
    # for a person without any active membership. Checked again at every refresh.
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    scope: Mapped[str] = mapped_column(String(1024))
    sid: Mapped[str | None] = mapped_column(String(64))
    auth_time: Mapped[int] = mapped_column()
    acr: Mapped[str | None] = mapped_column(String(64))
    amr: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # The absolute cap: no refresh token of this family is valid after it.
    expires_at: Mapped[dt.datetime] = mapped_column()
    revoked_at: Mapped[dt.datetime | None] = mapped_column()
    revoked_reason: Mapped[str | None] = mapped_column(String(64))


class AuthorizationCode(Base):
    __tablename__ = "authorization_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(String(2048))
    scope: Mapped[str] = mapped_column(String(1024))
    nonce: Mapped[str | None] = mapped_column(String(512))
    code_challenge: Mapped[str | None] = mapped_column(String(128))
    code_challenge_method: Mapped[str | None] = mapped_column(String(8))
    sid: Mapped[str | None] = mapped_column(String(64))
    auth_time: Mapped[int] = mapped_column()
    acr: Mapped[str | None] = mapped_column(String(64))
    amr: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    # Set atomically by the one redemption that wins; a second one finds it set.
    used_at: Mapped[dt.datetime | None] = mapped_column()
    # The family created by the redemption, revoked if the code is presented again.
    family_id: Mapped[str | None] = mapped_column(String(64))


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    family_id: Mapped[str] = mapped_column(
        ForeignKey("token_families.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    # Set atomically when rotated (or revoked); presenting it again revokes the family.
    used_at: Mapped[dt.datetime | None] = mapped_column()


class RevokedAccessToken(Base):
    """Access tokens revoked one by one (RFC 7009), kept until they would expire anyway."""

    __tablename__ = "revoked_access_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)


class UsedClientAssertion(Base):
    """`jti` of private_key_jwt assertions already seen (RFC 7523 §3, replay)."""

    __tablename__ = "used_client_assertions"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
