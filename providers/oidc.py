"""A generic OpenID Connect upstream (an internet bank), one `ConnectorConfig` per bank.

Authorization code flow with PKCE S256, `state` and `nonce` (OIDC Core 3.1), discovery
from `{issuer}/.well-known/openid-configuration`, the ID token verified with the upstream's
JWKS only, and the RFC 9207 `iss` of the callback compared with the issuer the login
started with (mix-up defence). Whatever goes wrong upstream ends in `UpstreamError`
(`UpstreamCancelled` when the person cancelled), never another exception type.

`config.base_url` is the issuer, exactly as the upstream spells it in its discovery
document. `config.options` (anything else is refused, so a typo is not silently ignored):

- `scopes` (list, default `["openid"]`): scopes asked for; "openid" is always included.
  Add "profile" when the upstream only releases names with it.
- `response_mode` (`"query"` default, or `"form_post"`): how the callback arrives.
- `token_endpoint_auth` (`"client_secret_basic"` default, or `"client_secret_post"`).
- `personal_code_claim` (default `"personal_code"`): the claim carrying the personal code,
  either 11 digits (`32123456785`, `121282-11210`) or an ETSI semantics identifier
  `PNOLV-121282-11210` (eParaksts / Smart-ID `serial_number`). Only Latvian codes are
  accepted (country `LV`). A code failing the checksum is logged and accepted (docs/domain.md:
  an upstream-asserted code is already verified); a missing or garbled one is refused.
- `given_name_claim`, `family_name_claim` (defaults `"given_name"`, `"family_name"`).
- `acr_map` (dict, default `{}`): upstream `acr` -> `"low"` / `"substantial"` / `"high"`.
- `default_assurance` (default by method: bank `"substantial"`, esignature `"high"`,
  docs/domain.md assurance table): used when the upstream `acr` is absent or not in `acr_map`.
- `amr` (list, default by method: bank `["ext", "bank"]`, esignature `["ext", "sc"]`): the
  `amr` we assert when `amr_map` does not apply.
- `amr_map` (dict, default `{}`): upstream `amr` value -> our amr value (e.g.
  `{"mobileid": "swk", "smartcard": "sc"}`); when any upstream value maps, the result is
  `["ext", <mapped values>]`.
- `acr_values` (list, optional): sent upstream as `acr_values`.
- `allowed_algs` (list, default `["RS256", "ES256", "PS256"]`): ID token algorithms
  accepted; only RS*/PS*/ES* (never `none`, never HS*: the client secret is not a key here).
- `leeway` (seconds, default 60, at most 300): clock skew tolerated on `exp`, `iat`, `nbf`.
- `use_userinfo` (bool, default false): fetch the userinfo endpoint for claims missing
  from the ID token (its `sub` must equal the ID token's, OIDC Core 5.3.2).
- `discovery_ttl` (seconds, default 3600): how long discovery and JWKS are cached.
- `jwks_refetch_interval` (seconds, default 60): an ID token with an unknown `kid` makes
  the connector refetch the JWKS once (key rotation), at most once per this interval, so
  forged `kid`s cannot make us hammer the upstream.

Network: every call has `timeout` seconds to connect, for each read, and overall to read
the body; bodies are capped at 1 MiB; redirects are not followed; endpoints must be https
except on loopback hosts (tests, the demo).

Thread safety: one connector per process per provider; the discovery and JWKS caches are
guarded by a lock (never held during network I/O), everything else of a login lives in
`pending` (kept by the caller).

JWS: `joserfc` verifies the signature, with the algorithm pinned to the header's (checked
against the allow-list first) and one key we chose from the JWKS (matching `kid`, key type
and curve), so neither `jku`/`x5u`/`jwk`/`x5c` headers nor the algorithm can pick the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import math
import re
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, get_args
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import requests
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from providers.base import (
    Assurance,
    CheckReport,
    ConnectorConfig,
    LoginStart,
    UpstreamCancelled,
    UpstreamError,
    UpstreamProvider,
    VerifiedIdentity,
)
from providers.personal_codes import InvalidPersonalCode, in_english, parse_personal_code
from providers.urls import is_loopback

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 1024 * 1024
ASSURANCES: tuple[str, ...] = get_args(Assurance)
# alg -> (kty, curve or None): the key an algorithm may be verified with (RFC 7518 3.1).
ALG_KEYS: dict[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
}
DEFAULT_ASSURANCE: dict[str, Assurance] = {"bank": "substantial", "esignature": "high"}
DEFAULT_AMR: dict[str, tuple[str, ...]] = {"bank": ("ext", "bank"), "esignature": ("ext", "sc")}
PENDING_KEYS = ("provider", "issuer", "state", "nonce", "code_verifier", "redirect_uri")
# `PNOLV-121282-11210`: ETSI EN 319 412-1 5.1.3 semantics identifier, natural person.
ETSI_PERSON = re.compile(r"PNO([A-Z]{2})-(.+)")
PLAIN_CODE = re.compile(r"(\d{6})-?(\d{5})")


class InvalidOptions(UpstreamError):
    """The admin's configuration of this upstream is wrong (the message says what)."""


