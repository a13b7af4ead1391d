"""The `idp` admin command group (also `flask --app wsgi ...`).

Tables for people by default, `--json` for scripts; bad input exits non-zero with one line.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup, FlaskGroup
from sqlalchemy import select

from idp.accounts import registration
from idp.accounts.legacy_cli import users_import_legacy
from idp.accounts.services import AccountError, create_user
from idp.cli_output import json_option, print_rows
from idp.customers.cli import customers_cli
from idp.db import db_session, utcnow
from idp.delegation.cli import audit_cli, delegation_cli
from idp.keys import ensure_keys, key_state, rotate_keys
from idp.mail_cli import mail_cli
from idp.models import Client, SigningKey
from idp.oidc import registry
from idp.providers_admin import providers_cli
from idp.settings import PROJECT_ROOT, SettingsError


def _split(values: tuple[str, ...]) -> list[str]:
    """Accept both repeated options and comma-separated values."""
    return [part.strip() for v in values for part in v.split(",") if part.strip()]


def _admin_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a domain error into one clear line and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (registry.RegistrationError, AccountError) as exc:
            db_session().rollback()
            raise click.ClickException(str(exc)) from None

    return wrapper


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
    """Delete expired codes, tokens, sessions, paused logins and registrations never
    confirmed in time (safe to run any time)."""
    from idp.housekeeping import purge_expired

    settings = current_app.config["IDP_SETTINGS"]
    session = db_session()
    counts = purge_expired(
        session, settings.login_failure_window, settings.confirmation_link_lifetime
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


# --- clients --------------------------------------------------------------------------------

clients_cli = AppGroup("clients", help="Relying apps allowed to use the IdP.")


@clients_cli.command("add")
@click.option("--name", required=True, help="Shown to people on the consent page.")
@click.option(
    "--redirect-uri",
    "redirect_uris",
    multiple=True,
    help="Exact redirect URI (repeat or comma-separate).",
)
@click.option("--post-logout-redirect-uri", "logout_uris", multiple=True)
@click.option(
    "--auth-method",
    type=click.Choice(registry.AUTH_METHODS),
    default="client_secret_basic",
    show_default=True,
    help="'none' makes a public client (PKCE required).",
)
@click.option(
    "--grant-type",
    "grant_types",
    multiple=True,
    help="authorization_code, refresh_token, client_credentials "
    "[default: authorization_code,refresh_token]",
)
@click.option(
    "--scope", "scopes", multiple=True, help="Allowed scopes [default: openid,profile,email]"
)
@click.option(
    "--audience",
    help="aud of its access tokens: the API it calls, or several "
    "separated by spaces [default: client id]",
)
@click.option("--first-party", is_flag=True, help="Pre-approved: skip the consent page.")
@click.option(
    "--id-token-alg", type=click.Choice(registry.ID_TOKEN_ALGS), default="RS256", show_default=True
)
@click.option(
    "--jwks",
    "jwks_file",
    type=click.Path(exists=True, dir_okay=False),
    help="JWK Set file with public keys (private_key_jwt).",
)
@click.option("--client-id", help="Choose the client id [default: random].")
@json_option
@_admin_errors
def clients_add(
    name: str,
    redirect_uris: tuple[str, ...],
    logout_uris: tuple[str, ...],
    auth_method: str,
    grant_types: tuple[str, ...],
    scopes: tuple[str, ...],
    audience: str | None,
    first_party: bool,
    id_token_alg: str,
    jwks_file: str | None,
    client_id: str | None,
    as_json: bool,
) -> None:
    """Register a client. Its secret is printed once and stored only as a hash."""
    jwks = None
    if jwks_file:
        try:
            jwks = json.loads(Path(jwks_file).read_text())
        except ValueError:
            raise click.ClickException(f"{jwks_file} is not valid JSON") from None
    session = db_session()
    new = registry.add_client(
        session,
        name=name,
        redirect_uris=_split(redirect_uris),
        auth_method=auth_method,
        grant_types=_split(grant_types) or None,
        scopes=_split(scopes) or None,
        audience=audience,
        first_party=first_party,
        post_logout_redirect_uris=_split(logout_uris),
        id_token_alg=id_token_alg,
        jwks=jwks,
        client_id=client_id,
    )
    session.commit()
    out = registry.describe(new.client)
    out["client_secret"] = new.secret
    print_rows(out, as_json)
    if new.secret and not as_json:
        click.echo("\nStore the secret now: it is not shown again.", err=True)


@clients_cli.command("list")
@json_option
def clients_list(as_json: bool) -> None:
    """All registered clients."""
    rows = [registry.describe(c) for c in db_session().scalars(select(Client).order_by(Client.id))]
    print_rows(rows, as_json, ["client_id", "name", "auth_method", "grant_types", "first_party"])


@clients_cli.command("show")
@click.argument("client_id")
@json_option
@_admin_errors
def clients_show(client_id: str, as_json: bool) -> None:
    """One client in full."""
    print_rows(registry.describe(registry.get_client(db_session(), client_id)), as_json)


@clients_cli.command("remove")
@click.argument("client_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_admin_errors
def clients_remove(client_id: str, yes: bool) -> None:
    """Remove a client with its codes, tokens and consents."""
    session = db_session()
    registry.get_client(session, client_id)
    if not yes:
        click.confirm(f"Remove client {client_id} and every token it holds?", abort=True)
    registry.remove_client(session, client_id)
    session.commit()
    click.echo(f"removed client {client_id}")


@clients_cli.command("rotate-secret")
@click.argument("client_id")
@json_option
@_admin_errors
def clients_rotate_secret(client_id: str, as_json: bool) -> None:
    """Issue a new secret. Running servers refuse the old one within 5 seconds (they keep
    client snapshots that long, see idp/clients.py)."""
    session = db_session()
    secret = registry.rotate_secret(session, client_id)
    session.commit()
    print_rows({"client_id": client_id, "client_secret": secret}, as_json)


# --- keys ----------------------------------------------------------------------------------

keys_cli = AppGroup("keys", help="Signing keys.")


@keys_cli.command("list")
@json_option
def keys_list(as_json: bool) -> None:
    """Keys with their state: published (not yet signing), active, retired, expired."""
    now = utcnow()
    rows = [
        {
            "kid": k.kid,
            "alg": k.alg,
            "state": key_state(k, now),
            "created": k.created_at.isoformat(timespec="seconds"),
            "signs_from": k.activates_at.isoformat(timespec="seconds"),
            "retired": k.retired_at.isoformat(timespec="seconds") if k.retired_at else None,
            "unpublished_after": k.expires_at.isoformat(timespec="seconds")
            if k.expires_at
            else None,
        }
        for k in db_session().scalars(select(SigningKey).order_by(SigningKey.created_at))
    ]
    print_rows(rows, as_json)


@keys_cli.command("rotate")
@click.option(
    "--alg", type=click.Choice(["RS256", "ES256", "all"]), default="all", show_default=True
)
@json_option
def keys_rotate(alg: str, as_json: bool) -> None:
    """Publish a next key now; it starts signing after key_activation_delay."""
    settings = current_app.config["IDP_SETTINGS"]
    session = db_session()
    algs = ("RS256", "ES256") if alg == "all" else (alg,)
    created = rotate_keys(session, settings, algs)
    session.commit()
    rows = [
        {"kid": k.kid, "alg": k.alg, "signs_from": k.activates_at.isoformat(timespec="seconds")}
        for k in created
    ]
    print_rows(rows, as_json)


# --- users and demo --------------------------------------------------------------------------

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
@_admin_errors
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
@json_option
@_admin_errors
def users_invite(
    customer_number: str, email: str, name: str, expires_in: str | None, as_json: bool
) -> None:
    """Create a user from a signed application and mail an activation link (flow 5)."""
    settings = current_app.config["IDP_SETTINGS"]
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
@_admin_errors
def users_resend_activation(email: str, expires_in: str | None, as_json: bool) -> None:
    """Mail a new activation link; the earlier one stops working."""
    settings = current_app.config["IDP_SETTINGS"]
    session = db_session()
    invitation = registration.resend_activation(
        session, settings, email, _parse_duration(expires_in) if expires_in else None
    )
    session.commit()
    print_rows(_invitation_row(invitation), as_json)


# Flow 4: previous-portal users from CSV (idp/accounts/legacy_cli.py).
users_cli.add_command(users_import_legacy)


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
    # Feature packages keep their own command groups; one line each here.
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
