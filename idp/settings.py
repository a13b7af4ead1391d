"""One typed settings object: config/default.toml < the IDP_CONFIG file < the effective
settings of `make run` (instance/effective.toml) < IDP_* environment.

This is the only module that reads the environment; everything else receives `Settings`.

The effective-settings file exists so that the admin CLI and a server started by
`make run PORT=5103` agree: the Makefile passes IDP_ISSUER only to the commands it runs,
so an `idp users invite` typed in another shell would otherwise mail links to the default
port. `make run` writes the values it started with (`python -m idp.effective`); every
process reads them as a layer, below the environment (an admin's explicit IDP_* still
wins). A file written under another IDP_CONFIG than the reader's is ignored: it describes
another server. `IDP_EFFECTIVE_CONFIG` names another file, or none when empty (tests).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

from idp.proxies import parse_networks
from providers.urls import is_loopback

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config" / "default.toml"
# Written by `make run`; at the default instance path whatever instance_path the run used,
# so a reader finds it before knowing any setting.
EFFECTIVE_CONFIG = PROJECT_ROOT / "instance" / "effective.toml"
# What `make run` records: what a CLI must share with the server to address the same
# database and write the same links. No secrets (the file is plain text on disk).
EFFECTIVE_KEYS = ("mode", "issuer", "database_url", "instance_path")
# The table of the file that says where it came from (not settings).
EFFECTIVE_SOURCE = "written_by"
# Refused in production (noqa: a known value, not a leaked secret).
DEMO_SECRET_KEY = "demo-secret-key-do-not-use-in-production"  # noqa: S105
# Used only in demo/development mode when no key-encryption key is configured.
DEMO_KEY_ENCRYPTION_KEY = "ZGVtby1rZXktZW5jcnlwdGlvbi1rZXktMzJieXRlcyE="

Mode = Literal["demo", "development", "production"]


class SettingsError(Exception):
    """A setting is missing or invalid; the message is one line naming it."""


@dataclasses.dataclass(frozen=True)
class Settings:
    mode: Mode
    issuer: str
    secret_key: str
    key_encryption_key: str
    database_url: str
    instance_path: str
    sqlite_busy_timeout: int
    # Database outages (issue 16): seconds a request may wait for PostgreSQL to accept a
    # connection, to run one statement (lock waits included) and for a free connection of
    # the pool, so that every answer comes within a bound when the server is gone or frozen.
    database_connect_timeout: int
    database_statement_timeout: int
    database_pool_timeout: int
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"]
    trusted_proxies: list[str]
    authorization_code_lifetime: int
    access_token_lifetime: int
    id_token_lifetime: int
    refresh_token_idle_lifetime: int
    refresh_token_absolute_lifetime: int
    id_token_signing_alg: Literal["RS256", "ES256"]
    access_token_signing_alg: Literal["RS256", "ES256"]
    key_activation_delay: int
    jwks_max_age: int
    keys_refresh_interval: int
    session_cookie_name: str
    session_lifetime: int
    # "My account" (issue 15): a change of e-mail or password needs a login at most this
    # many seconds old; logins, token issuances and failures are kept this many days.
    account_reauth_after: int
    access_history_days: int
    interaction_lifetime: int
    argon2_time_cost: int
    argon2_memory_cost: int
    argon2_parallelism: int
    login_free_attempts: int
    login_pair_free_attempts: int
    login_address_free_accounts: int
    login_delay_base: int
    login_delay_max: int
    login_failure_window: int
    default_locale: str
    locales: list[str]
    confirmation_link_lifetime: int
    activation_link_lifetime: int
    reset_link_lifetime: int
    password_min_length: int
    smtp_host: str
    smtp_port: int
    smtp_security: Literal["starttls", "tls", "none"]
    smtp_user: str
    smtp_password: str
    smtp_timeout: int
    mail_from: str
    mail_retry_base: int
    mail_retry_max: int
    mail_poll_interval: int
    # Seconds GET /readyz waits for the database before it answers 503 (idp/health.py).
    readiness_timeout: int
    # How people reach the utility, per language (lv/ru/en → text); see support_contact_in.
    support_contact: dict[str, str]
    upstream_timeout: int
    upstream_login_lifetime: int
    # The customer portal's address, offered on the start page; empty: the demo relying
    # page in demo mode, else no link (see portal_link).
    portal_url: str
    # The utility's look (issue 14): the header's logo and name, the colours, the footer.
    brand_logo: str
    brand_favicon: str
    brand_primary_colour: str
    brand_accent_colour: str
    brand_home_url: str
    privacy_url: str
    # The utility's name on every page, per language (as support_contact).
    brand_name: dict[str, str]
    # Observability (issue 16): access and other idp log lines as JSON or text; /metrics
    # answered only to `Authorization: Bearer <metrics_token>` (empty: no metrics, 404);
    # prometheus_client's multiprocess files under metrics_dir (relative: instance_path).
    log_format: Literal["json", "text"]
    metrics_token: str
    metrics_dir: str

    def support_contact_in(self, language: str) -> str:
        """How to reach the utility, in `language` when configured, else in the default."""
        return self._in_language(self.support_contact, language)

    def brand_name_in(self, language: str) -> str:
        """The utility's name, in `language` when configured, else in the default."""
        return self._in_language(self.brand_name, language)

    def _in_language(self, texts: dict[str, str], language: str) -> str:
        # A per-language setting: the default locale's text stands in for a missing one
        # (_check_rules makes sure it is there).
        return texts.get(language) or texts[self.default_locale]

    @property
    def brand_image_origins(self) -> tuple[str, ...]:
        """The origins of brand_logo and brand_favicon given as https URLs (for the CSP)."""
        origins = []
        for value in (self.brand_logo, self.brand_favicon):
            if "://" in value:
                parts = urlsplit(value)
                origin = f"{parts.scheme}://{parts.netloc}"
                if origin not in origins:
                    origins.append(origin)
        return tuple(origins)

    @property
    def portal_link(self) -> str:
        """Where "Open the customer portal" leads, or "" for no such link."""
        if self.portal_url:
            return self.portal_url
        return self.issuer + "/demo/" if self.is_demo else ""

    @property
    def is_demo(self) -> bool:
        return self.mode == "demo"

    @property
    def is_production(self) -> bool:
        return self.mode == "production"

    @property
    def issuer_is_loopback_http(self) -> bool:
        parts = urlsplit(self.issuer)
        return parts.scheme == "http" and is_loopback(parts.hostname)

    @property
    def effective_key_encryption_key(self) -> str:
        return self.key_encryption_key or DEMO_KEY_ENCRYPTION_KEY

    @property
    def instance_dir(self) -> Path:
        """instance_path made absolute (relative paths start at the project root)."""
        return (PROJECT_ROOT / self.instance_path).resolve()

    def resolved_database_url(self) -> str:
        """SQLite paths without a leading slash are relative to instance_path."""
        url = self.database_url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix:
            return prefix + str(self.instance_dir / url[len(prefix) :])
        return url


