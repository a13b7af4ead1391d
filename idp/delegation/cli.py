"""`idp delegation` (memberships from signed applications: docs/domain.md flows 6 and 7) and
`idp audit` (their history).

Thin: every rule lives in idp/delegation/services.py; the actor is always Actor.cli().
`--dry-run` runs the whole change, says what it would do, and rolls it back (no mail goes).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Session

from idp.accounts.services import no_customer
from idp.audit import Actor, history
from idp.cli_output import json_option, locale_option, mail_locale, one_line_errors, print_rows
from idp.db import db_session, utcnow
from idp.delegation import services
from idp.memberships.rights import MembershipState
from idp.models import AuditEvent, Customer, Membership, User

delegation_cli = AppGroup("delegation", help="Who may act for a customer (signed applications).")
audit_cli = AppGroup("audit", help="The history of memberships.")

dry_run_option = click.option(
    "--dry-run", is_flag=True, help="Say what would happen; write nothing, send no mail."
)


_errors = one_line_errors(services.DelegationError)


def _customer(session: Session, number: str) -> Customer:
    customer = services.find_customer(session, number)
    if customer is None:
        raise services.DelegationError(no_customer(number))
    return customer


def _finish(session: Session, dry_run: bool) -> None:
    if dry_run:
        session.rollback()
    else:
        session.commit()


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def _invitation_row(invitation: services.Invitation, dry_run: bool) -> dict[str, Any]:
    membership = invitation.membership
    row = {
        "customer": invitation.customer.number,
        "email": invitation.user.email_display,
        "name": invitation.user.name,
        "role": membership.role,
        "rights": services.shown_rights(membership),
        "state": membership.state,
        "valid_until": _iso(membership.valid_until),
        "link_expires_at": _iso(invitation.expires_at),
        "new_account": not invitation.existing_account,
    }
    if dry_run:
        row["dry_run"] = "nothing written, no mail sent"
    return row


@delegation_cli.command("add-user")
@click.option("--customer", "customer_number", required=True, help="Customer number.")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option(
    "--rights", required=True, help="invoices.read and/or meter_readings.submit, comma-separated."
)
@click.option(
    "--personal-code",
    help="The person's code: their bank or eSignature login must prove the same one.",
)
@click.option("--evidence", help="E.g. the number of the signed application.")
@locale_option
@json_option
@dry_run_option
@_errors
def add_user(
    customer_number: str,
    email: str,
    name: str,
    rights: str,
    personal_code: str | None,
    evidence: str | None,
    locale: str | None,
    as_json: bool,
    dry_run: bool,
) -> None:
    """Add an additional user from a contractor's signed application (flow 6): mails an
    invitation; the membership is active once the person has accepted it."""
    language = mail_locale(locale)
    session = db_session()
    invitation = services.invite_additional_user(
        session,
        current_app.config["IDP_SETTINGS"],
        customer=_customer(session, customer_number),
        email=email,
        name=name,
        personal_code=personal_code,
        rights=[rights],
        evidence=evidence,
        actor=Actor.cli(),
        language=language,
    )
    row = _invitation_row(invitation, dry_run)
    _finish(session, dry_run)
    print_rows(row, as_json)


def _end_of_day(value: str) -> dt.datetime:
    try:
        day = dt.date.fromisoformat(value.strip())
    except ValueError:
        raise services.DelegationError(
            _l("--until %(value)s: not a date (YYYY-MM-DD).", value=value)
        ) from None
    return services.end_of_local_day(day)


@delegation_cli.command("add-authorised")
@click.option("--customer", "customer_number", required=True, help="Customer number.")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option(
    "--until",
    "until",
    required=True,
    help="Last day of the authorisation, YYYY-MM-DD (valid to the end of that day, Latvian time).",
)
@click.option(
    "--evidence", required=True, help="The signed application or authorisation (e.g. its number)."
)
@locale_option
@json_option
@dry_run_option
@_errors
def add_authorised(
    customer_number: str,
    email: str,
    name: str,
    until: str,
    evidence: str,
    locale: str | None,
    as_json: bool,
    dry_run: bool,
) -> None:
    """Register an authorised person (flow 7): mails a link to approve by a deadline; then
    they act for the customer with the contractor's rights until the end date."""
    language = mail_locale(locale)
    session = db_session()
    end = _end_of_day(until)
    invitation = services.invite_authorised_person(
        session,
        current_app.config["IDP_SETTINGS"],
        customer=_customer(session, customer_number),
        email=email,
        name=name,
        until=end,
        evidence=evidence,
        actor=Actor.cli(),
        language=language,
    )
    row = _invitation_row(invitation, dry_run)
    _finish(session, dry_run)
    print_rows(row, as_json)