# --- options -----------------------------------------------------------------------------


def _string_list(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, str) and v and not any(c.isspace() for c in v) for v in value
    ):
        raise InvalidOptions(f"option {name!r} must be a list of words, got {value!r}")
    return tuple(dict.fromkeys(value))


def _string_map(name: str, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidOptions(f"option {name!r} must map strings to strings, got {value!r}")
    return dict(value)


def _word(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidOptions(f"option {name!r} must be a non-empty string, got {value!r}")
    return value.strip()


def _number(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidOptions(
            f"option {name!r} must be a number from {low} to {high}, got {value!r}"
        )
    return float(value)


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise InvalidOptions(f"option {name!r} must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


@dataclass(frozen=True)
class OidcOptions:
    """`config.options`, validated (the module docstring documents each)."""

    scopes: tuple[str, ...] = ("openid",)
    response_mode: str = "query"
    token_endpoint_auth: str = "client_secret_basic"  # noqa: S105 (a method name)
    personal_code_claim: str = "personal_code"
    given_name_claim: str = "given_name"
    family_name_claim: str = "family_name"
    acr_map: Mapping[str, Assurance] = field(default_factory=lambda: MappingProxyType({}))
    default_assurance: Assurance = "substantial"
    amr: tuple[str, ...] = ("ext", "bank")
    amr_map: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    acr_values: tuple[str, ...] = ()
    allowed_algs: tuple[str, ...] = ("RS256", "ES256", "PS256")
    leeway: float = 60
    use_userinfo: bool = False
    discovery_ttl: float = 3600
    jwks_refetch_interval: float = 60

    @classmethod
    def parse(cls, options: Mapping[str, Any], method: str) -> OidcOptions:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        if unknown:
            raise InvalidOptions(
                f"unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        o = dict(options)
        values: dict[str, Any] = {
            "default_assurance": DEFAULT_ASSURANCE.get(method, "substantial"),
            "amr": DEFAULT_AMR.get(method, ("ext",)),
        }
        if "scopes" in o:
            scopes = _string_list("scopes", o["scopes"])
            values["scopes"] = scopes if "openid" in scopes else ("openid", *scopes)
        if "response_mode" in o:
            values["response_mode"] = _choice(
                "response_mode", o["response_mode"], ("query", "form_post")
            )
        if "token_endpoint_auth" in o:
            values["token_endpoint_auth"] = _choice(
                "token_endpoint_auth",
                o["token_endpoint_auth"],
                ("client_secret_basic", "client_secret_post"),
            )
        for name in ("personal_code_claim", "given_name_claim", "family_name_claim"):
            if name in o:
                values[name] = _word(name, o[name])
        if "acr_map" in o:
            acr_map = _string_map("acr_map", o["acr_map"])
            for acr, level in acr_map.items():
                _choice(f"acr_map[{acr!r}]", level, ASSURANCES)
            values["acr_map"] = MappingProxyType(acr_map)
        if "default_assurance" in o:
            values["default_assurance"] = _choice(
                "default_assurance", o["default_assurance"], ASSURANCES
            )
        if "amr" in o:
            values["amr"] = _string_list("amr", o["amr"])
        if "amr_map" in o:
            values["amr_map"] = MappingProxyType(_string_map("amr_map", o["amr_map"]))
        if "acr_values" in o and o["acr_values"] is not None:
            values["acr_values"] = _string_list("acr_values", o["acr_values"])
        if "allowed_algs" in o:
            algs = _string_list("allowed_algs", o["allowed_algs"])
            bad = [a for a in algs if a not in ALG_KEYS]
            if bad or not algs:
                raise InvalidOptions(
                    f"option 'allowed_algs': {', '.join(bad) or 'empty'} not allowed "
                    f"(choose from {', '.join(ALG_KEYS)}; never none or HS*)"
                )
            values["allowed_algs"] = algs
        if "leeway" in o:
            values["leeway"] = _number("leeway", o["leeway"], 0, 300)
        if "use_userinfo" in o:
            if not isinstance(o["use_userinfo"], bool):
                raise InvalidOptions(
                    f"option 'use_userinfo' must be true or false, got {o['use_userinfo']!r}"
                )
            values["use_userinfo"] = o["use_userinfo"]
        if "discovery_ttl" in o:
            values["discovery_ttl"] = _number("discovery_ttl", o["discovery_ttl"], 0, 86400)
        if "jwks_refetch_interval" in o:
            values["jwks_refetch_interval"] = _number(
                "jwks_refetch_interval", o["jwks_refetch_interval"], 0, 86400
            )
        return cls(**values)


# --- HTTP --------------------------------------------------------------------------------


def _endpoint_problem(name: str, url: Any) -> str | None:
    if not isinstance(url, str) or not url:
        return f"discovery has no {name}"
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and is_loopback(parts.hostname):
        return None
    return f"{name} {url!r} is not an https URL"


def _http(method: str, url: str, timeout: float, what: str, **kwargs: Any) -> bytes:
    """One HTTP call: 200 and at most MAX_RESPONSE_BYTES read within `timeout` seconds,
    or UpstreamError."""
    return _fetch(method, url, timeout, what, **kwargs)[1]


def _fetch(
    method: str, url: str, timeout: float, what: str, *, any_status: bool = False, **kwargs: Any
) -> tuple[int, bytes]:
    """`_http`, also giving the status; with `any_status` an error answer's body is read
    (bounded the same way) instead of raising, for `check` to tell errors apart."""
    deadline = time.monotonic() + timeout
    try:
        with requests.request(
            method, url, timeout=(timeout, timeout), stream=True, allow_redirects=False, **kwargs
        ) as response:
            if response.status_code != 200 and not any_status:
                raise UpstreamError(f"{what}: HTTP {response.status_code} from {url}")
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > MAX_RESPONSE_BYTES:
                raise UpstreamError(f"{what}: response of {length} bytes is too large")
            body = bytearray()
            for chunk in response.iter_content(64 * 1024):
                body += chunk
                if len(body) > MAX_RESPONSE_BYTES:
                    raise UpstreamError(f"{what}: response larger than {MAX_RESPONSE_BYTES} bytes")
                if time.monotonic() > deadline:
                    raise UpstreamError(f"{what}: response slower than {timeout}s")
            return response.status_code, bytes(body)
    except requests.RequestException as exc:
        raise UpstreamError(f"{what}: {type(exc).__name__} calling {url}") from exc


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise UpstreamError(f"{what}: not JSON") from exc
    if not isinstance(value, dict):
        raise UpstreamError(f"{what}: not a JSON object")
    return value


def _get_json(url: str, timeout: float, what: str, **kwargs: Any) -> dict[str, Any]:
    return _json_object(
        _http(
            "GET",
            url,
            timeout,
            what,
            headers={"Accept": "application/json", **kwargs.pop("headers", {})},
            **kwargs,
        ),
        what,
    )


def _b64url_json(segment: str, what: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:
        raise UpstreamError(f"{what}: not base64url") from exc
    return _json_object(raw, what)


# --- personal codes ----------------------------------------------------------------------


def claimed_personal_code(value: Any, provider: str = "?") -> tuple[str, str]:
    """(country, 11-digit code) from a plain Latvian code or `PNOLV-...`, by the one
    personal-code rule (providers/personal_codes.py); UpstreamError when missing, garbled,
    or a company's registration number (no person's code). A code failing the date or
    checksum is logged, not refused (docs/domain.md, "Facts worth knowing": an
    upstream-asserted code is already verified)."""
    if not isinstance(value, str) or not value.strip():
        raise UpstreamError(f"{provider}: no personal code in the upstream claims")
    text = value.strip()
    country = "LV"
    etsi = ETSI_PERSON.fullmatch(text)
    if etsi:
        country, text = etsi.group(1), etsi.group(2)
    if country != "LV":
        raise UpstreamError(f"{provider}: personal code of country {country}, not LV")
    plain = PLAIN_CODE.fullmatch(text)
    if not plain:
        raise UpstreamError(f"{provider}: the personal code claim is not a Latvian code")
    try:
        code, problem = parse_personal_code(plain.group(1) + plain.group(2))
    except InvalidPersonalCode as exc:
        raise UpstreamError(
            f"{provider}: the personal code claim is refused: {in_english(exc.message)}"
        ) from None
    if problem is not None:
        log.warning(
            "%s asserted personal code %s…%s that fails the Latvian checksum (%s); "
            "accepted as upstream-verified (docs/domain.md)",
            provider,
            code[:2],
            code[-1],
            in_english(problem),
        )
    return country, code


# --- the connector -----------------------------------------------------------------------


@dataclass
class _Cache:
    value: Any = None
    fetched_at: float = float("-inf")


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


class OidcProvider(UpstreamProvider):
    """One OpenID Connect upstream. Safe to share between threads."""

    def __init__(self, config: ConnectorConfig, options: OidcOptions, timeout: float) -> None:
        self.name = config.name
        self.method = config.method
        self.config = config
        self.issuer = config.base_url
        self.options = options
        self.timeout = timeout
        # Guards the three caches below; never held during network I/O.
        self._lock = threading.Lock()
        self._discovery = _Cache()
        self._jwks = _Cache()
        self._last_kid_refetch = float("-inf")

    # discovery and keys

    def discovery_problems(self, doc: dict[str, Any]) -> list[str]:
        """What in a discovery document stops us using it (OIDC Discovery 3 and 4.3)."""
        problems = []
        if doc.get("issuer") != self.issuer:
            problems.append(
                f"discovery issuer {doc.get('issuer')!r} is not the configured "
                f"issuer {self.issuer!r}"
            )
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            problem = _endpoint_problem(name, doc.get(name))
            if problem:
                problems.append(problem)
        if self.options.use_userinfo:
            problem = _endpoint_problem("userinfo_endpoint", doc.get("userinfo_endpoint"))
            if problem:
                problems.append(problem)

        def advertised(key: str) -> list[Any] | None:
            value = doc.get(key)
            if value is None:
                return None
            if not isinstance(value, list):
                problems.append(f"discovery {key} is not a list")
                return None
            return value

        methods = advertised("code_challenge_methods_supported")
        if methods is not None and "S256" not in methods:
            problems.append(
                "the upstream does not support PKCE S256 "
                f"(code_challenge_methods_supported: {methods})"
            )
        algs = advertised("id_token_signing_alg_values_supported")
        if algs is not None and not set(algs) & set(self.options.allowed_algs):
            problems.append(
                f"no ID token algorithm in common: upstream {algs}, "
                f"allowed {list(self.options.allowed_algs)}"
            )
        types = advertised("response_types_supported")
        if types is not None and "code" not in types:
            problems.append("the upstream does not support response_type=code")
        modes = advertised("response_modes_supported")
        if modes is not None and self.options.response_mode not in modes:
            problems.append(
                f"response_mode {self.options.response_mode} not supported (upstream: {modes})"
            )
        auths = advertised("token_endpoint_auth_methods_supported")
        if auths is not None and self.options.token_endpoint_auth not in auths:
            problems.append(
                f"token endpoint auth {self.options.token_endpoint_auth} not "
                f"supported (upstream: {auths})"
            )
        return problems

    def discovery(self) -> dict[str, Any]:
        """The upstream's discovery document, cached for `discovery_ttl` seconds. Fetched
        outside the lock: with the upstream down, each waiting login pays one `timeout`,
        not one per login queued before it."""
        with self._lock:
            cached = self._discovery
        if (
            cached.value is not None
            and time.monotonic() - cached.fetched_at < self.options.discovery_ttl
        ):
            cached_doc: dict[str, Any] = cached.value
            return cached_doc
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        doc = _get_json(url, self.timeout, f"{self.name} discovery")
        problems = self.discovery_problems(doc)
        if problems:
            raise UpstreamError(f"{self.name} discovery: {'; '.join(problems)}")
        with self._lock:
            self._discovery = _Cache(doc, time.monotonic())
        return doc

    def _fetch_jwks(self) -> list[dict[str, Any]]:
        doc = _get_json(self.discovery()["jwks_uri"], self.timeout, f"{self.name} JWKS")
        keys = doc.get("keys")
        if not isinstance(keys, list):
            raise UpstreamError(f"{self.name} JWKS: no keys list")
        usable = [
            k
            for k in keys
            if isinstance(k, dict)
            and k.get("kty") in ("RSA", "EC")
            and k.get("use", "sig") == "sig"
        ]
        if not usable:
            raise UpstreamError(f"{self.name} JWKS: no RSA or EC signing key")
        return usable

    def _candidate_keys(
        self, jwks: list[dict[str, Any]], kid: str | None, alg: str
    ) -> list[dict[str, Any]]:
        kty, curve = ALG_KEYS[alg]
        return [
            k
            for k in jwks
            if k.get("kty") == kty
            and (curve is None or k.get("crv") == curve)
            and k.get("alg", alg) == alg
            and (kid is None or k.get("kid") == kid)
        ]

    def signing_keys(self, kid: str | None, alg: str) -> list[dict[str, Any]]:
        """JWKs from the upstream's JWKS that may have signed a token with this kid and alg.
        An unknown kid refetches the JWKS once (key rotation), at most once per
        `jwks_refetch_interval` seconds per connector, so forged kids cannot make us
        hammer the upstream. Fetches happen outside the lock (see `discovery`)."""
        with self._lock:
            cached = self._jwks
        if (
            cached.value is None
            or time.monotonic() - cached.fetched_at >= self.options.discovery_ttl
        ):
            keys = self._fetch_jwks()
            with self._lock:
                self._jwks = _Cache(keys, time.monotonic())
            return self._candidate_keys(keys, kid, alg)
        candidates = self._candidate_keys(cached.value, kid, alg)
        if candidates or kid is None:
            return candidates
        with self._lock:
            now = time.monotonic()
            if now - self._last_kid_refetch < self.options.jwks_refetch_interval:
                return []
            self._last_kid_refetch = now
        keys = self._fetch_jwks()
        with self._lock:
            self._jwks = _Cache(keys, time.monotonic())
        return self._candidate_keys(keys, kid, alg)

    # the flow

    def start_login(self, callback_url: str) -> LoginStart:
        doc = self.discovery()
        state = secrets.token_urlsafe(32)
        nonce = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)
        params = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": callback_url,
            "scope": " ".join(self.options.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": _s256(verifier),
            "code_challenge_method": "S256",
        }
        if self.options.response_mode != "query":
            params["response_mode"] = self.options.response_mode
        if self.options.acr_values:
            params["acr_values"] = " ".join(self.options.acr_values)
        endpoint = urlsplit(doc["authorization_endpoint"])
        query = urlencode([*parse_qsl(endpoint.query), *params.items()])
        pending = {
            "provider": self.name,
            "issuer": self.issuer,
            "state": state,
            "nonce": nonce,
            "code_verifier": verifier,
            "redirect_uri": callback_url,
            # RFC 9207 2.4: an upstream that advertises `iss` in responses must send it.
            "iss_required": doc.get("authorization_response_iss_parameter_supported") is True,
        }
        return LoginStart(urlunsplit(endpoint._replace(query=query)), state, pending)

    def finish_login(
        self, callback_params: dict[str, str], pending: dict[str, Any]
    ) -> VerifiedIdentity:
        if not isinstance(pending, dict) or not all(
            isinstance(pending.get(k), str) and pending.get(k) for k in PENDING_KEYS
        ):
            raise UpstreamError(f"{self.name}: the pending login is incomplete")
        if pending["provider"] != self.name or pending["issuer"] != self.issuer:
            raise UpstreamError(f"{self.name}: the pending login belongs to another upstream")
        params = callback_params
        state = params.get("state")
        if not isinstance(state, str) or not _same(state, pending["state"]):
            raise UpstreamError(f"{self.name}: callback state does not match the login")
        # RFC 9207: the issuer of the response is the one the login was sent to.
        iss = params.get("iss")
        if iss is not None:
            if not isinstance(iss, str) or not _same(iss, pending["issuer"]):
                raise UpstreamError(
                    f"{self.name}: callback iss {iss!r} is not {pending['issuer']!r} (mix-up?)"
                )
        elif pending.get("iss_required"):
            raise UpstreamError(
                f"{self.name}: callback without the iss the upstream advertises (RFC 9207)"
            )
        error = params.get("error")
        if error is not None:
            if error == "access_denied":
                raise UpstreamCancelled(f"{self.name}: the person cancelled")
            raise UpstreamError(f"{self.name}: upstream error {str(error)[:64]!r}")
        code = params.get("code")
        if not isinstance(code, str) or not code:
            raise UpstreamError(f"{self.name}: callback without a code")

        tokens = self._redeem(code, pending)
        claims = self.verify_id_token(tokens["id_token"], pending["nonce"])
        if self.options.use_userinfo:
            claims = {**self._userinfo(tokens, claims["sub"]), **claims}
        return self._identity(claims)

    def _redeem(self, code: str, pending: dict[str, Any]) -> dict[str, Any]:
        """The token request (RFC 6749 4.1.3, RFC 7636 4.5)."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": pending["redirect_uri"],
            "code_verifier": pending["code_verifier"],
        }
        what = f"{self.name} token endpoint"
        tokens = _json_object(
            _http(
                "POST",
                self.discovery()["token_endpoint"],
                self.timeout,
                what,
                **self.token_request(form),
            ),
            what,
        )
        if not isinstance(tokens.get("id_token"), str):
            raise UpstreamError(f"{what}: no id_token")
        if self.options.use_userinfo and not isinstance(tokens.get("access_token"), str):
            raise UpstreamError(f"{what}: no access_token for userinfo")
        return tokens

    def token_request(self, form: dict[str, str]) -> dict[str, Any]:
        """`requests` arguments for a token request carrying `form` and our client
        authentication (the login and `check` must authenticate the same way)."""
        secret = self.config.client_secret or ""
        kwargs: dict[str, Any] = {"headers": {"Accept": "application/json"}}
        if self.options.token_endpoint_auth == "client_secret_post":  # noqa: S105
            form = {**form, "client_id": self.config.client_id, "client_secret": secret}
        else:
            # RFC 6749 2.3.1: both parts form-urlencoded before Basic.
            kwargs["auth"] = (quote(self.config.client_id, safe=""), quote(secret, safe=""))
        return {**kwargs, "data": form}

    def verify_id_token(self, token: str, nonce: str) -> dict[str, Any]:
        """The ID token's claims, once its signature and claims pass OIDC Core 3.1.3.7."""
        what = f"{self.name} ID token"
        parts = token.split(".")
        if len(parts) != 3:
            raise UpstreamError(f"{what}: not a compact JWS")
        header = _b64url_json(parts[0], f"{what} header")
        alg = header.get("alg")
        if alg not in self.options.allowed_algs:
            raise UpstreamError(f"{what}: algorithm {str(alg)[:16]!r} not allowed")
        if "crit" in header:
            raise UpstreamError(f"{what}: critical header parameters are not understood")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise UpstreamError(f"{what}: kid is not a string")
        candidates = self.signing_keys(kid, alg)
        if not candidates:
            raise UpstreamError(f"{what}: no published key for kid {str(kid)[:64]!r} / {alg}")
        payload = None
        for jwk in candidates:
            try:
                key = (RSAKey if jwk["kty"] == "RSA" else ECKey).import_key(jwk)
                payload = jws.deserialize_compact(token, key, algorithms=[alg]).payload
                break
            except (JoseError, ValueError, TypeError, KeyError):
                # TypeError/KeyError: a JWK missing or mistyping its members.
                continue
        if payload is None:
            raise UpstreamError(f"{what}: signature does not verify")
        claims = _json_object(payload, f"{what} payload")
        self._check_claims(claims, nonce, what)
        return claims

    def _check_claims(self, claims: dict[str, Any], nonce: str, what: str) -> None:
        client_id = self.config.client_id
        if claims.get("iss") != self.issuer:
            raise UpstreamError(
                f"{what}: iss {str(claims.get('iss'))[:128]!r} is not {self.issuer!r}"
            )
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or client_id not in audiences:
            raise UpstreamError(f"{what}: aud does not contain our client_id")
        azp = claims.get("azp")
        if azp is not None and azp != client_id:
            raise UpstreamError(f"{what}: azp is not our client_id")
        if len(audiences) > 1 and azp is None:
            raise UpstreamError(f"{what}: several audiences and no azp")
        now = time.time()
        leeway = self.options.leeway
        for name in ("exp", "iat"):
            value = claims.get(name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                raise UpstreamError(f"{what}: no numeric {name}")
        if claims["exp"] + leeway < now:
            raise UpstreamError(f"{what}: expired")
        if claims["iat"] - leeway > now:
            raise UpstreamError(f"{what}: issued in the future")
        nbf = claims.get("nbf")
        if nbf is not None and (
            isinstance(nbf, bool)
            or not isinstance(nbf, int | float)
            or not math.isfinite(nbf)
            or nbf - leeway > now
        ):
            raise UpstreamError(f"{what}: not valid yet")
        token_nonce = claims.get("nonce")
        if not isinstance(token_nonce, str) or not _same(token_nonce, nonce):
            raise UpstreamError(f"{what}: nonce does not match the login")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise UpstreamError(f"{what}: no sub")

    def _userinfo(self, tokens: dict[str, Any], sub: str) -> dict[str, Any]:
        what = f"{self.name} userinfo"
        info = _get_json(
            self.discovery()["userinfo_endpoint"],
            self.timeout,
            what,
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
        )
        if info.get("sub") != sub:
            raise UpstreamError(f"{what}: sub differs from the ID token's (OIDC Core 5.3.2)")
        return info

    def _identity(self, claims: dict[str, Any]) -> VerifiedIdentity:
        o = self.options
        country, code = claimed_personal_code(claims.get(o.personal_code_claim), self.name)
        names = []
        for claim in (o.given_name_claim, o.family_name_claim):
            value = claims.get(claim)
            if not isinstance(value, str) or not value.strip():
                raise UpstreamError(f"{self.name}: no {claim} in the upstream claims")
            names.append(value.strip())
        acr = claims.get("acr")
        acr = acr if isinstance(acr, str) else None
        assurance: Assurance = (
            o.acr_map.get(acr, o.default_assurance) if acr else o.default_assurance
        )
        upstream_amr = claims.get("amr")
        mapped = []
        if isinstance(upstream_amr, list):
            mapped = [o.amr_map[v] for v in upstream_amr if isinstance(v, str) and v in o.amr_map]
        amr = tuple(dict.fromkeys(("ext", *mapped))) if mapped else o.amr
        return VerifiedIdentity(
            provider=self.name,
            method=self.method,
            subject=claims["sub"],
            country=country,
            personal_code=code,
            given_name=names[0],
            family_name=names[1],
            assurance=assurance,
            amr=amr,
            upstream_acr=acr,
        )


def build(config: ConnectorConfig, timeout: float = 10) -> OidcProvider:
    """A connector for this upstream; no network I/O (discovery happens on first use).
    Raises InvalidOptions (an UpstreamError) when the configuration is wrong."""
    options = OidcOptions.parse(config.options or {}, config.method)
    problem = _endpoint_problem("issuer", config.base_url)
    if problem:
        raise InvalidOptions(problem)
    if not config.client_id:
        raise InvalidOptions("no client_id")
    if not config.client_secret:
        raise InvalidOptions("no client_secret (client_secret_basic/post need one)")
    return OidcProvider(config, options, timeout)


def check(config: ConnectorConfig, timeout: float = 10) -> list[str]:
    """The problems `check_report` finds (an empty list when there are none)."""
    return check_report(config, timeout).problems


def check_report(
    config: ConnectorConfig, timeout: float = 10, redirect_uri: str | None = None
) -> CheckReport:
    """What is wrong with this upstream (`idp providers check`): the configuration, the
    discovery document, the JWKS, our client authentication at the token endpoint
    (problems), and whether discovery lists the claims and scopes we rely on (warnings:
    these lists are optional and need not be complete, OIDC Discovery 3)."""
    report = CheckReport()
    try:
        provider = build(config, timeout)
    except InvalidOptions as exc:
        report.problems.append(str(exc))
        return report
    url = provider.issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        doc = _get_json(url, timeout, "discovery")
    except UpstreamError as exc:
        report.problems.append(str(exc))
        return report
    problems = report.problems
    problems.extend(provider.discovery_problems(doc))
    if _endpoint_problem("jwks_uri", doc.get("jwks_uri")) is None:
        try:
            jwks = _get_json(doc["jwks_uri"], timeout, "JWKS")
            keys = jwks.get("keys")
            if not isinstance(keys, list) or not keys:
                problems.append("JWKS has no keys")
            else:
                usable = [
                    a
                    for a in provider.options.allowed_algs
                    if any(
                        provider._candidate_keys([k for k in keys if isinstance(k, dict)], None, a)
                    )
                ]
                if not usable:
                    problems.append(
                        "JWKS has no key for the allowed algorithms "
                        f"{list(provider.options.allowed_algs)}"
                    )
        except UpstreamError as exc:
            problems.append(str(exc))
    if _endpoint_problem("token_endpoint", doc.get("token_endpoint")) is None:
        problem, warning = _probe_client_auth(
            provider, doc["token_endpoint"], timeout, redirect_uri
        )
        problems.extend([problem] if problem else [])
        report.warnings.extend([warning] if warning else [])
    report.warnings.extend(_advertised_warnings(provider.options, doc))
    return report


# What the admin reads when the token endpoint refuses our client (RFC 6749 5.2
# invalid_client); providers/eparaksts.py says the same.
CLIENT_REFUSED = "client authentication refused: check the client id and secret"


def _probe_client_auth(
    provider: OidcProvider, endpoint: str, timeout: float, redirect_uri: str | None
) -> tuple[str | None, str | None]:
    """Redeem a made-up code with our client authentication: servers authenticate a
    confidential client before looking at its code (RFC 6749 3.2.1, 4.1.3), so
    `invalid_grant` says our id and secret are good and `invalid_client` (or 401) that
    they are not. Harmless: no code can match. Returns (problem, warning)."""
    form = {
        "grant_type": "authorization_code",
        "code": "idp-check-" + secrets.token_urlsafe(16),
        "redirect_uri": redirect_uri or provider.issuer.rstrip("/") + "/idp-check",
        # A well-formed verifier, so a PKCE-strict server gets as far as the code.
        "code_verifier": secrets.token_urlsafe(48),
    }
    what = "token endpoint"
    try:
        status, body = _fetch(
            "POST", endpoint, timeout, what, any_status=True, **provider.token_request(form)
        )
    except UpstreamError as exc:
        return str(exc), None
    try:
        error = _json_object(body, what).get("error")
    except UpstreamError:
        error = None
    error = error[:40] if isinstance(error, str) else None
    answer = f"HTTP {status}" + (f" {error}" if error else " without an OAuth error")
    if status == 401 or error == "invalid_client":
        return f"{CLIENT_REFUSED} (the token endpoint answered {answer})", None
    if error == "invalid_grant" and 400 <= status < 500:
        return None, None
    if error == "unauthorized_client":
        return (
            f"the token endpoint answered {answer}: this client may not use the "
            "authorization code grant (ask the bank)"
        ), None
    if 400 <= status < 500 and error:
        # Client authentication may have passed; the answer does not say.
        return None, (
            f"cannot tell whether the client id and secret are accepted: the "
            f"token endpoint answered {answer} to a made-up code "
            "(expected invalid_grant)"
        )
    return (
        f"the token endpoint answered {answer} to a made-up code (expected HTTP 400 invalid_grant)"
    ), None


def _advertised_warnings(options: OidcOptions, doc: dict[str, Any]) -> list[str]:
    """Discovery's claims_supported / scopes_supported against what the login needs."""
    warnings = []
    claims = doc.get("claims_supported")
    # (what it is, the option naming it, the claim)
    needed = [
        ("personal-code claim", "personal_code_claim", options.personal_code_claim),
        ("given-name claim", "given_name_claim", options.given_name_claim),
        ("family-name claim", "family_name_claim", options.family_name_claim),
    ]
    if isinstance(claims, list):
        for label, option, claim in needed:
            if claim not in claims:
                warnings.append(
                    f"the {label} {claim!r} is not in the upstream's claims_supported: "
                    f"logins fail unless it is sent anyway (check the option {option} "
                    "and the scopes)"
                )
    else:
        warnings.append(
            "cannot tell whether the upstream sends the claims "
            f"{', '.join(repr(n[2]) for n in needed)}: its discovery lists "
            "no claims_supported"
        )
    scopes = doc.get("scopes_supported")
    if isinstance(scopes, list):
        missing = [s for s in options.scopes if s not in scopes]
        if missing:
            warnings.append(
                f"scope(s) {', '.join(missing)} not in the upstream's "
                f"scopes_supported {scopes}: the login may be refused or "
                "come back without the claims"
            )
    else:
        warnings.append(
            "cannot tell whether the scopes "
            f"{', '.join(options.scopes)} are supported: the upstream's "
            "discovery lists no scopes_supported"
        )
    return warnings
