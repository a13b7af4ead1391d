"""`idp users`: portal users created by admins (flow 5 invitations, demo and test users)
and the users of the previous portal loaded from CSV (flow 4).

Thin: the rules live in idp/accounts/services.py, registration.py and legacy.py; an
import's output is that of every CSV import (idp/cli_output.py).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup

from idp.accounts import legacy, registration
from idp.accounts.services import AccountError, create_user
from idp.cli_output import (
    json_option,
    locale_option,
    mail_locale,
    one_line_errors,
    print_rows,
    run_import,
)
from idp.db import db_session

_refusals = one_line_errors(AccountError)

users_cli = AppGroup("users", help="Portal users.")


@users_cli.command("create")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option(
    "--customer", "customer_number", help="Customer number: the user becomes its contractor."
)
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="Asked for when not given (prefer the prompt: it stays out of shell history).",
)
@json_option
@_refusals
def users_create(
    email: str, name: str, customer_number: str | None, password: str, as_json: bool
) -> None:
    """An active e-mail/password user (for the demo and tests)."""
    session = db_session()
    user = create_user(
        session,
        current_app.extensions["idp.passwords"],
        email=email,
        name=name,
        password=password,
        customer_number=customer_number,
    )
    session.commit()
    print_rows(
        {
            "sub": user.subject,
            "email": user.email_display,
            "name": user.name,
            "customer": customer_number,
        },
        as_json,
    )


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _parse_duration(value: str) -> dt.timedelta:
    """ "72h", "30m", "3d" or "90s"."""
    number, unit = value.strip()[:-1], value.strip()[-1:].lower()
    if unit not in _DURATION_UNITS or not number.isdigit() or int(number) == 0:
        raise click.BadParameter("use a number with s, m, h or d, e.g. 72h")
    seconds = int(number) * _DURATION_UNITS[unit]
    if seconds > 90 * 86400:
        raise click.BadParameter("at most 90 days")
    return dt.timedelta(seconds=seconds)


def _invitation_row(invitation: registration.Invitation) -> dict[str, Any]:
    return {
        "sub": invitation.user.subject,
        "email": invitation.user.email_display,
        "name": invitation.user.name,
        "customer": invitation.customer.number,
        "link_expires_at": invitation.expires_at.isoformat(timespec="seconds"),
    }


@users_cli.command("invite")
@click.option(
    "--customer",
    "customer_number",
    required=True,
    help="Customer number: the person becomes its contractor.",
)
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option(
    "--expires-in",
    "expires_in",
    default=None,
    help="How long the activation link works, e.g. 72h or 7d (default: activation_link_lifetime).",
)
@locale_option
@json_option
@_refusals
def users_invite(
    customer_number: str,
    email: str,
    name: str,
    expires_in: str | None,
    locale: str | None,
    as_json: bool,
) -> None:
    """Create a user from a signed application and mail an activation link (flow 5)."""
    settings = current_app.config["IDP_SETTINGS"]
    language = mail_locale(locale)
    lifetime = (
        _parse_duration(expires_in)
        if expires_in
        else dt.timedelta(seconds=settings.activation_link_lifetime)
    )
    session = db_session()
    invitation = registration.invite_user(
        session,
        settings,
        customer_number=customer_number,
        email=email,
        name=name,
        lifetime=lifetime,
        language=language,
    )
    session.commit()
    print_rows(_invitation_row(invitation), as_json)


@users_cli.command("resend-activation")
@click.argument("email")
@click.option(
    "--expires-in",
    "expires_in",
    default=None,
    help="How long the new link works (default: activation_link_lifetime).",
)
@json_option
@_refusals
def users_resend_activation(email: str, expires_in: str | None, as_json: bool) -> None:
    """Mail a new activation link; the earlier one stops working."""
    settings = current_app.config["IDP_SETTINGS"]
    session = db_session()
    invitation = registration.resend_activation(
        session, settings, email, _parse_duration(expires_in) if expires_in else None
    )
    session.commit()
    print_rows(_invitation_row(invitation), as_json)


# Flow 4: previous-portal users from CSV (idp/accounts/legacy.py).
@users_cli.command("import-legacy")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--skip-invalid", is_flag=True, help="Import the valid rows even when other rows have errors."
)
@click.option("--dry-run", is_flag=True, help="Check and compare only; write nothing.")
@json_option
def users_import_legacy(file: Path, skip_invalid: bool, dry_run: bool, as_json: bool) -> None:
    """Add or update previous-portal users from a CSV FILE.

    UTF-8, a header row naming the columns email, name, personal_code, customer_number,
    phone (any order; phone may be empty), `,` or `;` between fields. Upsert by e-mail;
    each user becomes the contractor of the customer named. They get no password: the
    first login is by bank or eSignature with the same personal code, then the contact
    form. A file with errors imports nothing unless --skip-invalid is given.
    """
    run_import(
        file,
        legacy.import_legacy_users,
        skip_invalid=skip_invalid,
        dry_run=dry_run,
        as_json=as_json,
    )
