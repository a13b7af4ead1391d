"""`idp customers`: import the utility's customer data from CSV, list it, show one customer.

Thin: the rules live in idp/customers/ (rows.py, importer.py, services.py) and idp/csv_import.py.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from flask.cli import AppGroup

from idp.cli_output import json_option, print_rows
from idp.csv_import import ImportDataError, ImportReport
from idp.customers import importer, services
from idp.db import db_session
from idp.models import Customer

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

customers_cli = AppGroup("customers", help="Customer data from the utility's customer database.")


class ProgressBars:
    """One click progress bar per phase of the import ("checking rows", "writing", …)."""

    def __init__(self) -> None:
        self.phase: str | None = None
        self.bar: ProgressBar[Any] | None = None
        self.done = 0

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase != self.phase:
            self.close()
            self.phase, self.done = phase, 0
            self.bar = click.progressbar(length=max(total, 1), label=phase.ljust(28))
            self.bar.__enter__()
        if self.bar is not None and done > self.done:
            self.bar.update(done - self.done)
            self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def on_terminal() -> bool:
    return sys.stdout.isatty()


@customers_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--skip-invalid", is_flag=True, help="Import the valid rows even when other rows have errors."
)
@click.option("--dry-run", is_flag=True, help="Check and compare only; write nothing.")
@json_option
def customers_import(file: Path, skip_invalid: bool, dry_run: bool, as_json: bool) -> None:
    """Add or update customers from a CSV FILE.

    UTF-8, a header row naming the columns (see the README), `,` or `;` between fields.
    Upsert by customer number: importing the same file again changes nothing. A file with
    errors imports nothing unless --skip-invalid is given; every bad row is reported.
    """
    run_import(
        file, importer.import_customers, skip_invalid=skip_invalid, dry_run=dry_run, as_json=as_json
    )


def _describe(customer: Customer) -> dict[str, Any]:
    return {
        "number": customer.number,
        "kind": customer.kind,
        "name": customer.name,
        "given_name": customer.given_name,
        "family_name": customer.family_name,
        "personal_code": customer.personal_code,
        "registration_number": customer.registration_number,
        "email": customer.email,
        "phone": customer.phone,
        "contract_numbers": customer.contract_numbers,
        "created": customer.created_at.isoformat(timespec="seconds"),
        "updated": customer.updated_at.isoformat(timespec="seconds"),
    }


@customers_cli.command("list")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="At most this many customers (0: all).",
)
@json_option
def customers_list(limit: int, as_json: bool) -> None:
    """Customers ordered by number."""
    rows = [_describe(c) for c in services.list_customers(db_session(), limit or None)]
    print_rows(
        rows,
        as_json,
        [
            "number",
            "kind",
            "name",
            "personal_code",
            "registration_number",
            "email",
            "contract_numbers",
        ],
    )


@customers_cli.command("show")
@click.argument("number")
@json_option
def customers_show(number: str, as_json: bool) -> None:
    """One customer in full, with the portal users who act for it."""
    session = db_session()
    customer = services.get_customer(session, number)
    if customer is None:
        raise click.ClickException(f"no customer with number {number}")
    out = _describe(customer)
    users = [
        {
            "email": user.email_display,
            "name": user.name,
            "role": membership.role,
            "state": membership.state,
        }
        for membership, user in services.customer_users(session, customer)
    ]
    if as_json:
        print_rows({**out, "users": users}, as_json)
        return
    print_rows(out, as_json)
    click.echo("\nportal users:")
    print_rows(users, as_json, ["email", "name", "role", "state"])


def run_import(
    file: Path,
    importer: Callable[..., ImportReport],
    *,
    skip_invalid: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Read FILE, run `importer(session, data, skip_invalid=, dry_run=, progress=)`, commit
    what it wrote, and print the report the same way for every CSV import command."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise click.ClickException(f"{file}: {exc.strerror}") from None
    # A progress bar is for a person watching a terminal, never for scripts or --json.
    bars = ProgressBars() if on_terminal() and not as_json else None
    session = db_session()
    try:
        report = importer(session, data, skip_invalid=skip_invalid, dry_run=dry_run, progress=bars)
    except ImportDataError as exc:
        session.rollback()
        raise click.ClickException(f"{file}: {exc}") from None
    finally:
        if bars is not None:
            bars.close()
    if report.written:
        session.commit()
    else:
        session.rollback()

    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    else:
        for error in report.errors:
            for reason in error.reasons:
                click.echo(f"line {error.line}: {reason}")
        note = "" if report.imported else " (nothing written)"
        click.echo(report.summary() + note)
    if report.refused:
        click.echo(
            f"{file}: nothing imported because of {report.rejected} bad row(s) "
            "(--skip-invalid imports the valid rows)",
            err=True,
        )
        click.get_current_context().exit(1)
