"""`idp customers`: import the utility's customer data from CSV, list it, show one customer.

Thin: the rules live in idp/customers/ (rows.py, importer.py, services.py) and idp/csv_import.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from flask.cli import AppGroup

from idp.cli_output import json_option, print_rows, run_import
from idp.customers import importer, services
from idp.db import db_session
from idp.models import Customer

customers_cli = AppGroup("customers", help="Customer data from the utility's customer database.")


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
