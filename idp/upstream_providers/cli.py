"""`idp providers`: the upstream identity providers (banks, eSignature) admins configure.

Thin: the rules live in idp/upstream_providers/services.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from idp.cli_output import json_option, one_line_errors, print_rows
from idp.db import db_session
from idp.settings import Settings
from idp.upstream_providers.services import (
    KINDS,
    ProviderError,
    add_provider,
    check_provider,
    connector_config,
    describe,
    get_provider,
    list_providers,
    parse_options,
    redirect_uri,
    remove_provider,
    set_enabled,
)

_refusals = one_line_errors(ProviderError)

providers_cli = AppGroup("providers", help="Upstream identity providers (banks, eSignature).")


def _settings() -> Settings:
    settings: Settings = current_app.config["IDP_SETTINGS"]
    return settings


@providers_cli.command("add")
@click.option("--name", required=True, help="Short id: 2-32 of a-z, 0-9 and '-' (in URLs).")
@click.option("--kind", required=True, help=f"Connector: {', '.join(KINDS)}.")
@click.option(
    "--method",
    default=None,
    help="bank or esignature [default: bank for oidc, esignature for eparaksts].",
)
@click.option("--display-name", required=True, help="What the login page's button says.")
@click.option(
    "--base-url",
    required=True,
    help="oidc: the issuer (discovery under it); eparaksts: the service's base URL.",
)
@click.option("--client-id", required=True, help="Our client id at the upstream.")
@click.option(
    "--client-secret",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="Asked for when not given (prefer the prompt: it stays out of shell history).",
)
@click.option(
    "--option",
    "option_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Connector option (repeat); a JSON value is taken as JSON.",
)
@click.option(
    "--options-json",
    "options_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A file with a JSON object of connector options.",
)
@click.option("--disabled", is_flag=True, help="Add it switched off (enable it later).")
@json_option
@_refusals
def providers_add(
    name: str,
    kind: str,
    method: str | None,
    display_name: str,
    base_url: str,
    client_id: str,
    client_secret: str,
    option_pairs: tuple[str, ...],
    options_file: Path | None,
    disabled: bool,
    as_json: bool,
) -> None:
    """Register an upstream provider. Its client secret is stored encrypted."""
    json_text = None
    if options_file is not None:
        try:
            json_text = options_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ProviderError(f"{options_file}: cannot read it ({exc})") from None
    options = parse_options(option_pairs, json_text, source=str(options_file))
    session = db_session()
    row = add_provider(
        session,
        _settings(),
        name=name,
        kind=kind,
        method=method,
        display_name=display_name,
        base_url=base_url,
        client_id=client_id,
        client_secret=client_secret,
        options=options,
        enabled=not disabled,
    )
    session.commit()
    out = describe(row, _settings())
    if not as_json:
        out["options"] = json.dumps(out["options"], ensure_ascii=False, sort_keys=True)
    print_rows(out, as_json)
    if not as_json:
        click.echo(f"Register this redirect URI at the upstream: {out['redirect_uri']}")


@providers_cli.command("list")
@json_option
def providers_list(as_json: bool) -> None:
    """Every configured provider."""
    rows = [describe(r) for r in list_providers(db_session())]
    print_rows(rows, as_json, ["name", "kind", "method", "display_name", "base_url", "enabled"])


@providers_cli.command("show")
@click.argument("name")
@json_option
@_refusals
def providers_show(name: str, as_json: bool) -> None:
    """One provider in full (the secret only as set / not set)."""
    out = describe(get_provider(db_session(), name), _settings())
    if not as_json:
        out["options"] = json.dumps(out["options"], ensure_ascii=False, sort_keys=True)
    print_rows(out, as_json)


@providers_cli.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_refusals
def providers_remove(name: str, yes: bool) -> None:
    """Remove a provider: its login button goes away at once."""
    session = db_session()
    get_provider(session, name)
    if not yes:
        click.confirm(f"Remove provider {name}?", abort=True)
    remove_provider(session, name)
    session.commit()
    click.echo(f"removed provider {name}")


def _switch(name: str, enabled: bool) -> None:
    session = db_session()
    set_enabled(session, name, enabled)
    session.commit()
    click.echo(f"provider {name} {'enabled' if enabled else 'disabled'}")


@providers_cli.command("enable")
@click.argument("name")
@_refusals
def providers_enable(name: str) -> None:
    """Show the provider on the login page."""
    _switch(name, True)


@providers_cli.command("disable")
@click.argument("name")
@_refusals
def providers_disable(name: str) -> None:
    """Hide the provider from the login page (logins in flight fail)."""
    _switch(name, False)


@providers_cli.command("check")
@click.argument("name")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1, max=120),
    default=None,
    help="Seconds per upstream request [default: upstream_timeout].",
)
@click.option("--strict", is_flag=True, help="Exit non-zero on warnings too.")
@json_option
@_refusals
def providers_check(name: str, timeout: float | None, strict: bool, as_json: bool) -> None:
    """Fetch what the connector needs (discovery, JWKS...), try our client id and secret
    at the token endpoint, and say what is wrong. Exits non-zero when there is a problem
    (with --strict, also when there is a warning)."""
    session = db_session()
    config = connector_config(_settings(), get_provider(session, name))
    # No transaction held across network calls (on SQLite a reader can stall a writer,
    # e.g. the upstream being this very IdP in demo mode).
    session.rollback()
    report = check_provider(_settings(), config, timeout)
    failed = bool(report.problems or (strict and report.warnings))
    if as_json:
        print_rows(
            {
                "name": name,
                "ok": not report.problems,
                "problems": report.problems,
                "warnings": report.warnings,
                "redirect_uri": redirect_uri(_settings(), name),
            },
            as_json,
        )
    else:
        for problem in report.problems:
            click.echo(f"{name}: {problem}")
        for warning in report.warnings:
            click.echo(f"{name}: warning: {warning}")
        if not report.problems:
            count = len(report.warnings)
            click.echo(f"{name}: ok" + (f" ({count} warning{'s' * (count != 1)})" if count else ""))
    if failed:
        click.get_current_context().exit(1)
