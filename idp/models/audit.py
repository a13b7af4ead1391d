"""The audit trail of membership changes (who may act for which customer, and how)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, utcnow


class AuditEvent(Base):
    """One change to a membership: invited, activated, rights changed, revoked, expired.

    Rows are only ever added. The customer number and the person's e-mail are copied in so
    that the history still reads right after a user or membership is deleted.
    """

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_customer_at", "customer_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    # idp.audit.Action
    action: Mapped[str] = mapped_column(String(32))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    customer_number: Mapped[str] = mapped_column(String(32))
    membership_id: Mapped[int | None] = mapped_column(
        ForeignKey("memberships.id", ondelete="SET NULL")
    )
    # The person whose membership changed.
    subject_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    subject_email: Mapped[str] = mapped_column(String(320))
    # Who did it: a portal user (actor_user_id), an admin at the CLI, or the system
    # (expiry); `actor` is the readable label ("janis@example.lv", "admin (CLI: root)").
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(320))
    # Where from: the client IP of a web request, "cli" or "system".
    origin: Mapped[str] = mapped_column(String(64))
    # What changed, e.g. {"rights": ["invoices.read"], "previous": [...]}.
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class AccountEvent(Base):
    """One thing that happened to a person's account (issue 15, "Access history"): a
    login, tokens issued to an application, a failed password, or a change the person made
    on "My account". Rows are only ever added; `idp db purge` deletes the access rows
    (logins, tokens, failures) older than the retention setting, never the changes.

    The client's and customer's names are copied in so that the row reads right after
    either is deleted.
    """

    __tablename__ = "account_events"
    __table_args__ = (
        Index("ix_account_events_user_at", "user_id", "at"),
        Index("ix_account_events_customer_at", "customer_id", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # idp.access_history.Kind
    kind: Mapped[str] = mapped_column(String(32))
    # How the person proved who they are: "password", "bank", "esignature"; None for a
    # change or a token issuance without a login.
    method: Mapped[str | None] = mapped_column(String(16))
    # The client address of the request ("cli" or "system" when not a web request).
    ip: Mapped[str] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="SET NULL"))
    client_name: Mapped[str | None] = mapped_column(String(255))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    customer_number: Mapped[str | None] = mapped_column(String(32))
    # What changed, e.g. {"from": "a@x.lv", "to": "b@x.lv"}; never a secret.
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
