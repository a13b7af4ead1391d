"""The eParaksts connector (LVRTC, Latvia): OAuth 2.0 authorization code against the
service's published paths, then the identity from its `users/me` resource.

eParaksts is not an OpenID provider we can verify an ID token from: the identity is whatever
`GET /trustedx-resources/openid/v1/users/me` answers over TLS to the access token we
redeemed with our client secret. The personal code comes from `serial_number`
(`PNOLV-DDMMYY-NNNNN`), never from `sub`, which differs between eParaksts Mobile and the eID
card for the same person (docs/domain.md, "Facts worth knowing").

Options (`ConnectorConfig.options`, validated by `EparakstsOptions.from_mapping`):

`acr_values`  the login method eParaksts must use, one flow URN (default
              `urn:eparaksts:authentication:flow:mobileid`). To offer both Mobile and the
              eID card, configure two connectors, one per flow.
`scope`       the scope asked for (default `urn:lvrtc:fpeil:aa`, electronic identification).
`amr`         which `amr` each flow gives, as {flow URN: [amr, ...]}, merged over the
              defaults: eParaksts Mobile (`mobileid`, `mobileid:cross-device`) gives
              ["ext", "swk"], the eID card (`sc_plugin`, `mobile-eid` i.e. eID Scan)
              ["ext", "sc"] (docs/domain.md, "Ways to log in"; RFC 8176). `acr_values` must
              name a flow listed here.
`pkce`        send PKCE S256 (default true). The published eParaksts docs describe plain
              OAuth 2.0 code flow; a server that ignores `code_challenge` is unharmed,
              and one that honours it binds the code to this login.

Only Latvian identities (`PNOLV-`) are accepted: people are linked on Latvian personal
codes, so a `PNOEE-…` or any other country is refused as an upstream error.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import requests
import urllib3

from providers.base import (
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

# The two environments named in the public eParaksts integration docs (eidas.eparaksts.lv).
# They are what an admin will usually configure, but the admin must check them against the
# agreement with LVRTC: they are not verified by this code.
PRODUCTION_BASE_URL = "https://eidas.eparaksts.lv"
DEMO_BASE_URL = "https://eidas-demo.eparaksts.lv"

# The published paths, relative to the base URL.
AUTHORIZE_PATH = "/trustedx-authserver/oauth/lvrtc-eipsign-as"
TOKEN_PATH = AUTHORIZE_PATH + "/token"
USERS_ME_PATH = "/trustedx-resources/openid/v1/users/me"

FLOW_PREFIX = "urn:eparaksts:authentication:flow:"
FLOW_MOBILEID = FLOW_PREFIX + "mobileid"
FLOW_MOBILEID_CROSS_DEVICE = FLOW_PREFIX + "mobileid:cross-device"
FLOW_SMARTCARD = FLOW_PREFIX + "sc_plugin"
FLOW_EID_SCAN = FLOW_PREFIX + "mobile-eid"
DEFAULT_SCOPE = "urn:lvrtc:fpeil:aa"
DEFAULT_AMR: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        FLOW_MOBILEID: ("ext", "swk"),
        FLOW_MOBILEID_CROSS_DEVICE: ("ext", "swk"),
        FLOW_SMARTCARD: ("ext", "sc"),
        FLOW_EID_SCAN: ("ext", "sc"),
    }
)

# ETSI EN 319 412-1 semantics identifier of a Latvian natural person. The hyphen inside the
# code is how eParaksts writes it; a code without it is the same 11 digits.
_LATVIAN_SERIAL = re.compile(r"PNOLV-(\d{6})-?(\d{5})")
_ANY_SERIAL = re.compile(r"PNO([A-Z]{2})-.+")
_AMR_TOKEN = re.compile(r"[a-z0-9_-]{1,32}")
_KNOWN_OPTIONS = frozenset({"acr_values", "scope", "amr", "pkce"})
# Upstream answers larger than this are garbage, not identities.
MAX_RESPONSE_BYTES = 64 * 1024
MAX_SUBJECT_CHARS = 255
MAX_NAME_CHARS = 200


class EparakstsConfigError(ValueError):
    """The admin's configuration cannot work; the message says what to change."""


