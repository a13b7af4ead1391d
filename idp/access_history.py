"""A person's access history and account changes (issue 15): one function records every
row of `account_events`, whoever writes it (a login, a token issuance, a wrong password, a
change on "My account"), in the caller's transaction, so an event and what it records
commit together or not at all. Nothing here updates a row; `idp db purge` deletes the
access rows older than `access_history_days` (housekeeping.purge_expired).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from idp.db import utcnow
from idp.models import AccountEvent, Client, Customer

# The sizes of the columns the values are cut to.
_IP_MAX = 64
_AGENT_MAX = 255
_NAME_MAX = 255


class Kind(enum.StrEnum):
    # Access: kept `access_history_days`, then purged.
    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    TOKENS_ISSUED = "tokens_issued"
    # Changes the person made on "My account": kept like the membership audit.
    PROFILE_CHANGED = "profile_changed"
    EMAIL_CHANGE_REQUESTED = "email_change_requested"
    EMAIL_CHANGED = "email_changed"
    PASSWORD_CHANGED = "password_changed"  # noqa: S105  (an event name)
    PASSWORD_SET = "password_set"  # noqa: S105  (an event name, not a password)
    UPSTREAM_LINKED = "upstream_linked"
    SESSION_ENDED = "session_ended"
    OTHER_SESSIONS_ENDED = "other_sessions_ended"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    DATA_EXPORTED = "data_exported"


ACCESS_KINDS = frozenset({Kind.LOGIN, Kind.LOGIN_FAILED, Kind.TOKENS_ISSUED})


def login_method(amr: list[str] | tuple[str, ...], method: str | None = None) -> str:
    """How a login proved the person: "bank" or "esignature" (the upstream's method), else
    "password" for an amr of "pwd"."""
    if method:
        return method
    return "password" if "pwd" in amr else "unknown"


@dataclass(frozen=True)
class Origin:
    """Where a request came from: the client address and the browser's User-Agent."""

    ip: str
    user_agent: str | None = None

    @classmethod
    def of_request(cls) -> Origin:
        from flask import request  # only in a request; the CLI passes Origin("cli")

        agent = request.headers.get("User-Agent")
        return cls(request.remote_addr or "unknown", agent)


def record(
    session: Session,
    kind: Kind,
    user_id: int,
    origin: Origin,
    *,
    method: str | None = None,
    client: Client | None = None,
    customer: Customer | None = None,
    details: dict[str, Any] | None = None,
) -> AccountEvent:
    """Add one event to the session (the caller commits). Names are copied so the row
    reads right after the client or customer is deleted; values are cut to the columns."""
    event = AccountEvent(
        at=utcnow(),
        user_id=user_id,
        kind=kind.value,
        method=method,
        ip=(origin.ip or "unknown")[:_IP_MAX],
        user_agent=origin.user_agent[:_AGENT_MAX] if origin.user_agent else None,
        client_id=client.id if client is not None else None,
        client_name=client.name[:_NAME_MAX] if client is not None else None,
        customer_id=customer.id if customer is not None else None,
        customer_number=customer.number if customer is not None else None,
        details=details or {},
    )
    session.add(event)
    return event
