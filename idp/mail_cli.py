"""`idp mail`: what waits in the outbox, delivering it now, and a test mail that checks the
SMTP settings (the outbox itself lives in idp/mail.py)."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from idp import mail
from idp.cli_output import json_option, print_rows
from idp.db import db_session
from idp.settings import Settings

mail_cli = AppGroup("mail", help="The mail outbox: pending mail, retries, a test mail.")


def _settings() -> Settings:
    settings: Settings = current_app.config["IDP_SETTINGS"]
    return settings


def _server(settings: Settings) -> str:
    if not settings.smtp_host:
        return f"no SMTP server: .eml files in {settings.instance_dir / 'mail'}"
    return f"{settings.smtp_host}:{settings.smtp_port} ({settings.smtp_security})"


@mail_cli.command("pending")
@json_option
def mail_pending(as_json: bool) -> None:
    """Mails not delivered yet: attempts so far, the next attempt and the last error."""
    rows = [
        {
            "id": m.id,
            "to": m.to_address,
            "subject": m.subject,
            "attempts": m.attempts,
            "next_attempt": m.next_attempt_at.isoformat(timespec="seconds"),
            "last_error": m.last_error,
        }
        for m in mail.pending(db_session())
    ]
    print_rows(rows, as_json)


@mail_cli.command("retry")
@json_option
def mail_retry(as_json: bool) -> None:
    """Deliver every waiting mail now, ignoring the back-off. Exits non-zero when some
    mail could not be delivered (it stays in the outbox)."""
    settings = _settings()
    report = mail.deliver_now(current_app, settings)
    print_rows(
        {"sent": len(report.sent), "failed": len(report.failed), "busy": len(report.skipped)},
        as_json,
    )
    if report.failed:
        first = next(iter(report.failed.values()))
        raise click.ClickException(
            f"{len(report.failed)} mail(s) not delivered, they stay queued: {first}"
        )


@mail_cli.command("test")
@click.option("--to", "to", required=True, help="Address that receives the test mail.")
@json_option
def mail_test(to: str, as_json: bool) -> None:
    """Queue a test mail to ADDRESS and deliver it now, to check the SMTP settings."""
    settings = _settings()
    session = db_session()
    try:
        row = mail.queue_test_mail(session, to.strip(), link=settings.issuer + "/login")
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    session.commit()
    report = mail.deliver_now(current_app, settings, ids=[row.id])
    if row.id not in report.sent:
        error = report.failed.get(row.id, "another sender holds it; see `idp mail pending`")
        raise click.ClickException(
            f"the test mail to {row.to_address} was not delivered (it stays queued): {error}"
        )
    path = report.files.get(row.id)
    print_rows(
        {
            "id": row.id,
            "to": row.to_address,
            "delivered": True,
            "via": _server(settings),
            "file": str(path) if path else None,
        },
        as_json,
    )
