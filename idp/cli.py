"""The `idp` admin command group (also `flask --app wsgi ...`): every feature's command
group registered in one place, and the commands that belong to no feature (the database
schema, the demo data that spans them all).

Tables for people by default, `--json` for scripts; bad input exits non-zero with one line
(idp/cli_output.py).
"""

from __future__ import annotations

import sys
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup, FlaskGroup

from idp.accounts.cli import users_cli
from idp.cli_output import json_option, print_rows
from idp.customers.cli import customers_cli
from idp.db import db_session
from idp.delegation.cli import audit_cli, delegation_cli
from idp.keys import ensure_keys
from idp.mail_cli import mail_cli
from idp.oidc.cli import clients_cli, keys_cli
from idp.settings import PROJECT_ROOT, SettingsError
from idp.upstream_providers.cli import providers_cli

# --- db ------------------------------------------------------------------------------------

db_cli = AppGroup("db", help="Database schema (Alembic migrations).")


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@db_cli.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations, then create the first signing keys if there are none."""
    from alembic import command

    settings = current_app.config["IDP_SETTINGS"]
    command.upgrade(alembic_config(settings.resolved_database_url()), revision)
    if revision == "head":
        session = db_session()
        created = ensure_keys(session, settings)
        session.commit()
        for key in created:
            click.echo(f"created signing key {key.kid} ({key.alg})")
    click.echo("database is up to date")


@db_cli.command("purge")
@json_option
def db_purge(as_json: bool) -> None:
    """Delete expired codes, tokens, sessions, paused logins, registrations never
    confirmed in time and access history past its retention (safe to run any time)."""
    from idp.housekeeping import purge_expired

    settings = current_app.config["IDP_SETTINGS"]
    session = db_session()
    counts = purge_expired(
        session,
        settings.login_failure_window,
        settings.confirmation_link_lifetime,
        settings.access_history_days,
    )
    session.commit()
    print_rows(counts, as_json)


@db_cli.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION (e.g. base)."""
    from alembic import command

    settings = current_app.config["IDP_SETTINGS"]
    command.downgrade(alembic_config(settings.resolved_database_url()), revision)


# --- demo ------------------------------------------------------------------------------------

demo_cli = AppGroup("demo", help="Demo data (demo mode only).")


@demo_cli.command("seed")
def demo_seed() -> None:
    """Create the demo customer, user and clients if missing, and print how to log in."""
    from idp.demo.seed import seed

    settings = current_app.config["IDP_SETTINGS"]
    if not settings.is_demo:
        raise click.ClickException("demo data is only seeded in demo mode (IDP_MODE=demo)")
    for line in seed(db_session(), current_app.extensions["idp.passwords"], settings):
        click.echo(line)


def init_app(app: Flask) -> None:
    # Feature packages keep their own command groups (their cli.py); one line each here.
    app.cli.add_command(db_cli)
    app.cli.add_command(clients_cli)
    app.cli.add_command(keys_cli)
    app.cli.add_command(users_cli)
    app.cli.add_command(demo_cli)
    app.cli.add_command(customers_cli)
    app.cli.add_command(mail_cli)
    app.cli.add_command(providers_cli)
    app.cli.add_command(delegation_cli)
    app.cli.add_command(audit_cli)


def _create_app() -> Flask:
    from idp import create_app

    return create_app()


cli = FlaskGroup(
    create_app=_create_app,
    add_default_commands=False,
    add_version_option=False,
    load_dotenv=False,
    help="Admin commands of the identity provider.",
)


def main() -> None:
    try:
        cli.main(prog_name="idp")
    except SettingsError as exc:
        click.echo(f"idp: {exc}", err=True)
        sys.exit(2)
