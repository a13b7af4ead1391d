"""Fast paths in front of Flask for the busiest, simplest requests.

1. Replayed answers for the two public documents that every relying app polls (FastPath).
2. The happy paths of client_credentials and refresh_token requests (TokenFastPath) and of
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
from collections import namedtuple
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl

from authlib.oauth2.rfc6749 import InvalidScopeError
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from flask import Flask
from sqlalchemy import Engine, Select
from sqlalchemy.orm import Session

from idp.clients import OAuthClient, cached_client, find_client
from idp.db import READ_ONLY, utcnow
from idp.keys import KeyRing
from idp.oidc import tokens
from idp.oidc.claims import userinfo_claims
from idp.oidc.server import issue_client_credentials
from idp.oidc.tokens import verify_access_token
from idp.security import new_token, security_headers

DISCOVERY_PATHS = ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server")
JWKS_PATH = "/jwks.json"
# Answers with these headers depend on the request (or change it): never replayed.
_NOT_REPLAYABLE = frozenset({"set-cookie", "vary"})

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _Recorded:
    __slots__ = ("body", "headers", "source", "status")

    def __init__(
        self, source: bytes | None, status: str, headers: list[tuple[str, str]], body: bytes
    ) -> None:
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

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        is_jwks = self._paths.get(path)
        # Only the plain request is replayed; anything with a query string gets exactly
        # what Flask answers (e.g. its NUL guard).
        if is_jwks is None or environ.get("REQUEST_METHOD") != "GET" or environ.get("QUERY_STRING"):
            return self.app(environ, start_response)
        # The JWKS bytes object changes exactly when the key ring reloads a new document.
        source = self.keyring.jwks_json() if is_jwks else None
        key = (path, environ.get("wsgi.url_scheme", "http"))
        recorded = self._recorded.get(key)
        if recorded is not None and recorded.source is source:
            start_response(recorded.status, list(recorded.headers))
            return [recorded.body]
        return self._record(environ, start_response, key, source)

    def _record(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        key: tuple[str, str],
        source: bytes | None,
    ) -> Iterable[bytes]:
        seen: list[tuple[str, list[tuple[str, str]]]] = []

        def recording_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], Any]:
            seen.append((status, list(headers)))
            write: Callable[[bytes], Any] = (
                start_response(status, headers, exc_info)
                if exc_info
                else start_response(status, headers)
            )
            return write

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


class _DriverStatement:
    """A prebuilt Core statement of idp.oidc.tokens compiled once for one dialect, with
    the bind and result processors of its column types (UTC datetimes, booleans, JSON),
    as SQLAlchemy applies them."""

    __slots__ = ("binds", "names", "processors", "returns_rows", "row", "sql")

    def __init__(self, statement: Any, dialect: Any) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        # Positional parameter styles (SQLite's "?") need the names in order; None for
        # named styles (psycopg's "%(name)s").
        self.names = compiled.positiontup
        self.binds = {
            name: processor
            for name, bind in compiled.binds.items()
            if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect))
        }
        columns = list(
            statement.selected_columns
            if isinstance(statement, Select)
            else statement.exported_columns
        )
        self.returns_rows = bool(columns)  # a SELECT, or DML with RETURNING
        self.row: Any = namedtuple("Row", [c.key for c in columns], rename=True)  # type: ignore[misc]
        self.processors = [
            c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns
        ]

    def parameters(self, params: dict[str, Any]) -> Any:
        if self.binds:
            params = {k: (self.binds[k](v) if k in self.binds else v) for k, v in params.items()}
        return params if self.names is None else [params[name] for name in self.names]

    def make_row(self, raw: Any) -> Any:
        return self.row._make(
            value if proc is None or value is None else proc(value)
            for proc, value in zip(self.processors, raw, strict=True)
        )


class _DriverResult:
    __slots__ = ("_first", "rowcount")

    def __init__(self, first: Any, rowcount: int) -> None:
        self._first = first
        self.rowcount = rowcount

    def first(self) -> Any:
        return self._first


class _DriverRunner:
    """Runs idp.oidc.tokens' statements straight on a pooled DBAPI connection: the same
    statements and service functions as the Flask paths, without SQLAlchemy's per-call
    execution machinery (it cost more than the queries themselves) and, on PostgreSQL, in
    autocommit (one round trip per statement; psycopg prepares each one on its connection).
    It uses SQLAlchemy's type processors (`dialect_impl(...).bind_processor` and
    `.result_processor`, computed once per statement), so the values are exactly those
    SQLAlchemy would bind and return; tests/integration/test_fastpath.py checks the
    answers against Flask's."""

    def __init__(self, fast: _DriverStatements, cursor: Any) -> None:
        self.dialect = fast.dialect
        self._fast = fast
        self._cursor = cursor

    def execute(self, statement: Any, params: dict[str, Any]) -> _DriverResult:
        compiled = self._fast.compiled(statement)
        cursor = self._cursor
        if self._fast.prepare:
            cursor.execute(compiled.sql, compiled.parameters(params), prepare=True)
        else:
            cursor.execute(compiled.sql, compiled.parameters(params))
        raw = cursor.fetchone() if compiled.returns_rows else None
        return _DriverResult(None if raw is None else compiled.make_row(raw), cursor.rowcount)

    def scalar(self, statement: Any, params: dict[str, Any]) -> Any:
        row = self.execute(statement, params).first()
        return None if row is None else row[0]

    @contextmanager
    def write_transaction(self) -> Iterator[None]:
        """A transaction for a write of several statements. On PostgreSQL the writes of
        the fast paths are single statements, atomic in autocommit: nothing to do."""
        if self.dialect.name != "sqlite":
            yield
            return
        self._cursor.execute("BEGIN IMMEDIATE")  # as idp.db does for every writer
        try:
            yield
        except BaseException:
            self._cursor.execute("ROLLBACK")
            raise
        self._cursor.execute("COMMIT")