def load_settings(
    overrides: dict[str, Any] | None = None, environ: dict[str, str] | None = None
) -> Settings:
    """Merge the four layers (plus explicit overrides, used by tests) and validate.

    With `environ` given (tests), the effective-settings file is read only when that
    environ names one in IDP_EFFECTIVE_CONFIG: a test never sees a developer's `make run`."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = _read_toml(DEFAULT_CONFIG, "config/default.toml")
    extra_file = env.get("IDP_CONFIG")
    if extra_file:
        for key, value in _read_toml(Path(extra_file), f"IDP_CONFIG={extra_file}").items():
            if key not in values:
                raise SettingsError(f"unknown setting '{key}' in {extra_file}")
            values[key] = value
    effective = effective_config_path(env, default=EFFECTIVE_CONFIG if environ is None else None)
    if effective is not None:
        values.update(read_effective(effective, idp_config=extra_file or ""))
    hints = get_type_hints(Settings)
    for name in hints:
        raw = env.get(f"IDP_{name.upper()}")
        if raw is not None:
            values[name] = _parse_env(name, raw, hints[name])
    for key, value in (overrides or {}).items():
        if key not in hints:
            raise SettingsError(f"unknown setting '{key}'")
        values[key] = value

    for name, hint in hints.items():
        if name not in values:
            raise SettingsError(f"setting '{name}' (IDP_{name.upper()}) is missing")
        if get_origin(hint) is dict and isinstance(values[name], str):
            # One text for every language (a deployment that speaks one).
            values[name] = dict.fromkeys(values.get("locales") or [], values[name])
        _check_type(name, values[name], hint)
    settings = Settings(**{name: values[name] for name in hints})
    _check_rules(settings)
    return settings


def effective_config_path(
    env: Mapping[str, str], default: Path | None = EFFECTIVE_CONFIG
) -> Path | None:
    """The effective-settings file to read or write: IDP_EFFECTIVE_CONFIG (empty: none),
    else `default`."""
    named = env.get("IDP_EFFECTIVE_CONFIG")
    if named is not None:
        return Path(named) if named.strip() else None
    return default


def config_id(idp_config: str) -> str:
    """IDP_CONFIG as an absolute path ("" when unset), so `./x.toml` and `x.toml` match."""
    return str(Path(idp_config).resolve()) if idp_config else ""


def read_effective(path: Path, idp_config: str) -> dict[str, Any]:
    """The values `make run` recorded in `path`, or {} when there is no such file or it was
    written under another IDP_CONFIG than `idp_config` (it then describes another server)."""
    if not path.is_file():
        return {}
    data = _read_toml(path, str(path))
    source = data.pop(EFFECTIVE_SOURCE, {})
    if not isinstance(source, dict) or source.get("idp_config", "") != config_id(idp_config):
        return {}
    unknown = sorted(set(data) - set(EFFECTIVE_KEYS))
    if unknown:
        raise SettingsError(
            f"unknown setting '{unknown[0]}' in {path} (it may only hold "
            f"{', '.join(EFFECTIVE_KEYS)}; delete it and run make run again)"
        )
    return data


def write_effective(settings: Settings, path: Path, idp_config: str, command: str) -> None:
    """Record what a server starts with, for the CLI in other shells (`read_effective`).
    Replaced atomically, readable by the owner only (the database URL may hold a password)."""
    lines = [
        f"# Written by {command} at start-up: the settings the server runs with. The admin",
        "# CLI reads them (below IDP_* environment variables). Safe to delete.",
        "",
    ]
    lines += [f"{key} = {json.dumps(getattr(settings, key))}" for key in EFFECTIVE_KEYS]
    lines += [
        "",
        f"[{EFFECTIVE_SOURCE}]",
        f"command = {json.dumps(command)}",
        f"idp_config = {json.dumps(config_id(idp_config))}",
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines))
    tmp.replace(path)


def _read_toml(path: Path, label: str) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise SettingsError(f"settings file {label} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"settings file {label} is not valid TOML: {exc}") from None


def _parse_env(name: str, raw: str, hint: Any) -> Any:
    if hint is int:
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(
                f"setting '{name}' (IDP_{name.upper()}) must be an integer"
            ) from None
    if get_origin(hint) is list:
        try:
            parsed = json.loads(raw) if raw.startswith("[") else [p.strip() for p in raw.split(",")]
        except ValueError:
            raise SettingsError(
                f"setting '{name}' (IDP_{name.upper()}) must be a comma-separated list"
            ) from None
        return parsed
    if get_origin(hint) is dict:
        # A JSON object ({"lv": "...", "en": "..."}), or one text for every language.
        if raw.lstrip().startswith("{"):
            try:
                return json.loads(raw)
            except ValueError:
                raise SettingsError(
                    f"setting '{name}' (IDP_{name.upper()}) must be a JSON object"
                ) from None
        return raw
    return raw


def _check_type(name: str, value: Any, hint: Any) -> None:
    label = f"setting '{name}' (IDP_{name.upper()})"
    if get_origin(hint) is Literal:
        if value not in get_args(hint):
            allowed = ", ".join(get_args(hint))
            raise SettingsError(f"{label} must be one of: {allowed} (got {value!r})")
    elif get_origin(hint) is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise SettingsError(f"{label} must be a list of strings")
    elif get_origin(hint) is dict:
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in value.items()
        ):
            raise SettingsError(f"{label} must be a table of language = non-empty text")
    elif hint is int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise SettingsError(f"{label} must be a non-negative integer")
    elif hint is str and not isinstance(value, str):
        raise SettingsError(f"{label} must be a string")


def _is_absolute_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)  # raises on an unclosed IPv6 bracket
        parts.port  # noqa: B018  (raises on a port out of range)
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and not parts.query
        and not parts.fragment
        and not any(c.isspace() for c in value)
    )


def _check_rules(s: Settings) -> None:
    if not _is_absolute_http_url(s.issuer):
        raise SettingsError("setting 'issuer' (IDP_ISSUER) must be an absolute http(s) URL")
    parts = urlsplit(s.issuer)
    if s.issuer.endswith("/"):
        raise SettingsError("setting 'issuer' (IDP_ISSUER) must not end with '/'")
    if not s.database_url:
        raise SettingsError("setting 'database_url' (IDP_DATABASE_URL) is missing")
    if not s.secret_key:
        raise SettingsError("setting 'secret_key' (IDP_SECRET_KEY) is missing")
    for name in ("authorization_code_lifetime", "access_token_lifetime", "id_token_lifetime"):
        if getattr(s, name) == 0:
            raise SettingsError(f"setting '{name}' (IDP_{name.upper()}) must be positive")
    if s.key_activation_delay and s.key_activation_delay < s.jwks_max_age:
        raise SettingsError(
            "setting 'key_activation_delay' (IDP_KEY_ACTIVATION_DELAY) must be at least "
            "jwks_max_age"
        )
    if s.default_locale not in s.locales:
        raise SettingsError(
            "setting 'default_locale' (IDP_DEFAULT_LOCALE) must be one of 'locales'"
        )
    for name, hint in get_type_hints(Settings).items():
        if get_origin(hint) is dict and s.default_locale not in getattr(s, name):
            raise SettingsError(
                f"setting '{name}' (IDP_{name.upper()}) needs a text for the default "
                f"locale {s.default_locale!r}"
            )
    if s.portal_url and not _is_absolute_http_url(s.portal_url):
        raise SettingsError(
            "setting 'portal_url' (IDP_PORTAL_URL) must be empty or an absolute http(s) URL"
        )
    _check_brand(s)
    if s.key_encryption_key:
        _check_fernet_key(s.key_encryption_key)
    try:
        parse_networks(s.trusted_proxies)
    except ValueError as exc:
        raise SettingsError(f"setting 'trusted_proxies' (IDP_TRUSTED_PROXIES): {exc}") from None
    for name in (
        "confirmation_link_lifetime",
        "activation_link_lifetime",
        "reset_link_lifetime",
        "smtp_port",
        "smtp_timeout",
        "mail_poll_interval",
        "upstream_timeout",
        "account_reauth_after",
        "access_history_days",
        "readiness_timeout",
        "database_connect_timeout",
        "database_statement_timeout",
        "database_pool_timeout",
    ):
        if getattr(s, name) == 0:
            raise SettingsError(f"setting '{name}' (IDP_{name.upper()}) must be positive")
    # 0 would disable throttling (window, base) or make one typo slow down everybody
    # behind a shared address (address budget).
    for name in ("login_address_free_accounts", "login_delay_base", "login_failure_window"):
        if getattr(s, name) == 0:
            raise SettingsError(f"setting '{name}' (IDP_{name.upper()}) must be positive")
    if s.login_delay_max < s.login_delay_base:
        raise SettingsError(
            "setting 'login_delay_max' (IDP_LOGIN_DELAY_MAX) must be at least login_delay_base"
        )
    if not 12 <= s.password_min_length <= 128:
        raise SettingsError(
            "setting 'password_min_length' (IDP_PASSWORD_MIN_LENGTH) must be between 12 and 128"
        )
    if s.metrics_token and len(s.metrics_token) < 16:
        raise SettingsError(
            "setting 'metrics_token' (IDP_METRICS_TOKEN) must be empty (no metrics) or at "
            "least 16 characters"
        )
    if not s.metrics_dir.strip():
        raise SettingsError("setting 'metrics_dir' (IDP_METRICS_DIR) is missing")
    if "@" not in s.mail_from:
        raise SettingsError("setting 'mail_from' (IDP_MAIL_FROM) must contain an e-mail address")
    if s.mode != "production":
        return
    if s.secret_key == DEMO_SECRET_KEY or len(s.secret_key) < 32:
        raise SettingsError(
            "setting 'secret_key' (IDP_SECRET_KEY) must be a random value of at least 32 "
            "characters in production, not the demo key"
        )
    if not s.key_encryption_key:
        raise SettingsError(
            "setting 'key_encryption_key' (IDP_KEY_ENCRYPTION_KEY) is required in production"
        )
    if s.key_encryption_key == DEMO_KEY_ENCRYPTION_KEY:
        raise SettingsError(
            "setting 'key_encryption_key' (IDP_KEY_ENCRYPTION_KEY) must not be the demo key"
        )
    if parts.scheme != "https" and not s.issuer_is_loopback_http:
        raise SettingsError("setting 'issuer' (IDP_ISSUER) must use https in production")
    if not s.smtp_host:
        raise SettingsError("setting 'smtp_host' (IDP_SMTP_HOST) is required in production")


_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
STATIC_DIR = PROJECT_ROOT / "static"


def _check_brand(s: Settings) -> None:
    """The look's settings: colours as #rrggbb, the logo and favicon a file under static/
    or an https URL, the links absolute http(s) URLs (or empty)."""
    for name in ("brand_primary_colour", "brand_accent_colour"):
        if not _COLOUR.fullmatch(getattr(s, name)):
            raise SettingsError(
                f"setting '{name}' (IDP_{name.upper()}) must be a colour written #rrggbb "
                f"(got {getattr(s, name)!r})"
            )
    for name in ("brand_logo", "brand_favicon"):
        value: str = getattr(s, name)
        label = f"setting '{name}' (IDP_{name.upper()})"
        if "://" in value:
            if (
                not value.startswith("https://")
                or not _is_web_link(value)
                or "@" in urlsplit(value).netloc
                or any(c in value for c in ";,'")
            ):
                raise SettingsError(f"{label} must be a file under static/ or an https URL")
            continue
        path = (STATIC_DIR / value).resolve()
        if (
            not value
            or value.startswith("/")
            or "\\" in value
            or not path.is_relative_to(STATIC_DIR)
            or not path.is_file()
        ):
            raise SettingsError(
                f'{label} must name an image file under static/ (e.g. "logo.svg") or be an '
                f"https URL (got {value!r})"
            )
    for name in ("brand_home_url", "privacy_url"):
        value = getattr(s, name)
        if value and not _is_web_link(value):
            raise SettingsError(
                f"setting '{name}' (IDP_{name.upper()}) must be an absolute http(s) URL "
                f"or empty (got {value!r})"
            )


def _is_web_link(value: str) -> bool:
    """An absolute http(s) URL a page may link to (a query or fragment allowed)."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises on a port out of range)
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and not any(c.isspace() or ord(c) < 0x20 for c in value)
        and '"' not in value
    )


def _check_fernet_key(value: str) -> None:
    import base64
    import binascii

    try:
        ok = len(base64.urlsafe_b64decode(value.encode())) == 32
    except (binascii.Error, ValueError):
        ok = False
    if not ok:
        raise SettingsError(
            "setting 'key_encryption_key' (IDP_KEY_ENCRYPTION_KEY) must be 32 bytes "
            "in url-safe base64 (a Fernet key)"
        )
