"""`idp users import-legacy`: load the users of the previous portal from CSV (flow 4).

Thin: the rules live in idp/accounts/legacy.py; the output is that of `idp customers import`.
"""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import with_appcontext

from idp.accounts import legacy
from idp.cli_output import json_option
from idp.customers import cli as customers_cli


@click.command("import-legacy")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--skip-invalid", is_flag=True, help="Import the valid rows even when other rows have errors."
)
@click.option("--dry-run", is_flag=True, help="Check and compare only; write nothing.")
@json_option
# A command added to an AppGroup is not wrapped by it: it needs the app context itself.
@with_appcontext
def users_import_legacy(file: Path, skip_invalid: bool, dry_run: bool, as_json: bool) -> None:
    """Add or update previous-portal users from a CSV FILE.

    UTF-8, a header row naming the columns email, name, personal_code, customer_number,
    phone (any order; phone may be empty), `,` or `;` between fields. Upsert by e-mail;
    each user becomes the contractor of the customer named. They get no password: the
    first login is by bank or eSignature with the same personal code, then the contact
    form. A file with errors imports nothing unless --skip-invalid is given.
    """
    customers_cli.run_import(
        file,
        legacy.import_legacy_users,
        skip_invalid=skip_invalid,
        dry_run=dry_run,
        as_json=as_json,
    )
