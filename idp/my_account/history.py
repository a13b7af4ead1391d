"""The person's access history and "My data" (issue 15): their own events of the last
`access_history_days`, and everything the IdP holds about them as JSON (GDPR Art. 15),
never a secret or a hash (no password hash, cookie id hash, token or link hash, mail body).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from idp import access_history
from idp.access_history import Kind, Origin, Page
from idp.models import (
    AccountEvent,
    BrowserSession,
    Client,
    ConsentGrant,
    Customer,
    EmailLink,
    Membership,
    OutboxMail,
    TokenFamily,
    UpstreamLink,
    User,
)


def own_events(session: Session, user_id: int, days: int, number: int) -> Page:
    """Page `number` of the person's events (rows of one AccountEvent), newest first."""
    statement = select(AccountEvent).where(
        AccountEvent.user_id == user_id, AccountEvent.at >= access_history.kept_since(days)
    )
    return access_history.page_of(session, access_history.newest_first(statement), number)


# --- My data -------------------------------------------------------------------------------


def _when(moment: dt.datetime | None) -> str | None:
    """ISO 8601 in UTC (the columns hold UTC; SQLite gives them back without a zone)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).isoformat()


def _account(user: User) -> dict[str, Any]:
    return {
        "subject": user.subject,
        "name": user.name,
        "email": user.email_display,
        "email_verified": user.email_verified,
        "phone": user.phone,
        "language": user.language,
        "status": user.status,
        "created_at": _when(user.created_at),
        # The person's own data, proven by their bank or eSignature: in full.
        "verified_personal_code": user.verified_personal_code,
        "legacy_account": user.legacy,
        "password_set": user.password_hash is not None,
    }


def _memberships(session: Session, user_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Membership, Customer.number, Customer.name)
        .join(Customer, Customer.id == Membership.customer_id)
        .where(Membership.user_id == user_id)
        .order_by(Membership.granted_at, Membership.id)
    )
    return [
        {
            "customer_number": number,
            "customer_name": name,
            "role": m.role,
            "rights": list(m.rights),
            "state": m.state,
            "valid_from": _when(m.valid_from),
            "valid_until": _when(m.valid_until),
            "granted_at": _when(m.granted_at),
            "evidence": m.evidence,
        }
        for m, number, name in rows
    ]


def _upstream_links(session: Session, user_id: int) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(UpstreamLink).where(UpstreamLink.user_id == user_id).order_by(UpstreamLink.id)
    )
    return [
        {
            "provider": link.provider,
            "upstream_subject": link.subject,
            "created_at": _when(link.created_at),
            "last_login_at": _when(link.last_login_at),
            "assurance": link.assurance,
        }
        for link in rows
    ]


def _consents(session: Session, user_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(ConsentGrant, Client.name, Customer.number)
        .join(Client, Client.id == ConsentGrant.client_id)
        .outerjoin(Customer, Customer.id == ConsentGrant.customer_id)
        .where(ConsentGrant.user_id == user_id)
        .order_by(ConsentGrant.id)
    )
    return [
        {
            "application": app_name,
            "customer_number": number,
            "scopes": list(grant.scopes),
            "since": _when(grant.created_at),
            "updated_at": _when(grant.updated_at),
        }
        for grant, app_name, number in rows
    ]


def _browser_sessions(session: Session, user_id: int) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(BrowserSession)
        .where(BrowserSession.user_id == user_id)
        .order_by(BrowserSession.created_at)
    )
    return [
        {
            "started_at": _when(b.created_at),
            "logged_in_at": _when(b.auth_time),
            "last_used_at": _when(b.last_seen_at),
            "ip": b.ip,
            "user_agent": b.user_agent,
            "acr": b.acr,
            "amr": list(b.amr),
            "expires_at": _when(b.expires_at),
        }
        for b in rows
    ]


def _token_families(session: Session, user_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(TokenFamily, Client.name, Customer.number)
        .join(Client, Client.id == TokenFamily.client_id)
        .outerjoin(Customer, Customer.id == TokenFamily.customer_id)
        .where(TokenFamily.user_id == user_id)
        .order_by(TokenFamily.created_at)
    )
    return [
        {
            "application": app_name,
            "customer_number": number,
            "scope": family.scope,
            "created_at": _when(family.created_at),
            "expires_at": _when(family.expires_at),
            "revoked_at": _when(family.revoked_at),
            "revoked_reason": family.revoked_reason,
        }
        for family, app_name, number in rows
    ]


def _events(session: Session, user_id: int) -> list[dict[str, Any]]:
    rows = session.scalars(
        access_history.newest_first(select(AccountEvent).where(AccountEvent.user_id == user_id))
    )
    return [
        {
            "at": _when(e.at),
            "kind": e.kind,
            "method": e.method,
            "ip": e.ip,
            "user_agent": e.user_agent,
            "application": e.client_name,
            "customer_number": e.customer_number,
            "details": e.details,
        }
        for e in rows
    ]


def _email_links(session: Session, user_id: int) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(EmailLink)
        .where(
            EmailLink.user_id == user_id,
            EmailLink.used_at.is_(None),
            EmailLink.voided_at.is_(None),
        )
        .order_by(EmailLink.created_at)
    )
    return [
        {
            "purpose": link.purpose,
            "created_at": _when(link.created_at),
            "expires_at": _when(link.expires_at),
            "new_email": link.new_email,
        }
        for link in rows
    ]


def _mails_waiting(session: Session, user: User) -> list[dict[str, Any]]:
    # Subject and state only: a body carries live link tokens.
    rows = session.scalars(
        select(OutboxMail)
        .where(
            func.lower(OutboxMail.to_address).in_({user.email, user.email_display.lower()}),
            OutboxMail.sent_at.is_(None),
        )
        .order_by(OutboxMail.created_at)
    )
    return [
        {
            "subject": mail.subject,
            "language": mail.language,
            "created_at": _when(mail.created_at),
            "state": "retrying" if mail.attempts else "waiting",
        }
        for mail in rows
    ]


def export_person(session: Session, user: User) -> dict[str, Any]:
    """Everything held about `user`, JSON-able (GDPR Art. 15). Each section lists the
    columns it gives: a new secret column is never exported by accident."""
    return {
        "account": _account(user),
        "memberships": _memberships(session, user.id),
        "upstream_links": _upstream_links(session, user.id),
        "consents": _consents(session, user.id),
        "browser_sessions": _browser_sessions(session, user.id),
        "token_families": _token_families(session, user.id),
        "account_events": _events(session, user.id),
        "email_links_waiting": _email_links(session, user.id),
        "mails_waiting": _mails_waiting(session, user),
    }


def download(session: Session, user: User, origin: Origin) -> dict[str, Any]:
    """The export, and its download in the person's history (the caller commits)."""
    data = export_person(session, user)
    access_history.record(session, Kind.DATA_EXPORTED, user.id, origin)
    return data
