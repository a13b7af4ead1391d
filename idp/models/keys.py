"""Signing keys, private parts encrypted at rest (idp.keys)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, utcnow


class SigningKey(Base):
    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(8), index=True)
    public_jwk: Mapped[dict[str, Any]] = mapped_column()
    # PEM (PKCS#8) encrypted with the key-encryption key (Fernet).
    private_key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Published from created_at; used for signing from activates_at.
    activates_at: Mapped[dt.datetime] = mapped_column()
    # Set when a newer key takes over signing; stays published until expires_at.
    retired_at: Mapped[dt.datetime | None] = mapped_column()
    # Removed from JWKS after this (every token it signed has expired by then).
    expires_at: Mapped[dt.datetime | None] = mapped_column()
