"""The audit trail of memberships (issue 5, "Audit"): who invited, activated, changed,
revoked or expired whose right to act for which customer, when, and from where.

Rows are written in the caller's transaction, so a change and its record commit together
or not at all; nothing here ever updates or deletes a row.
"""

from __future__ import annotations

import datetime as dt
import enum
import getpass
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.db import utcnow
from idp.models import AuditEvent, Membership, User

# The sizes of audit_events.actor and audit_events.origin.
_LABEL_MAX = 320
_ORIGIN_MAX = 64


class Action(enum.StrEnum):
    INVITED = "invited"
    ACTIVATED = "activated"
    RIGHTS_CHANGED = "rights_changed"
    REVOKED = "revoked"
    EXPIRED = "expired"
    INVITATION_RESENT = "invitation_resent"
    # The invited person's bank or eSignature login proved someone else (flow 6): the link
    # is used up and the inviter must send a new one.
    INVITATION_REFUSED = "invitation_refused"


@dataclass(frozen=True)
class Actor:
    """Who made a change: a portal user (from a client IP), an admin at the CLI, or the
    system itself (an authorisation that reached its end date)."""

    user_id: int | None
    label: str
    origin: str

    @classmethod
    def cli(cls) -> Actor:
        try:
            who = getpass.getuser()
        except (OSError, KeyError):  # no login name in the environment nor in passwd
            who = "unknown"
        return cls(None, f"admin (CLI: {who})"[:_LABEL_MAX], "cli")

    @classmethod
    def system(cls) -> Actor:
        return cls(None, "system", "system")

    @classmethod
    def person(cls, user: User, origin: str) -> Actor:
        return cls(user.id, user.email_display[:_LABEL_MAX], (origin or "unknown")[:_ORIGIN_MAX])


def record(
    session: Session,
    action: Action,
    membership: Membership,
    actor: Actor,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add one event for `membership` to the session (the caller commits). The customer
    number and the person's address are copied so the row reads right after deletions."""
    event = AuditEvent(
        at=utcnow(),
        action=action.value,
        customer_id=membership.customer_id,
        customer_number=membership.customer.number,
        membership_id=membership.id,
        subject_user_id=membership.user_id,
        subject_email=membership.user.email_display,
        actor_user_id=actor.user_id,
        actor=actor.label[:_LABEL_MAX],
        origin=actor.origin[:_ORIGIN_MAX],
        details=_jsonable(details or {}),
    )
    session.add(event)
    return event


def history(
    session: Session, *, customer_id: int | None = None, limit: int = 200
) -> list[AuditEvent]:
    """The newest events first: of one customer, or of all."""
    query = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    if customer_id is not None:
        query = query.where(AuditEvent.customer_id == customer_id)
    if limit:
        query = query.limit(limit)
    return list(session.scalars(query))


def _jsonable(value: Any) -> Any:
    """Details go into a JSON column: datetimes as ISO 8601, sets as sorted lists."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted(str(v) for v in value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, enum.Enum):
        return value.value
    return value
