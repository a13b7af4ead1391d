"""How a relying app (a resource server) validates the IdP's access tokens: the one place
where the example services do it.

A request is served only when its token

1. comes as `Authorization: Bearer <jwt>` (RFC 6750 §2.1);
2. is signed with ES256 or RS256 (never `none`, never HMAC) by a key of the IdP's JWKS:
   fetched from discovery's `jwks_uri` (or `jwks_url`), cached, refetched when a token
   names an unknown `kid` (key rotation) but at most once a minute, and at least hourly;
3. has the header `typ` `at+jwt` (RFC 9068 §4): an ID token is not an access token;
4. has `iss` equal to the issuer, `aud` naming this service (a string, or a list holding
   it), and `exp` in the future (30 s of clock skew allowed);
5. says for whom the user acts: `customer` {id, number, name} and `role`.

The view then authorizes from `scope` and serves only that customer's data. Failures are
RFC 6750 §3 answers: 401 `invalid_token`, 403 `insufficient_scope` (and 401 with a bare
challenge when no bearer token was sent). Usage:

    protect(app, issuer="https://login.example.lv", audience="urn:gas-portal:invoices",
            realm="invoices")

    @app.get("/invoices")
    @require_scope("invoices.read")
    def invoices():
        customer = current_token().customer
        ...
"""

from __future__ import annotations

