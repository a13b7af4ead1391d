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
