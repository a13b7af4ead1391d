"""Upstream identity providers as admins configure them: the rules, as services taking the
DB session explicitly (their commands: idp/upstream_providers/cli.py).

The client secret an upstream gave us is stored Fernet-encrypted with the key-encryption
key, like signing keys (idp/keys.py), and is never printed or logged: descriptions say
"set" or "not set". Connectors are built from a `ConnectorConfig` by providers/registry.py.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, cast

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.db import utcnow
from idp.models import UpstreamProviderConfig
from idp.settings import Settings
from providers import registry as connectors
from providers.base import CheckReport, ConnectorConfig, Method, UpstreamError
from providers.urls import check_https_url

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"[a-z0-9-]{2,32}")
KINDS = ("oidc", "eparaksts")
METHODS = ("bank", "esignature")
# The methods each connector may serve: eParaksts is an eSignature by definition; a generic
# OIDC upstream may be a bank or an eSignature provider (e.g. Smart-ID through a broker).
KIND_METHODS = {"oidc": ("bank", "esignature"), "eparaksts": ("esignature",)}
DEFAULT_METHOD = {"oidc": "bank", "eparaksts": "esignature"}
# Column lengths of upstream_providers.
MAX_DISPLAY_NAME = 100
MAX_URL = 255
MAX_CLIENT_ID = 255
MAX_SECRET = 1024
# The login page lists banks first, then eSignature (docs/domain.md, "Ways to log in").
METHOD_ORDER = {"bank": 0, "esignature": 1}


class ProviderError(Exception):
    """Bad provider data, an unknown provider, or a secret that cannot be decrypted; the
    message is one line naming the problem (and never contains the secret)."""


# --- validation --------------------------------------------------------------------------------


def validate_base_url(url: str) -> str:
    """https only, plain http only on loopback: the rule relying apps' redirect URIs follow
    (providers/urls.py, RFC 8252 §7.3); no query or fragment either (an OIDC issuer has
    none, OpenID Connect Discovery §4.3)."""
    if len(url) > MAX_URL:
        raise ProviderError(f"base URL is longer than {MAX_URL} characters")
    try:
        check_https_url(url, "base URL")
    except ValueError as exc:
        raise ProviderError(str(exc)) from None
    if "?" in url:
        raise ProviderError(f"base URL {url!r} must not contain a query")
    return url


def parse_options(
    pairs: tuple[str, ...] | list[str] = (),
    json_text: str | None = None,
    source: str = "--options-json",
) -> dict[str, Any]:
    """Connector options from a JSON object (`--options-json FILE`) and `key=value` pairs
    (`--option`, repeated; they win over the file). A value that is valid JSON is taken as
    JSON (objects, lists, numbers, true/false), anything else as a string, so both
    `personal_code_claim=personal_code` and `acr_map={"urn:x": "high"}` work."""
    options: dict[str, Any] = {}
    if json_text is not None:
        try:
            loaded = json.loads(json_text)
        except ValueError as exc:
            raise ProviderError(f"{source} is not valid JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise ProviderError(f"{source} must hold a JSON object")
        options.update(loaded)
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ProviderError(f"option {pair[:80]!r} must look like key=value")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        options[key] = value
    return options


def _check_fields(
    *,
    name: str,
    kind: str,
    method: str,
    display_name: str,
    base_url: str,
    client_id: str,
    client_secret: str | None,
    options: Any,
) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise ProviderError(f"name {name[:40]!r} must be 2 to 32 lower-case letters, digits or '-'")
    if kind not in KINDS:
        raise ProviderError(f"kind {kind[:40]!r} must be one of: {', '.join(KINDS)}")
    if method not in METHODS:
        raise ProviderError(f"method {method[:40]!r} must be one of: {', '.join(METHODS)}")
    if method not in KIND_METHODS[kind]:
        raise ProviderError(f"a {kind} provider must have method {' or '.join(KIND_METHODS[kind])}")
    if not display_name.strip() or len(display_name.strip()) > MAX_DISPLAY_NAME:
        raise ProviderError(f"display name must be 1 to {MAX_DISPLAY_NAME} characters")
    validate_base_url(base_url)
    if not client_id or len(client_id) > MAX_CLIENT_ID or any(c.isspace() for c in client_id):
        raise ProviderError(f"client id must be 1 to {MAX_CLIENT_ID} characters without spaces")
    if not client_secret:
        raise ProviderError("the client secret is empty")
    if len(client_secret) > MAX_SECRET:
        raise ProviderError(f"the client secret is longer than {MAX_SECRET} characters")
    if not isinstance(options, dict):
        raise ProviderError("options must be a JSON object")


# --- services ----------------------------------------------------------------------------------


def _fernet(settings: Settings) -> Fernet:
    return Fernet(settings.effective_key_encryption_key)


def add_provider(
    session: Session,
    settings: Settings,
    *,
    name: str,
    kind: str,
    method: str | None,
    display_name: str,
    base_url: str,
    client_id: str,
    client_secret: str,
    options: dict[str, Any] | None = None,
    enabled: bool = True,
) -> UpstreamProviderConfig:
    """Register an upstream (method defaults to what the kind implies)."""
    method = method or DEFAULT_METHOD.get(kind, "")
    options = {} if options is None else options
    _check_fields(
        name=name,
        kind=kind,
        method=method,
        display_name=display_name,
        base_url=base_url,
        client_id=client_id,
        client_secret=client_secret,
        options=options,
    )
    if find_provider(session, name) is not None:
        raise ProviderError(f"a provider named {name!r} already exists")
    # The connector validates its own options (offline): refuse now what would fail at login.
    problem = connectors.config_problem(
        ConnectorConfig(
            name=name,
            method=cast(Method, method),  # checked by _check_fields above
            display_name=display_name,
            base_url=base_url,
            client_id=client_id,
            client_secret=client_secret,
            options=options,
            kind=kind,
        )
    )
    if problem:
        raise ProviderError(f"the {kind} connector refuses this configuration: {problem}")
    row = UpstreamProviderConfig(
        name=name,
        kind=kind,
        method=method,
        display_name=display_name.strip(),
        base_url=base_url,
        client_id=client_id,
        client_secret_encrypted=_fernet(settings).encrypt(client_secret.encode()),
        options=options,
        enabled=enabled,
    )
    session.add(row)
    session.flush()
    return row


def find_provider(session: Session, name: str) -> UpstreamProviderConfig | None:
    return session.scalar(select(UpstreamProviderConfig).where(UpstreamProviderConfig.name == name))


def get_provider(session: Session, name: str) -> UpstreamProviderConfig:
    row = find_provider(session, name)
    if row is None:
        raise ProviderError(f"no provider named {name[:40]!r}")
    return row


def list_providers(session: Session) -> list[UpstreamProviderConfig]:
    return list(
        session.scalars(select(UpstreamProviderConfig).order_by(UpstreamProviderConfig.name))
    )


def remove_provider(session: Session, name: str) -> None:
    """Delete the configuration. People linked through it keep their accounts (links are on
    the verified personal code); their (provider, subject) records stay for audit."""
    session.delete(get_provider(session, name))
    session.flush()


def set_enabled(session: Session, name: str, enabled: bool) -> UpstreamProviderConfig:
    row = get_provider(session, name)
    if row.enabled != enabled:
        row.enabled = enabled
        row.updated_at = utcnow()
        session.flush()
    return row


def connector_config(settings: Settings, row: UpstreamProviderConfig) -> ConnectorConfig:
    """What the connector is built from, with the client secret decrypted."""
    secret = None
    if row.client_secret_encrypted is not None:
        try:
            secret = _fernet(settings).decrypt(bytes(row.client_secret_encrypted)).decode()
        except InvalidToken:
            raise ProviderError(
                f"the client secret of provider {row.name!r} cannot be decrypted: wrong "
                "key_encryption_key? (add the provider again with the current key)"
            ) from None
    return ConnectorConfig(
        name=row.name,
        method=cast(Method, row.method),  # checked when added
        display_name=row.display_name,
        base_url=row.base_url,
        client_id=row.client_id,
        client_secret=secret,
        options=dict(row.options or {}),
        kind=row.kind,
    )


def enabled_providers(session: Session, settings: Settings) -> list[ConnectorConfig]:
    """What the login page offers: banks first, then eSignature, each by display name.
    A provider whose secret cannot be decrypted is left out (and logged) rather than
    taking the whole login page down."""
    rows = session.scalars(
        select(UpstreamProviderConfig).where(UpstreamProviderConfig.enabled.is_(True))
    ).all()
    configs = []
    for row in sorted(
        rows, key=lambda r: (METHOD_ORDER.get(r.method, 9), r.display_name.casefold(), r.name)
    ):
        try:
            configs.append(connector_config(settings, row))
        except ProviderError as exc:
            log.error("upstream provider left out of the login page: %s", exc)
    return configs


def redirect_uri(settings: Settings, name: str) -> str:
    """Where the upstream sends the person back: the URI the bank must register for us
    (the `upstream.callback` route of idp/accounts/upstream_views.py, under the issuer)."""
    return f"{settings.issuer}/upstream/callback/{name}"


def describe(row: UpstreamProviderConfig, settings: Settings | None = None) -> dict[str, Any]:
    """For admins: everything but the secret, which is only "set" or "not set"; with
    `settings`, also the redirect URI to register at the upstream."""
    out: dict[str, Any] = {
        "name": row.name,
        "kind": row.kind,
        "method": row.method,
        "display_name": row.display_name,
        "base_url": row.base_url,
        "client_id": row.client_id,
        "client_secret": "set" if row.client_secret_encrypted else "not set",
        "options": row.options or {},
        "enabled": row.enabled,
        "created": row.created_at.isoformat(timespec="seconds"),
        "updated": row.updated_at.isoformat(timespec="seconds"),
    }
    if settings is not None:
        out["redirect_uri"] = redirect_uri(settings, row.name)
    return out


def check_provider(
    settings: Settings, config: ConnectorConfig, timeout: float | None = None
) -> CheckReport:
    """What the connector finds wrong with this provider (it fetches discovery, JWKS, tries
    our client authentication...): no problems means ok; warnings are what may still break
    logins. Sentences for the admin. Call it outside any transaction: it waits on the
    network."""
    try:
        return connectors.check_connector(
            config,
            settings.upstream_timeout if timeout is None else timeout,
            redirect_uri(settings, config.name),
        )
    except connectors.UnknownConnector as exc:
        return CheckReport(problems=[str(exc)])
    except UpstreamError as exc:
        # A connector should report problems, not raise them; if it raises, still say why.
        return CheckReport(problems=[str(exc) or type(exc).__name__])