class _DriverStatements:
    """Per engine: the compiled statements, and pooled DBAPI connections to run them on."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        self.postgresql = engine.dialect.name == "postgresql"
        self.prepare = self.postgresql and engine.dialect.driver == "psycopg"
        self._compiled: dict[int, _DriverStatement] = {}

    def compiled(self, statement: Any) -> _DriverStatement:
        # Keyed by identity: the statements are module-level constants.
        found = self._compiled.get(id(statement))
        if found is None:
            found = self._compiled[id(statement)] = _DriverStatement(statement, self.dialect)
        return found

    @contextmanager
    def connect(self) -> Iterator[_DriverRunner]:
        """A pooled connection in autocommit: SQLite's driver connections are (idp.db hands
        transactions to SQLAlchemy); a psycopg one is switched for the while."""
        pooled = self.engine.raw_connection()
        try:
            driver = pooled.driver_connection
            if self.postgresql:
                driver.autocommit = True  # type: ignore[union-attr]
            try:
                yield _DriverRunner(self, pooled.cursor())
            finally:
                if self.postgresql and not driver.closed:  # type: ignore[union-attr]
                    driver.autocommit = False  # type: ignore[union-attr]
        except self.dialect.loaded_dbapi.Error:
            # Unlike SQLAlchemy, this layer cannot tell a lost connection from a failed
            # statement: never give a connection that saw an error back to the pool.
            pooled.invalidate()
            raise
        finally:
            pooled.close()


class _HappyPath:
    """Answers one kind of request before Flask when `answer` returns a JSON body, and
    hands everything else to Flask unchanged."""

    # What the endpoint's own view sets; the security headers come from the one policy.
    HEADERS: list[tuple[str, str]] = []

    def __init__(self, app: WSGIApp, flask_app: Flask) -> None:
        self.app = app
        self.engine = flask_app.extensions["idp.engine"]
        self.keyring = flask_app.extensions["idp.keyring"]
        self.settings = flask_app.config["IDP_SETTINGS"]
        self.driver = _DriverStatements(self.engine)

    def answer(self, environ: dict[str, Any]) -> dict[str, Any] | None:
        raise NotImplementedError

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        body = self.answer(environ)
        if body is None:
            return self.app(environ, start_response)
        payload = json.dumps(body).encode()
        secure = environ.get("wsgi.url_scheme") == "https"
        start_response(
            "200 OK",
            [
                *self.HEADERS,
                *security_headers(secure=secure, page=False),
                ("Content-Length", str(len(payload))),
            ],
        )
        return [payload]


class TokenFastPath(_HappyPath):
    """POST /token with HTTP Basic: the happy paths of client_credentials and
    refresh_token only.

    Service-to-service token requests and refresh-token rotations are the busiest token
    requests. This answers them with the same functions the Flask grants use (client
    lookup and secret check; for client_credentials the scope rule and minting in
    idp.oidc.server.issue_client_credentials; for refresh_token the token's rules in
    tokens.PresentedRefreshToken, the atomic tokens.rotate_refresh_token and the response
    of tokens.user_token_response) but without the request machinery around them.
    Whatever is not the plain happy path - another grant, another client authentication,
    an unknown client, a wrong secret, a refused scope, a scope on refresh, an unknown,
    used, expired or revoked refresh token, one of another client, an odd body - goes to
    Flask unchanged, which answers it (errors included, and the revocation of a family
    whose rotated token came back) as the RFCs say: there is one place for every rule
    and every error. Nothing is written before the request is known to be the happy path,
    so falling through to Flask never finds a half-done request.
    """

    MAX_BODY = 1024
    HEADERS = [
        ("Content-Type", "application/json"),
        ("Cache-Control", "no-store"),
        ("Pragma", "no-cache"),
    ]
    # The parameters each grant's happy path may carry (anything else goes to Flask).
    PARAMS = {
        "client_credentials": frozenset({"grant_type", "scope"}),
        "refresh_token": frozenset({"grant_type", "refresh_token"}),
    }

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
        body: bytes = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)
        return body

    def _answer(self, environ: dict[str, Any], body: bytes) -> dict[str, Any] | None:
        try:
            # errors="strict": a non-UTF-8 escape goes to Flask, which refuses it (400).
            params = parse_qsl(
                body.decode("ascii"), keep_blank_values=True, strict_parsing=True, errors="strict"
            )
        except (UnicodeDecodeError, ValueError):
            return None
        form = dict(params)
        grant_type = form.get("grant_type", "")
        allowed = self.PARAMS.get(grant_type)
        if (
            allowed is None
            or len(params) != len(form)
            or not set(form) <= allowed
            or any("\x00" in value for value in form.values())
        ):
            return None
        client = self._client(environ, grant_type)
        if client is None:
            return None
        if grant_type == "refresh_token":
            return self._refresh(client, form.get("refresh_token", ""))
        try:
            return issue_client_credentials(self.keyring, self.settings, client, form.get("scope"))
        except InvalidScopeError:
            return None

    def _client(self, environ: dict[str, Any], grant_type: str) -> OAuthClient | None:
        """The client, if it authenticated with HTTP Basic as it is registered to and may
        use this grant."""
        try:
            client_id, secret = extract_basic_authorization(
                {"Authorization": environ.get("HTTP_AUTHORIZATION", "")}
            )
        except ValueError:  # not UTF-8 inside the base64
            return None
        if not client_id or not secret:
            return None
        client = cached_client(self.engine, client_id)
        if client is None:
            with Session(self.engine) as session:
                session.connection(execution_options=READ_ONLY)
                client = find_client(session, client_id)
        if (
            client is None
            or not client.check_endpoint_auth_method("client_secret_basic", "token")
            or not client.check_client_secret(secret)
            or not client.check_grant_type(grant_type)
        ):
            return None
        return client

    def _refresh(self, client: OAuthClient, presented_value: str) -> dict[str, Any] | None:
        """Rotation (the grant's create_token_response, without Authlib and Flask): one
        read, the tokens minted, then the atomic rotation - on PostgreSQL two round trips
        and no BEGIN/COMMIT (the rotation is one statement); nothing is written unless
        the read found the happy path."""
        now = utcnow()
        with self.driver.connect() as connection:
            presented = tokens.find_refresh_token(connection, presented_value)
            if presented is None or not presented.may_rotate(client, now):
                return None
            successor = new_token(32)
            body = tokens.user_token_response(
                self.keyring,
                self.settings,
                client=client,
                user=presented.user,
                family=presented.family,
                scope=presented.family.scope,
                nonce=None,
                refresh_token=successor,
                acting=presented.acting(now),
            )
            with connection.write_transaction():
                rotated = tokens.rotate_refresh_token(
                    connection, self.settings, presented, successor, now
                )
        # Not rotated: another request used the token in between. Flask finds it used and
        # revokes the family, as for any rotated token presented again.
        return body if rotated else None


class UserinfoFastPath(_HappyPath):
    """GET /userinfo with a valid Bearer token: the happy path only, like
    TokenFastPath (same verification and claims functions as the view; any
    error, query string or other method goes to Flask, which answers it)."""

    HEADERS = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]

    def answer(self, environ: dict[str, Any]) -> dict[str, Any] | None:
        if (
            environ.get("PATH_INFO") != "/userinfo"
            or environ.get("REQUEST_METHOD") != "GET"
            or environ.get("QUERY_STRING")
        ):
            return None
        return self._claims(environ.get("HTTP_AUTHORIZATION", ""))

    def _claims(self, authorization: str) -> dict[str, Any] | None:
        scheme, _sep, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip() or "\x00" in token:
            return None
        # The driver connection for one read: SQLAlchemy's connection and execution
        # machinery would cost more than the query, and nothing here is an ORM object.
        with self.driver.connect() as connection:
            active = verify_access_token(connection, self.keyring, self.settings, token.strip())
            if active is None or active.user is None:
                return None
            return userinfo_claims(active.user, str(active.claims.get("scope", "")), active.acting)


def install(app: Flask) -> None:
    """Put the fast paths in front of the app's Flask request handling."""
    wrapped = UserinfoFastPath(TokenFastPath(app.wsgi_app, app), app)
    app.wsgi_app = FastPath(wrapped, app.extensions["idp.keyring"])  # type: ignore[method-assign]
