"""Browser sessions, paused authorization requests, consent records, login throttling."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from idp.db import Base, utcnow
from idp.models.users import User


class BrowserSession(Base):
    """One logged-in browser. The cookie holds a random id; only its hash is stored."""

    __tablename__ = "browser_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Public session id for the `sid` claim (OIDC Front-/Back-Channel Logout).
    sid: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    auth_time: Mapped[dt.datetime] = mapped_column()
    acr: Mapped[str] = mapped_column(String(64))
    amr: Mapped[list[str]] = mapped_column(default=list)
    # The customer the person last chose to act for in this browser (silent logins and a
    # second application reuse it; prompt=select_account asks again).
    acting_customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL")
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    # What "My account" shows of the session (issue 15): the browser's User-Agent and the
    # client address at login, and when it was last seen (refreshed at most once a minute).
    user_agent: Mapped[str | None] = mapped_column(String(255))
    ip: Mapped[str | None] = mapped_column(String(64))
    last_seen_at: Mapped[dt.datetime | None] = mapped_column()

    user: Mapped[User] = relationship()


class Interaction(Base):
    """An authorization request paused for login or consent, resumable on any instance."""

    __tablename__ = "interactions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    # The original request parameters (multi-valued form: name -> list of values).
    params: Mapped[dict[str, Any]] = mapped_column()
    # SHA-256 of the interaction cookie of the browser that made the /authorize request:
    # a login finished in another browser never attaches to it (the id travels in URLs).
    # None (a row from before 0007) belongs to no browser.
    browser_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    # sid of the session that satisfied the login step (prompt=login / max_age).
    login_sid: Mapped[str | None] = mapped_column(String(64))
    # True once the person pressed "Allow" (this request only; the record is ConsentGrant).
    consented: Mapped[bool] = mapped_column(default=False)
    # The customer chosen for this request on the "act for" page.
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))


class ConsentGrant(Base):
    """What a user allowed a client to receive while acting for a customer (remembered
    consent, per user, client and customer; customer_id None: no customer)."""

    __tablename__ = "consent_grants"
    __table_args__ = (
        UniqueConstraint("user_id", "client_id", "customer_id"),
        # The constraint above lets any number of rows with customer_id NULL through (NULLs
        # are distinct in SQL); this keeps one "no customer" grant per user and client.
        Index(
            "uq_consent_grants_no_customer",
            "user_id",
            "client_id",
            unique=True,
            sqlite_where=text("customer_id IS NULL"),
            postgresql_where=text("customer_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    scopes: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class LoginFailure(Base):
    """Failed password logins per account, from anywhere (key "account:<email>")."""

    __tablename__ = "login_failures"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    last_failure_at: Mapped[dt.datetime] = mapped_column()


class LoginPairFailure(Base):
    """Failed password logins per (client address, account). Read two ways: one row is the
    pair's own count; the rows of one address are the distinct accounts that failed from
    it (the per-address throttle). Address first in the key, so that count is a prefix scan.
    """

    __tablename__ = "login_pair_failures"

    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    account: Mapped[str] = mapped_column(String(320), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    last_failure_at: Mapped[dt.datetime] = mapped_column()
