"""Fast paths in front of Flask for the busiest, simplest requests.

1. Replayed answers for the two public documents that every relying app polls (FastPath).
2. The happy path of client_credentials token requests (ClientCredentialsFastPath) and of
   userinfo requests (UserinfoFastPath).

`GET /.well-known/openid-configuration`, `GET /.well-known/oauth-authorization-server` and
`GET /jwks.json` are the same bytes for every caller. A full Flask request (context,
session, CSRF and locale hooks) costs far more than the answer itself, so this WSGI
middleware, in front of Flask, replays them.

It never makes an answer up: the first GET of each path (per URL scheme, since https adds
Strict-Transport-Security) goes through Flask, and the status, headers and body that the
views and the after-request hooks produced are recorded and replayed from then on. The
JWKS is recorded again whenever the key ring's document changes (after a rotation, within
keys_refresh_interval, as for the Flask view). Anything else - HEAD, other methods, other
paths, an answer that is not 200, sets a cookie or varies by request - goes to Flask.

Wiring: `install(app)` (create_app) wraps `app.wsgi_app`, so `app` stays the Flask object
and the test client goes through the fast paths too.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from authlib.oauth2.rfc6749 import InvalidScopeError
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from flask import Flask
from sqlalchemy.orm import Session

from idp.db import READ_ONLY, single_read_options
from idp.keys import KeyRing
from idp.oidc.claims import userinfo_claims
from idp.oidc.clients import cached_client, find_client
from idp.oidc.server import issue_client_credentials
from idp.oidc.tokens import verify_access_token

DISCOVERY_PATHS = ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server")
JWKS_PATH = "/jwks.json"
# Answers with these headers depend on the request (or change it): never replayed.
_NOT_REPLAYABLE = frozenset({"set-cookie", "vary"})

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _Recorded:
    __slots__ = ("body", "headers", "source", "status")

    def __init__(self, source: bytes | None, status: str, headers: list[tuple[str, str]],
                 body: bytes) -> None:
        self.source = source
        self.status = status
        self.headers = headers
        self.body = body


class FastPath:
    def __init__(self, app: WSGIApp, keyring: KeyRing) -> None:
        self.app = app
        self.keyring = keyring
        self._paths = {path: False for path in DISCOVERY_PATHS}
        self._paths[JWKS_PATH] = True
        self._recorded: dict[tuple[str, str], _Recorded] = {}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        is_jwks = self._paths.get(path)
        # Only the plain request is replayed; anything with a query string gets exactly
        # what Flask answers (e.g. its NUL guard).
        if (is_jwks is None or environ.get("REQUEST_METHOD") != "GET"
                or environ.get("QUERY_STRING")):
            return self.app(environ, start_response)
        # The JWKS bytes object changes exactly when the key ring reloads a new document.
        source = self.keyring.jwks_json() if is_jwks else None
        key = (path, environ.get("wsgi.url_scheme", "http"))
        recorded = self._recorded.get(key)
        if recorded is not None and recorded.source is source:
            start_response(recorded.status, list(recorded.headers))
            return [recorded.body]
        return self._record(environ, start_response, key, source)

    def _record(self, environ: dict[str, Any], start_response: Callable[..., Any],
                key: tuple[str, str], source: bytes | None) -> Iterable[bytes]:
        seen: list[tuple[str, list[tuple[str, str]]]] = []

        def recording_start_response(status: str, headers: list[tuple[str, str]],
                                     exc_info: Any = None) -> Callable[[bytes], Any]:
            seen.append((status, list(headers)))
            return start_response(status, headers, exc_info) if exc_info else \
                start_response(status, headers)

        result = self.app(environ, recording_start_response)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if seen:
            status, headers = seen[-1]
            replayable = (
                status.startswith("200 ")
                and not any(name.lower() in _NOT_REPLAYABLE for name, _ in headers)
                and (source is None or body == source)
            )
            if replayable:
                self._recorded[key] = _Recorded(source, status, headers, body)
        return [body]


class _HappyPath:
    """Answers one kind of request before Flask when `answer` returns a JSON body, and
    hands everything else to Flask unchanged."""

    HEADERS: list[tuple[str, str]] = []

    def __init__(self, app: WSGIApp, flask_app: Flask) -> None:
        self.app = app
        self.engine = flask_app.extensions["idp.engine"]
        self.keyring = flask_app.extensions["idp.keyring"]
        self.settings = flask_app.config["IDP_SETTINGS"]

    def answer(self, environ: dict[str, Any]) -> dict[str, Any] | None:
        raise NotImplementedError

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        body = self.answer(environ)
        if body is None:
            return self.app(environ, start_response)
        payload = json.dumps(body).encode()
        start_response("200 OK", [*self.HEADERS, ("Content-Length", str(len(payload)))])
        return [payload]


class ClientCredentialsFastPath(_HappyPath):
    """POST /token, grant_type=client_credentials with HTTP Basic: the happy path only.

    Service-to-service token requests are the busiest writes-nothing path. This answers
    them with the same functions the Flask view uses (client lookup, secret check, the
    grant's scope rule and token minting in idp.oidc.server.issue_client_credentials) but
    without the request machinery around them. Whatever is not the plain happy path -
    another grant, another client authentication, an unknown client, a wrong secret, a
    refused scope, an odd body - goes to Flask unchanged, which answers it (errors
    included) as the RFCs say: there is one place for every rule and every error.
    """

    MAX_BODY = 1024
    HEADERS = [("Content-Type", "application/json"), ("Cache-Control", "no-store"),
               ("Pragma", "no-cache"), ("X-Content-Type-Options", "nosniff")]

    def answer(self, environ: dict[str, Any]) -> dict[str, Any] | None:
        if environ.get("PATH_INFO") != "/token" or environ.get("REQUEST_METHOD") != "POST":
            return None
        body = self._read_body(environ)
        return self._answer(environ, body) if body is not None else None

    def _read_body(self, environ: dict[str, Any]) -> bytes | None:
        """The form body if it is small and urlencoded; the stream is put back for Flask."""
        if not environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
            return None
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            return None
        if not 0 < length <= self.MAX_BODY:
            return None
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)
        return body

    def _answer(self, environ: dict[str, Any], body: bytes) -> dict[str, Any] | None:
        try:
            params = parse_qsl(body.decode("ascii"), keep_blank_values=True,
                               strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            return None
        names = [name for name, _ in params]
        form = dict(params)
        if (len(names) != len(form) or not set(form) <= {"grant_type", "scope"}
                or form.get("grant_type") != "client_credentials"
                or "\x00" in body.decode("ascii", "replace")):
            return None
        try:
            client_id, secret = extract_basic_authorization(
                {"Authorization": environ.get("HTTP_AUTHORIZATION", "")})
        except ValueError:  # not UTF-8 inside the base64
            return None
        if not client_id or not secret:
            return None
        client = cached_client(self.engine, client_id)
        if client is None:
            with Session(self.engine) as session:
                session.connection(execution_options=READ_ONLY)
                client = find_client(session, client_id)
        if (client is None or not client.check_endpoint_auth_method("client_secret_basic", "token")
                or not client.check_client_secret(secret)
                or not client.check_grant_type("client_credentials")):
            return None
        try:
            return issue_client_credentials(self.keyring, self.settings, client,
                                            form.get("scope"))
        except InvalidScopeError:
            return None


class UserinfoFastPath(_HappyPath):
    """GET /userinfo with a valid Bearer token: the happy path only, like
    ClientCredentialsFastPath (same verification and claims functions as the view; any
    error, query string or other method goes to Flask, which answers it)."""

    HEADERS = [("Content-Type", "application/json"), ("Cache-Control", "no-store"),
               ("X-Content-Type-Options", "nosniff")]

    def answer(self, environ: dict[str, Any]) -> dict[str, Any] | None:
        if (environ.get("PATH_INFO") != "/userinfo" or environ.get("REQUEST_METHOD") != "GET"
                or environ.get("QUERY_STRING")):
            return None
        return self._claims(environ.get("HTTP_AUTHORIZATION", ""))

    def _claims(self, authorization: str) -> dict[str, Any] | None:
        scheme, _sep, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip() or "\x00" in token:
            return None
        # A plain connection for one read: the ORM session's bookkeeping would cost more
        # than the query, and nothing here is an ORM object.
        options = single_read_options(self.engine)
        with self.engine.connect().execution_options(**options) as connection:
            active = verify_access_token(connection, self.keyring, self.settings,
                                         token.strip())
            if active is None or active.user is None:
                return None
            return userinfo_claims(active.user, str(active.claims.get("scope", "")))


def install(app: Flask) -> None:
    """Put the fast paths in front of the app's Flask request handling."""
    wrapped = UserinfoFastPath(ClientCredentialsFastPath(app.wsgi_app, app), app)
    app.wsgi_app = FastPath(wrapped, app.extensions["idp.keyring"])  # type: ignore[method-assign]