import functools
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from flask import Flask, Response, current_app, g, jsonify, request
from joserfc import jwt
from joserfc.errors import (
    ClaimError,
    ExpiredTokenError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet

ALGORITHMS = ["ES256", "RS256"]
# RFC 9068 §4: "at+jwt", or the full media type (media types ignore case).
ACCESS_TOKEN_TYPES = {"at+jwt", "application/at+jwt"}
LEEWAY = 30  # seconds of clock skew accepted on exp, iat and nbf
REFETCH_INTERVAL = 60  # seconds: an unknown kid refetches the JWKS at most this often
KEYS_MAX_AGE = 3600  # seconds: the JWKS is refetched at least this often (removed keys)
HTTP_TIMEOUT = 5  # seconds, for discovery and JWKS
MAX_TOKEN_LENGTH = 8192

log = logging.getLogger(__name__)


class InvalidToken(Exception):
    """The token must not be accepted; the message is the `error_description`."""


class KeysUnavailable(Exception):
    """The IdP's keys could not be fetched: nothing can be validated (answered with 503)."""


@dataclass(frozen=True)
class Customer:
    id: int
    number: str
    name: str


@dataclass(frozen=True)
class AccessToken:
    subject: str  # `sub`: the user (opaque and stable)
    client_id: str | None  # the app the user used
    scopes: frozenset[str]
    customer: Customer  # the customer the user acts for: the only data they may reach
    role: str  # contractor | authorised_person | additional_user
    claims: dict[str, Any]


class IdpKeys:
    """The IdP's public signing keys, fetched over HTTP and cached (thread-safe)."""

    def __init__(self, issuer: str, jwks_url: str | None = None) -> None:
        self.issuer = issuer
        self.jwks_url = jwks_url  # None: discovery's jwks_uri
        self.refetch_interval: float = REFETCH_INTERVAL
        self.max_age: float = KEYS_MAX_AGE
        self._keys: KeySet | None = None
        self._kids: set[str | None] = set()
        self._fetched_at = -math.inf
        self._lock = threading.Lock()

    def for_token(self, token: Any) -> KeySet:
        """The key set to verify `token` with (joserfc passes the parsed token)."""
        kid = token.headers().get("kid")
        with self._lock:
            age = time.monotonic() - self._fetched_at
            if (
                self._keys is None
                or age >= self.max_age
                or (kid not in self._kids and age >= self.refetch_interval)
            ):
                try:
                    self._fetch()
                except KeysUnavailable:
                    if self._keys is None:
                        raise
                    # The IdP is down: the keys already known still verify.
                    log.warning("kept the cached JWKS", exc_info=True)
            assert self._keys is not None
            return self._keys

    def _fetch(self) -> None:
        self._fetched_at = time.monotonic()  # a failure counts too: the IdP is not hammered
        try:
            if self.jwks_url is None:
                discovery = _get_json(f"{self.issuer}/.well-known/openid-configuration")
                if discovery.get("issuer") != self.issuer:
                    raise ValueError("discovery names another issuer")
                self.jwks_url = str(discovery["jwks_uri"])
            keys = KeySet.import_key_set({"keys": _get_json(self.jwks_url)["keys"]})
        except (requests.RequestException, JoseError, ValueError, KeyError, TypeError) as exc:
            raise KeysUnavailable(f"cannot fetch the IdP's keys: {exc}") from exc
        self._keys, self._kids = keys, {key.kid for key in keys}


def _get_json(url: str) -> dict[str, Any]:
    response = requests.get(url, timeout=HTTP_TIMEOUT)
    response.raise_for_status()
    body = response.json()
    if not isinstance(body, dict):
        raise ValueError(f"{url} did not answer a JSON object")
    return body


def validate_access_token(token: str, keys: IdpKeys, *, issuer: str, audience: str) -> AccessToken:
    """The token's facts if it is a valid access token of `issuer` for `audience`.

    Raises InvalidToken (why, for error_description), or KeysUnavailable.
    """
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("The token is too long.")
    try:
        verified = jwt.decode(token, keys.for_token, algorithms=ALGORITHMS)
    except InvalidKeyIdError:
        raise InvalidToken("The token is not signed with a key of the IdP.") from None
    except (JoseError, ValueError, TypeError, KeyError):  # JoseError, or odd input's others
        raise InvalidToken("The token is malformed or its signature is invalid.") from None
    if str(verified.header.get("typ", "")).lower() not in ACCESS_TOKEN_TYPES:
        raise InvalidToken("The token is not an access token (typ must be at+jwt).")
    claims = verified.claims
    try:
        jwt.JWTClaimsRegistry(
            leeway=LEEWAY,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            sub={"essential": True},
            customer={"essential": True},
            role={"essential": True},
        ).validate(claims)
    except ExpiredTokenError:
        raise InvalidToken("The token has expired.") from None
    except MissingClaimError as exc:
        raise InvalidToken(f"The token lacks the claim {exc.claim}.") from None
    except ClaimError as exc:
        raise InvalidToken(f"The token's claim {exc.claim} is invalid.") from None
    customer, role, scope = claims["customer"], claims["role"], claims.get("scope", "")
    if not (
        isinstance(customer, dict)
        and type(customer.get("id")) is int  # not a bool
        and isinstance(customer.get("number"), str)
        and isinstance(customer.get("name"), str)
    ):
        raise InvalidToken("The token's claim customer is invalid.")
    if not isinstance(role, str):
        raise InvalidToken("The token's claim role is invalid.")
    if not isinstance(scope, str):
        raise InvalidToken("The token's claim scope is invalid.")
    client_id = claims.get("client_id")
    return AccessToken(
        subject=claims["sub"],
        client_id=client_id if isinstance(client_id, str) else None,
        scopes=frozenset(scope.split()),
        customer=Customer(customer["id"], customer["number"], customer["name"]),
        role=role,
        claims=claims,
    )


# --- Flask glue ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Protection:
    issuer: str
    audience: str
    realm: str
    keys: IdpKeys


def protect(
    app: Flask, *, issuer: str, audience: str, realm: str, jwks_url: str | None = None
) -> Protection:
    """Let `require_scope` views of `app` accept tokens of `issuer` for `audience`."""
    protection = Protection(issuer, audience, realm, IdpKeys(issuer, jwks_url))
    app.extensions["resource_server"] = protection
    return protection


View = TypeVar("View", bound=Callable[..., Any])


def require_scope(scope: str) -> Callable[[View], View]:
    """Serve the view only with a valid access token granted `scope`; the token is then
    `current_token()`."""

    def decorator(view: View) -> View:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            protection: Protection = current_app.extensions["resource_server"]
            scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer":
                # No bearer credentials at all: a bare challenge (RFC 6750 §3.1).
                return _error(
                    protection.realm, 401, "unauthorized", "A bearer token is needed.", bare=True
                )
            try:
                token = validate_access_token(
                    credentials.strip(),
                    protection.keys,
                    issuer=protection.issuer,
                    audience=protection.audience,
                )
            except InvalidToken as exc:
                return _error(protection.realm, 401, "invalid_token", str(exc))
            except KeysUnavailable as exc:
                current_app.logger.warning("%s", exc)
                return _error(
                    protection.realm,
                    503,
                    "temporarily_unavailable",
                    "The IdP's keys cannot be fetched now; try again later.",
                )
            if scope not in token.scopes:
                return _error(
                    protection.realm,
                    403,
                    "insufficient_scope",
                    f"This needs the scope {scope}.",
                    scope=scope,
                )
            g.access_token = token
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]  # functools.wraps keeps the view's signature

    return decorator


def current_token() -> AccessToken:
    """The validated token of this request (inside a `require_scope` view)."""
    token: AccessToken = g.access_token
    return token


def _error(
    realm: str,
    status: int,
    error: str,
    description: str,
    *,
    bare: bool = False,
    scope: str | None = None,
) -> Response:
    """A JSON error; 401 and 403 also carry the RFC 6750 challenge."""
    response = jsonify(error=error, error_description=description)
    response.status_code = status
    if status in (401, 403):
        params = {"realm": realm}
        if not bare:
            params.update(error=error, error_description=description)
        if scope:
            params["scope"] = scope
        response.headers["WWW-Authenticate"] = "Bearer " + ", ".join(
            f'{name}="{_quotable(value)}"' for name, value in params.items()
        )
    return response


def _quotable(text: str) -> str:
    """Only the characters RFC 6750 §3 allows in a quoted value (no `"` and no `\\`)."""
    return re.sub(r"[^\x20\x21\x23-\x5b\x5d-\x7e]", "", text)