@dataclass(frozen=True)
class EparakstsOptions:
    """The validated connector options (see the module docstring)."""

    acr_values: str = FLOW_MOBILEID
    scope: str = DEFAULT_SCOPE
    amr: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: DEFAULT_AMR)
    pkce: bool = True

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> EparakstsOptions:
        unknown = sorted(set(options) - _KNOWN_OPTIONS)
        if unknown:
            raise EparakstsConfigError(
                f"unknown eParaksts option(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(_KNOWN_OPTIONS))}"
            )
        amr = dict(DEFAULT_AMR)
        raw_amr = options.get("amr", {})
        if not isinstance(raw_amr, Mapping):
            raise EparakstsConfigError(
                "option amr must map a flow URN to a list of amr values, e.g. "
                f'{{"{FLOW_MOBILEID}": ["ext", "swk"]}}'
            )
        for flow, values in raw_amr.items():
            if not isinstance(flow, str) or not flow.startswith(FLOW_PREFIX):
                raise EparakstsConfigError(
                    f"option amr: {flow!r} is not an eParaksts flow (it must start with "
                    f"{FLOW_PREFIX})"
                )
            if (
                not isinstance(values, list | tuple)
                or not values
                or not all(isinstance(v, str) and _AMR_TOKEN.fullmatch(v) for v in values)
            ):
                raise EparakstsConfigError(
                    f"option amr[{flow}] must be a non-empty list of amr values such as "
                    '["ext", "swk"] (RFC 8176: lower-case letters, digits, "_" or "-")'
                )
            amr[flow] = tuple(values)
        acr_values = options.get("acr_values", FLOW_MOBILEID)
        if not isinstance(acr_values, str) or acr_values not in amr:
            raise EparakstsConfigError(
                f"option acr_values must be one eParaksts flow with a known amr: "
                f"{', '.join(sorted(amr))} (got {acr_values!r})"
            )
        scope = options.get("scope", DEFAULT_SCOPE)
        if not isinstance(scope, str) or not scope.strip() or any(c in scope for c in '"\\\r\n\t'):
            raise EparakstsConfigError(
                f"option scope must be space-separated scope names, e.g. {DEFAULT_SCOPE}"
            )
        pkce = options.get("pkce", True)
        if not isinstance(pkce, bool):
            raise EparakstsConfigError("option pkce must be true or false")
        return cls(
            acr_values=acr_values,
            scope=" ".join(scope.split()),
            amr=MappingProxyType(amr),
            pkce=pkce,
        )


