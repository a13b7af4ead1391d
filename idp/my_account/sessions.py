"""Where a person is logged in, and logging other browsers out (issue 15, "Sessions").

A browser session is one row of `browser_sessions`; ending one deletes that row (its
cookie then finds nothing, so the browser is asked to log in) and revokes the token
families issued under it (TokenFamily.sid): whoever ends a session they do not recognise
wants the applications logged in through it out too, at once, not when their refresh
tokens expire.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp import access_history
from idp.access_history import Kind, Origin
from idp.models import BrowserSession
from idp.my_account.devices import Device, read_user_agent
from idp.token_families import revoke_session_families

# What idp.accounts.services.start_browser_session makes (new_token(16)): anything else in
# a URL is not a session.
SID = re.compile(r"[A-Za-z0-9_-]{16,64}")
REVOKED_REASON = "session_ended"


@dataclass(frozen=True)
class LiveSession:
    """One browser the person is logged in on, as the page shows it."""

    sid: str
    device: Device
    ip: str | None
    started: dt.datetime
    last_used: dt.datetime | None
    method: str  # "password" | "bank" | "esignature" | "upstream" (bank or eSignature)
    this_browser: bool


def live_sessions(
    session: Session, user_id: int, this_sid: str, now: dt.datetime
) -> list[LiveSession]:
    """The person's sessions that have not expired: this browser first, then the others,
    most recently used first."""
    rows = session.scalars(
        select(BrowserSession).where(
            BrowserSession.user_id == user_id, BrowserSession.expires_at > now
        )
    )
    found = [_shown(row, this_sid) for row in rows]
    found.sort(key=lambda s: (s.last_used or s.started).timestamp(), reverse=True)
    found.sort(key=lambda s: not s.this_browser)
    return found


def _shown(row: BrowserSession, this_sid: str) -> LiveSession:
    return LiveSession(
        sid=row.sid,
        device=read_user_agent(row.user_agent),
        ip=row.ip,
        started=row.created_at,
        last_used=row.last_seen_at,
        method=access_history.login_method(list(row.amr), acr=row.acr),
        this_browser=row.sid == this_sid,
    )


def end_session(
    session: Session, user_id: int, sid: str, this_sid: str, origin: Origin
) -> LiveSession | None:
    """Log out one of the person's other browsers. None when `sid` is none of their
    sessions, or is this browser's (which logs out with the ordinary "Log out")."""
    if sid == this_sid or not SID.fullmatch(sid):
        return None
    row = session.scalar(
        select(BrowserSession).where(BrowserSession.sid == sid, BrowserSession.user_id == user_id)
    )
    if row is None:
        return None
    ended = _shown(row, this_sid)
    families = _end(session, row)
    access_history.record(
        session,
        Kind.SESSION_ENDED,
        user_id,
        origin,
        details={"device": ended.device.english(), "apps_logged_out": families},
    )
    return ended


def end_other_sessions(
    session: Session, user_id: int, this_sid: str, origin: Origin, now: dt.datetime
) -> int:
    """Log out every browser of the person but this one; how many there were (expired
    sessions are left to `idp db purge`: they log no one in already)."""
    rows = list(
        session.scalars(
            select(BrowserSession).where(
                BrowserSession.user_id == user_id,
                BrowserSession.sid != this_sid,
                BrowserSession.expires_at > now,
            )
        )
    )
    devices = sorted(read_user_agent(row.user_agent).english() for row in rows)
    families = sum(_end(session, row) for row in rows)
    if rows:
        access_history.record(
            session,
            Kind.OTHER_SESSIONS_ENDED,
            user_id,
            origin,
            details={"sessions": len(rows), "devices": devices, "apps_logged_out": families},
        )
    return len(rows)


def _end(session: Session, row: BrowserSession) -> int:
    """Delete the session and revoke what was issued under it; how many token families."""
    families = revoke_session_families(session, row.user_id, row.sid, REVOKED_REASON)
    session.delete(row)
    return families
