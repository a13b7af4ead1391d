"""`idp clients` (the relying apps allowed to use the IdP) and `idp keys` (the keys that
sign their tokens).

Thin: the rules live in idp/oidc/registry.py and idp/keys.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from idp.cli_output import json_option, one_line_errors, print_rows
from idp.db import db_session, utcnow
from idp.keys import key_state, rotate_keys
from idp.models import Client, SigningKey
from idp.oidc import registry

_refusals = one_line_errors(registry.RegistrationError)


def _split(values: tuple[str, ...]) -> list[str]:
    """Accept both repeated options and comma-separated values."""
    return [part.strip() for v in values for part in v.split(",") if part.strip()]


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
@_refusals
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
@_refusals
def clients_show(client_id: str, as_json: bool) -> None:
    """One client in full."""
    print_rows(registry.describe(registry.get_client(db_session(), client_id)), as_json)


@clients_cli.command("remove")
@click.argument("client_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_refusals
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
@_refusals
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