def _check_base_url(base_url: str) -> str:
    """The base URL without a trailing slash; https, or http on a loopback host (the
    simulator in tests and in demo mode)."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise EparakstsConfigError(
            f"base_url must be an absolute https URL such as {PRODUCTION_BASE_URL} "
            f"(got {base_url!r})"
        )
    if parts.query or parts.fragment or parts.username:
        raise EparakstsConfigError("base_url must carry no query, fragment or credentials")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise EparakstsConfigError(
            "base_url must use https (plain http is allowed only on a loopback host, "
            "for the simulator)"
        )
    return base_url.rstrip("/")


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _same(a: object, b: object) -> bool:
    """Constant-time equality of two strings; anything else is unequal."""
    if not isinstance(a, str) or not isinstance(b, str):
        return False
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


class EparakstsProvider(UpstreamProvider):
    """One configured eParaksts login method (one flow)."""

    def __init__(
        self, config: ConnectorConfig, options: EparakstsOptions, timeout: float = 10
    ) -> None:
        self.name = config.name
        self.method = config.method
        self.base_url = _check_base_url(config.base_url)
        self.client_id = config.client_id
        self._client_secret = config.client_secret or ""
        self.options = options
        self.timeout = timeout

    def __repr__(self) -> str:  # never the secret
        return f"EparakstsProvider(name={self.name!r}, base_url={self.base_url!r})"

    @property
    def authorize_url(self) -> str:
        return self.base_url + AUTHORIZE_PATH

    @property
    def token_url(self) -> str:
        return self.base_url + TOKEN_PATH

    @property
    def users_me_url(self) -> str:
        return self.base_url + USERS_ME_PATH

    def start_login(self, callback_url: str) -> LoginStart:
        state = secrets.token_urlsafe(32)
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": callback_url,
            "scope": self.options.scope,
            "state": state,
            "acr_values": self.options.acr_values,
        }
        pending: dict[str, Any] = {
            "provider": self.name,
            "state": state,
            "redirect_uri": callback_url,
            "acr_values": self.options.acr_values,
        }
        if self.options.pkce:
            verifier = secrets.token_urlsafe(48)
            params["code_challenge"] = _s256(verifier)
            params["code_challenge_method"] = "S256"
            pending["code_verifier"] = verifier
        return LoginStart(
            redirect_url=f"{self.authorize_url}?{urlencode(params)}", state=state, pending=pending
        )

    def finish_login(
        self, callback_params: dict[str, str], pending: dict[str, Any]
    ) -> VerifiedIdentity:
        if not _same(pending.get("provider"), self.name):
            raise UpstreamError(f"{self.name}: the pending login belongs to another provider")
        # The state first: an answer that is not ours (replayed, forged, or for another
        # login) is refused before anything in it is believed, an "access_denied" included.
        if not _same(callback_params.get("state"), pending.get("state")):
            raise UpstreamError(f"{self.name}: callback state does not match the login")
        error = callback_params.get("error")
        if error is not None:
            if error == "access_denied":
                raise UpstreamCancelled(f"{self.name}: the person cancelled")
            raise UpstreamError(f"{self.name}: authorization error {error[:64]!r}")
        code = callback_params.get("code")
        if not code:
            raise UpstreamError(f"{self.name}: callback carries no code")
        access_token = self._redeem(code, pending)
        return self._identity(self._users_me(access_token), pending)

    # -- the two back-channel calls ------------------------------------------------------

    def _redeem(self, code: str, pending: Mapping[str, Any]) -> str:
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": str(pending.get("redirect_uri", "")),
        }
        if "code_verifier" in pending:
            data["code_verifier"] = str(pending["code_verifier"])
        status, body = _call(
            self.name,
            "token",
            "POST",
            self.token_url,
            self.timeout,
            data=data,
            headers=_basic_auth(self.client_id, self._client_secret),
        )
        if status != 200:
            raise UpstreamError(
                f"{self.name}: token endpoint answered {status} {_error_code(body)}"
            )
        answer = _json_object(self.name, "token", body)
        token = answer.get("access_token")
        token_type = answer.get("token_type")
        if not isinstance(token, str) or not token or len(token) > 4096:
            raise UpstreamError(f"{self.name}: token answer carries no usable access_token")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise UpstreamError(f"{self.name}: token type {str(token_type)[:20]!r} is not Bearer")
        return token

    def _users_me(self, access_token: str) -> dict[str, Any]:
        status, body = _call(
            self.name,
            "users/me",
            "GET",
            self.users_me_url,
            self.timeout,
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
        )
        if status != 200:
            raise UpstreamError(f"{self.name}: users/me answered {status}")
        return _json_object(self.name, "users/me", body)

    def _identity(self, me: Mapping[str, Any], pending: Mapping[str, Any]) -> VerifiedIdentity:
        subject = me.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > MAX_SUBJECT_CHARS:
            raise UpstreamError(f"{self.name}: users/me carries no usable sub")
        personal_code = _personal_code(self.name, me.get("serial_number"))
        given_name = _name(self.name, me, "given_name")
        family_name = _name(self.name, me, "family_name")
        # The flow eParaksts reports (its acr echoes the flow used) decides the amr when it
        # is one we know; otherwise the flow we asked for, which eParaksts enforces.
        acr = me.get("acr")
        upstream_acr = acr if isinstance(acr, str) else None
        requested = str(pending.get("acr_values", self.options.acr_values))
        flow = acr if isinstance(acr, str) and acr in self.options.amr else requested
        amr = self.options.amr.get(flow)
        if amr is None:
            raise UpstreamError(f"{self.name}: no amr configured for flow {flow[:80]!r}")
        return VerifiedIdentity(
            provider=self.name,
            method=self.method,
            subject=subject,
            country="LV",
            personal_code=personal_code,
            given_name=given_name,
            family_name=family_name,
            assurance="high",
            amr=amr,
            upstream_acr=upstream_acr or requested,
        )


def _personal_code(provider: str, serial: object) -> str:
    """The 11-digit code of `PNOLV-DDMMYY-NNNNN`, by the one personal-code rule
    (providers/personal_codes.py). Other countries are refused: people are linked on Latvian
    personal codes; so is a company's registration number, which is no person's code. A code
    failing the date or checksum is kept and logged, not refused (docs/domain.md: a code asserted
    by eSignature is already verified)."""
    if not isinstance(serial, str):
        raise UpstreamError(f"{provider}: users/me carries no serial_number")
    match = _LATVIAN_SERIAL.fullmatch(serial)
    if match is None:
        other = _ANY_SERIAL.fullmatch(serial)
        if other is not None and other.group(1) != "LV":
            raise UpstreamError(
                f"{provider}: identity of country {other.group(1)} refused "
                "(only Latvian personal codes are linked)"
            )
        raise UpstreamError(f"{provider}: serial_number is not of the form PNOLV-DDMMYY-NNNNN")
    try:
        code, problem = parse_personal_code(match.group(1) + match.group(2))
    except InvalidPersonalCode as exc:
        raise UpstreamError(
            f"{provider}: serial_number refused: {in_english(exc.message)}"
        ) from None
    if problem is not None:
        log.warning(
            "%s: the personal code asserted by eParaksts fails the checksum (%s); kept as verified",
            provider,
            in_english(problem),
        )
    return code


def _name(provider: str, me: Mapping[str, Any], claim: str) -> str:
    value = me.get(claim)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME_CHARS:
        raise UpstreamError(f"{provider}: users/me carries no usable {claim}")
    return value.strip()


def _basic_auth(client_id: str, client_secret: str) -> dict[str, str]:
    """client_secret_basic as RFC 6749 §2.3.1 spells it: both parts form-urlencoded
    before the Base64 (the same as Authlib's client does)."""
    pair = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}"
    return {"Authorization": "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")}