def _membership_row(membership: Membership, granted_by: dict[int, str]) -> dict[str, Any]:
    return {
        "customer": membership.customer.number,
        "name": membership.user.name,
        "email": membership.user.email_display,
        "role": membership.role,
        "rights": services.shown_rights(membership),
        "state": membership.state,
        "valid_until": _iso(membership.valid_until),
        "granted_by": granted_by.get(membership.granted_by_user_id or 0),
        "granted_at": _iso(membership.granted_at),
        "evidence": membership.evidence,
    }


@delegation_cli.command("list")
@click.option("--customer", "customer_number", help="Only this customer's users.")
@click.option("--state", type=click.Choice([s.value for s in MembershipState]))
@json_option
@_errors
def list_memberships(customer_number: str | None, state: str | None, as_json: bool) -> None:
    """Who may act for which customer, as what, with which rights."""
    session = db_session()
    customer_id = _customer(session, customer_number).id if customer_number else None
    found = services.list_memberships(session, customer_id=customer_id, state=state)
    grantor_ids = {m.granted_by_user_id for m in found if m.granted_by_user_id}
    granted_by = {
        user.id: user.email_display
        for user in (session.get(User, i) for i in grantor_ids)
        if user is not None
    }
    print_rows(
        [_membership_row(m, granted_by) for m in found],
        as_json,
        ["customer", "name", "email", "role", "rights", "state", "valid_until", "granted_by"],
    )


@delegation_cli.command("revoke")
@click.option("--customer", "customer_number", required=True, help="Customer number.")
@click.option("--email", required=True)
@click.option("--reason", help="Recorded in the audit trail.")
@json_option
@dry_run_option
@_errors
def revoke(
    customer_number: str, email: str, reason: str | None, as_json: bool, dry_run: bool
) -> None:
    """The person no longer acts for the customer; their refresh tokens for it stop at once."""
    session = db_session()
    customer = _customer(session, customer_number)
    membership = services.membership_by_email(session, customer.id, email)
    if membership is None:
        raise services.DelegationError(
            _l(
                "%(email)s does not act for customer %(number)s.",
                email=email.strip(),
                number=customer.number,
            )
        )
    services.revoke(session, membership=membership, actor=Actor.cli(), reason=reason)
    row = {
        "customer": customer.number,
        "email": membership.user.email_display,
        "role": membership.role,
        "state": membership.state,
    }
    if dry_run:
        row["dry_run"] = "nothing written"
    _finish(session, dry_run)
    print_rows(row, as_json)


@delegation_cli.command("expire")
@json_option
def expire(as_json: bool) -> None:
    """Expire the memberships whose end date has passed (run it from cron; `idp db purge`
    does it too). Rights already end at the end date without it."""
    session = db_session()
    count = services.expire_due(session, utcnow())
    session.commit()
    if as_json:
        click.echo(json.dumps({"expired": count}))
    else:
        click.echo(f"expired {count} membership(s)")


def _event_row(event: AuditEvent) -> dict[str, Any]:
    return {
        "when": _iso(event.at),
        "action": event.action,
        "customer": event.customer_number,
        "person": event.subject_email,
        "actor": event.actor,
        "origin": event.origin,
        "details": event.details,
    }


@audit_cli.command("list")
@click.option("--customer", "customer_number", help="Only this customer's history.")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=200,
    show_default=True,
    help="At most this many events, newest first (0: all).",
)
@json_option
@_errors
def audit_list(customer_number: str | None, limit: int, as_json: bool) -> None:
    """Membership changes, newest first: who did what, for which customer, from where."""
    session = db_session()
    customer_id = _customer(session, customer_number).id if customer_number else None
    rows = [_event_row(e) for e in history(session, customer_id=customer_id, limit=limit)]
    if not as_json:
        for row in rows:
            row["details"] = json.dumps(row["details"], ensure_ascii=False, sort_keys=True)
    print_rows(rows, as_json)
