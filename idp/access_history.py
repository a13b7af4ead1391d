"""A person's access history and account changes (issue 15): one function records every
row of `account_events`, whoever writes it (a login, a token issuance, a wrong password, a
change on "My account"), in the caller's transaction, so an event and what it records
commit together or not at all. Nothing here updates a row; `idp db purge` deletes the
access rows older than `access_history_days` (housekeeping.purge_expired).
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from idp.db import utcnow
from idp.memberships.acting import Acting
from idp.models import AccountEvent, Customer, User

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
# What a person checks their history for: shown so that it stands out.
FAILED_KINDS = frozenset({Kind.LOGIN_FAILED})

# The pages' words for each Kind (the access history, the USERS logins page).
KIND_LABELS: dict[str, Any] = {
    Kind.LOGIN: _l("Login"),
    Kind.LOGIN_FAILED: _l("Wrong password"),
    Kind.TOKENS_ISSUED: _l("Application received tokens"),
    Kind.PROFILE_CHANGED: _l("Profile changed"),
    Kind.EMAIL_CHANGE_REQUESTED: _l("E-mail change requested"),
    Kind.EMAIL_CHANGED: _l("E-mail changed"),
    Kind.PASSWORD_CHANGED: _l("Password changed"),
    Kind.PASSWORD_SET: _l("Password set"),
    Kind.UPSTREAM_LINKED: _l("Bank or eSignature login linked"),
    Kind.SESSION_ENDED: _l("Logged out of a browser"),
    Kind.OTHER_SESSIONS_ENDED: _l("Logged out of every other browser"),
    Kind.CONSENT_WITHDRAWN: _l("Application's access withdrawn"),
    Kind.DATA_EXPORTED: _l("My data downloaded"),
}
METHOD_LABELS: dict[str, Any] = {
    "password": _l("E-mail and password"),
    "bank": _l("Internet bank"),
    "esignature": _l("eSignature"),
    "upstream": _l("Internet bank or eSignature"),
}


def kind_label(kind: str) -> str:
    return str(KIND_LABELS.get(kind, kind))


def method_label(method: str | None) -> str:
    return str(METHOD_LABELS.get(method, "")) if method else ""


def login_method(
    amr: list[str] | tuple[str, ...], method: str | None = None, acr: str | None = None
) -> str:
    """How a login proved the person (docs/domain.md, "Ways to log in"), the one rule for
    the history and the Sessions page: the upstream's own method when known; else read from
    the amr ("bank"; "sc"/"swk"/"hwk": eSignature; "pwd": password); else from the
    assurance a bank ("substantial") or eSignature ("high") login reached; "upstream" (a
    bank or eSignature, which one unknown) when nothing tells."""
    if method:
        return method
    if "bank" in amr:
        return "bank"
    if {"sc", "swk", "hwk"} & set(amr):
        return "esignature"
    if "pwd" in amr:
        return "password"
    return {"substantial": "bank", "high": "esignature"}.get(acr or "", "upstream")


class NamedClient(Protocol):
    """A `Client` row, or the OAuthClient snapshot the token endpoint already holds."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...


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
    client: NamedClient | None = None,
    customer: Customer | Acting | None = None,
    details: dict[str, Any] | None = None,
) -> AccountEvent:
    """Add one event to the session (the caller commits). Names are copied so the row
    reads right after the client or customer is deleted; values are cut to the columns.
    The customer may be the Acting context a token grant already read (no extra query)."""
    customer_id: int | None = None
    customer_number: str | None = None
    if isinstance(customer, Acting):
        customer_id, customer_number = customer.customer_id, customer.customer_number
    elif customer is not None:
        customer_id, customer_number = customer.id, customer.number
    event = AccountEvent(
        at=utcnow(),
        user_id=user_id,
        kind=kind.value,
        method=method,
        ip=(origin.ip or "unknown")[:_IP_MAX],
        user_agent=origin.user_agent[:_AGENT_MAX] if origin.user_agent else None,
        client_id=client.id if client is not None else None,
        client_name=client.name[:_NAME_MAX] if client is not None else None,
        customer_id=customer_id,
        customer_number=customer_number,
        details=details or {},
    )
    session.add(event)
    return event


# --- reading the history ---------------------------------------------------------------------

PAGE_SIZE = 50
# Beyond any history kept: a larger ?page= is junk (404), never an OFFSET to compute.
MAX_PAGE = 10_000


def page_number(raw: str | None) -> int | None:
    """?page=N as a number from 1 to MAX_PAGE (absent: 1), or None for anything else."""
    if raw is None:
        return 1
    if not raw.isascii() or not raw.isdigit() or len(raw) > 5:
        return None
    number = int(raw)
    return number if 1 <= number <= MAX_PAGE else None


@dataclass(frozen=True)
class Page:
    """One page of events, newest first; `number` counts from 1 (the newest)."""

    rows: list[Any]
    number: int
    has_older: bool

    @property
    def has_newer(self) -> bool:
        return self.number > 1

    @property
    def past_the_end(self) -> bool:
        """A page after the oldest one (?page= typed or kept from a longer history)."""
        return not self.rows and self.has_newer


def page_of(session: Session, statement: Select[*tuple[Any, ...]], number: int) -> Page:
    """`statement` (ordered newest first) cut to page `number`: one row more than a page
    tells whether an older page exists, without a COUNT."""
    rows = list(
        session.execute(statement.limit(PAGE_SIZE + 1).offset((number - 1) * PAGE_SIZE)).all()
    )
    return Page(rows[:PAGE_SIZE], number, len(rows) > PAGE_SIZE)


def kept_since(days: int, now: dt.datetime | None = None) -> dt.datetime:
    """The oldest moment the history shows (`access_history_days`)."""
    return (now or utcnow()) - dt.timedelta(days=days)


_S = TypeVar("_S", bound="Select[*tuple[Any, ...]]")


def newest_first(statement: _S) -> _S:
    return statement.order_by(AccountEvent.at.desc(), AccountEvent.id.desc())


def customer_logins(session: Session, customer_id: int, days: int, number: int) -> Page:
    """The app logins of everyone acting for a customer (issue 15: the contractor's view in
    USERS): tokens issued for it, with the person's name and e-mail; rows
    (AccountEvent, name, email_display)."""
    statement = (
        select(AccountEvent, User.name, User.email_display)
        .join(User, User.id == AccountEvent.user_id)
        .where(
            AccountEvent.customer_id == customer_id,
            AccountEvent.kind == Kind.TOKENS_ISSUED.value,
            AccountEvent.at >= kept_since(days),
        )
    )
    return page_of(session, newest_first(statement), number)