def _call(
    provider: str, what: str, method: str, url: str, timeout: float, **kwargs: Any
) -> tuple[int, bytes]:
    """One outgoing request, bounded in time and size: `timeout` for connecting and for
    each read, and the whole answer within twice `timeout` (a server that trickles bytes
    would otherwise hold the worker: each read returns what has arrived, so the deadline
    is checked between them). Any failure is an UpstreamError."""
    deadline = time.monotonic() + 2 * timeout
    try:
        with requests.request(
            method, url, timeout=timeout, stream=True, allow_redirects=False, **kwargs
        ) as response:
            body = bytearray()
            while chunk := response.raw.read1(8192, decode_content=True):
                body += chunk
                if len(body) > MAX_RESPONSE_BYTES:
                    raise UpstreamError(f"{provider}: {what} answer is too large")
                if time.monotonic() > deadline:
                    raise UpstreamError(f"{provider}: {what} answer is too slow")
            return response.status_code, bytes(body)
    except (requests.Timeout, urllib3.exceptions.TimeoutError) as exc:
        raise UpstreamError(f"{provider}: {what} timed out ({type(exc).__name__})") from None
    except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
        raise UpstreamError(
            f"{provider}: {what} unreachable or broken answer ({type(exc).__name__})"
        ) from None


def _json_object(provider: str, what: str, body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:  # also UnicodeDecodeError
        raise UpstreamError(f"{provider}: {what} answer is not JSON") from None
    if not isinstance(value, dict):
        raise UpstreamError(f"{provider}: {what} answer is not a JSON object")
    return value


def _error_code(body: bytes) -> str:
    """The RFC 6749 `error` of an error answer, for the log (short, no description)."""
    try:
        value = json.loads(body)
    except ValueError:
        return "(not JSON)"
    error = value.get("error") if isinstance(value, dict) else None
    return repr(error[:40]) if isinstance(error, str) else "(no error code)"


def _validated(config: ConnectorConfig) -> EparakstsOptions:
    if config.method != "esignature":
        raise EparakstsConfigError(
            f"eParaksts is an eSignature: method must be 'esignature' (got {config.method!r})"
        )
    if not config.client_id:
        raise EparakstsConfigError("client_id is missing (the one LVRTC registered)")
    if not config.client_secret:
        raise EparakstsConfigError(
            "client_secret is missing: eParaksts authenticates the client by HTTP Basic"
        )
    _check_base_url(config.base_url)
    return EparakstsOptions.from_mapping(config.options)


def build(config: ConnectorConfig, timeout: float = 10) -> EparakstsProvider:
    """The connector for `config`; EparakstsConfigError (a ValueError) says what is wrong."""
    return EparakstsProvider(config, _validated(config), timeout=timeout)


def check(config: ConnectorConfig, timeout: float = 10) -> list[str]:
    """The problems `check_report` finds (an empty list when there are none)."""
    return check_report(config, timeout).problems


# The same words as providers/oidc.py, so an admin reads one message for one mistake.
CLIENT_REFUSED = "client authentication refused: check the client id and secret"


def check_report(
    config: ConnectorConfig, timeout: float = 10, redirect_uri: str | None = None
) -> CheckReport:
    """What is wrong with `config`, as sentences for the admin; no problems when all is well.

    Besides the configuration itself, two harmless probes:
    - the token endpoint gets our client credentials and a code that cannot exist. A server
      that knows the client answers 400 (`invalid_grant` or `invalid_request`); 401 or
      `invalid_client` means the client id or secret is refused; 5xx, no answer, or
      anything but a 4xx means the endpoint is not the eParaksts token endpoint or is down.
    - users/me without a token must answer 401 (or 403): the resource server is there.
    eParaksts publishes no discovery document, so there are no claim lists to compare: the
    claims it sends (`serial_number`, `given_name`, `family_name`) are fixed by its docs.
    """
    report = CheckReport()
    try:
        provider = build(config, timeout=timeout)
    except EparakstsConfigError as exc:
        report.problems.append(str(exc))
        return report
    problems = report.problems
    try:
        status, body = _call(
            config.name,
            "token",
            "POST",
            provider.token_url,
            timeout,
            data={
                "grant_type": "authorization_code",
                "code": "idp-check-" + secrets.token_urlsafe(8),
                "redirect_uri": (redirect_uri or provider.base_url + "/idp-check"),
            },
            headers=_basic_auth(provider.client_id, provider._client_secret),
        )
    except UpstreamError as exc:
        problems.append(f"token endpoint {provider.token_url}: {exc}")
    else:
        error = _error_code(body)
        if status == 401 or "invalid_client" in error:
            problems.append(
                f"{CLIENT_REFUSED} (token endpoint {provider.token_url} answered {status} {error})"
            )
        elif not 400 <= status < 500:
            problems.append(
                f"token endpoint {provider.token_url} answered {status} to a "
                "made-up code (expected 400 invalid_grant)"
            )
    try:
        status, _body = _call(config.name, "users/me", "GET", provider.users_me_url, timeout)
    except UpstreamError as exc:
        problems.append(f"users/me {provider.users_me_url}: {exc}")
    else:
        if status not in (401, 403):
            problems.append(
                f"users/me {provider.users_me_url} answered {status} without a token (expected 401)"
            )
    return report
