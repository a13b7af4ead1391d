"""Fast paths in front of Flask for the busiest, simplest requests.

1. Replayed answers for the two public documents that every relying app polls (FastPath).
2. refresh_token and client_credentials token requests (TokenFastPath) and userinfo
   requests (UserinfoFastPath), answered by the very functions Flask calls for them
   (idp.oidc.endpoints: client authentication, rotation, errors and all). A fast path
   only decides *how* to answer - without Flask's request machinery, on a bare driver
   connection - never *what*; a request it does not take goes to Flask unchanged.

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
import logging
from collections import namedtuple
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any
from urllib.parse import parse_qsl

from flask import Flask
from sqlalchemy import Engine, Select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from werkzeug.http import HTTP_STATUS_CODES

from idp.clients import OAuthClient, cached_client, find_client
from idp.db import READ_ONLY, is_outage
from idp.errors import outage_answer
from idp.keys import KeyRing
from idp.oidc.endpoints import TOKEN_GRANTS, Answer, token_answer, userinfo
from idp.request_ids import note_client
from idp.security import security_headers

DISCOVERY_PATHS = ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server")
JWKS_PATH = "/jwks.json"
# Every path a fast path may answer (their route in the access log and the metrics).
ROUTES = frozenset({*DISCOVERY_PATHS, JWKS_PATH, "/token", "/userinfo"})
# Answers with these headers depend on the request (or change it): never replayed.
_NOT_REPLAYABLE = frozenset({"set-cookie", "vary"})

log = logging.getLogger(__name__)
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
    SQLAlchemy would bind and return; tests/integration/test_one_road.py checks the
    answers against Flask's. The connection is taken at the first statement: a request
    that needs none (client_credentials, most errors) costs the pool nothing."""

    __slots__ = ("_cursor", "_fast", "_pooled", "dialect")

    def __init__(self, fast: _DriverStatements) -> None:
        self.dialect = fast.dialect
        self._fast = fast
        self._pooled: Any = None
        self._cursor: Any = None

    def _connected(self) -> Any:
        if self._cursor is None:
            self._pooled = self._fast.engine.raw_connection()
            if self._fast.postgresql:
                self._pooled.driver_connection.autocommit = True
            self._cursor = self._pooled.cursor()
        return self._cursor

    def execute(self, statement: Any, params: dict[str, Any]) -> _DriverResult:
        compiled = self._fast.compiled(statement)
        cursor = self._connected()
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
        """Statements that must commit together (idp.db.atomic); every other statement
        commits by itself. SQLite begins IMMEDIATE, as idp.db does for every writer."""
        cursor = self._connected()
        cursor.execute("BEGIN IMMEDIATE" if self.dialect.name == "sqlite" else "BEGIN")
        try:
            yield
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        cursor.execute("COMMIT")

    def __enter__(self) -> _DriverRunner:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: object, _tb: object) -> None:
        # Unlike SQLAlchemy, this layer cannot tell a lost connection from a failed
        # statement: never give a connection that saw an error back to the pool.
        self.release(
            broken=kind is not None and issubclass(kind, self._fast.dialect.loaded_dbapi.Error)
        )

    def release(self, broken: bool) -> None:
        pooled = self._pooled
        if pooled is None:
            return
        self._pooled = self._cursor = None
        try:
            driver = pooled.driver_connection
            lost = self._fast.postgresql and (driver.closed or driver.broken)
            if lost:
                # The server went away (or stopped answering): the pool's other
                # connections are as dead, so they go too, as SQLAlchemy's own disconnect
                # handling does (else each would fail one more request after a recovery).
                self._fast.engine.pool._invalidate(pooled)
            if broken or lost:
                pooled.invalidate()
            elif self._fast.postgresql:
                driver.autocommit = False
        finally:
            pooled.close()


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

    def connect(self) -> _DriverRunner:
        """A runner on a pooled connection in autocommit (`with driver.connect() as db`):
        SQLite's driver connections are (idp.db hands transactions to SQLAlchemy); a
        psycopg one is switched for the while."""
        return _DriverRunner(self)


@cache
def _status_line(status: int) -> str:
    return f"{status} {HTTP_STATUS_CODES[status].upper()}"  # as werkzeug writes it


class _EndpointPath:
    """Answers one endpoint's requests before Flask with the Answer of the function Flask
    calls for them too, and hands every request it does not take to Flask unchanged."""

    def __init__(self, app: WSGIApp, flask_app: Flask) -> None:
        self.app = app
        self.engine = flask_app.extensions["idp.engine"]
        self.keyring = flask_app.extensions["idp.keyring"]
        self.settings = flask_app.config["IDP_SETTINGS"]
        self.driver = _DriverStatements(self.engine)
        # The driver's module: the bare connections raise its errors, not SQLAlchemy's.
        self.dbapi = self.engine.dialect.loaded_dbapi
        # The one policy, by scheme (an Answer's own headers are never among them).
        self._policy = {
            secure: security_headers(secure=secure, page=False) for secure in (False, True)
        }

    def answer(self, environ: dict[str, Any]) -> Answer | None:
        raise NotImplementedError

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        try:
            answer = self.answer(environ)
        except (SQLAlchemyError, self.dbapi.Error) as error:
            if not is_outage(error, self.dbapi):
                raise
            # As idp.errors answers Flask's requests: a 503 the app may retry, never a
            # token whose rotation was not committed (the answer is made after COMMIT).
            log.warning(
                "database unavailable on %s: %s",
                environ.get("PATH_INFO"),
                getattr(error, "orig", None) or error,
            )
            answer = outage_answer()
        if answer is None:
            return self.app(environ, start_response)
        payload = answer.payload()
        # In the order of a werkzeug Response and Flask's after-request hook.
        headers = [
            *answer.headers,
            ("Content-Length", str(len(payload))),
            *self._policy[environ.get("wsgi.url_scheme") == "https"],
        ]
        start_response(_status_line(answer.status), headers)
        return [payload]


class TokenFastPath(_EndpointPath):
    """POST /token of the refresh_token and client_credentials grants, the busiest token
    requests (service-to-service tokens, rotations), answered by
    idp.oidc.endpoints.token_answer - successes and errors alike, a family revoked on
    reuse included.

    Taken: a small urlencoded body, each parameter once, only the parameters these
    grants read (so client_secret_basic, client_secret_post and none), no query string.
    Everything else goes to Flask, whose guards and Authlib's grants see it as they
    would anyway: another grant, a missing or repeated parameter, a client assertion
    (private_key_jwt spends its jti in the request's session), text that is not UTF-8
    or holds NUL.
    """

    MAX_BODY = 1024
    PARAMS = frozenset({"grant_type", "refresh_token", "scope", "client_id", "client_secret"})

    def answer(self, environ: dict[str, Any]) -> Answer | None:
        if (
            environ.get("PATH_INFO") != "/token"
            or environ.get("REQUEST_METHOD") != "POST"
            or environ.get("QUERY_STRING")
        ):
            return None
        form = self._form(environ)
        if form is None or form.get("grant_type") not in TOKEN_GRANTS:
            return None
        if not self.keyring.refresh():
            return outage_answer()  # not a second wait for the database (refresh())

        def query_client(client_id: str) -> OAuthClient | None:
            client = self._query_client(client_id)
            note_client(environ, client.client_id if client else None)  # the access line
            return client

        with self.driver.connect() as db:
            return token_answer(
                db,
                self.keyring,
                self.settings,
                query_client,
                environ.get("HTTP_AUTHORIZATION", ""),
                form,
            )

    def _form(self, environ: dict[str, Any]) -> dict[str, str] | None:
        """The form if the body is small, urlencoded ASCII (escapes decoding to UTF-8)
        without NUL, and names only PARAMS, each once; the stream is put back for Flask."""
        mimetype = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
        if mimetype != "application/x-www-form-urlencoded" or environ.get("HTTP_TRANSFER_ENCODING"):
            return None
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            return None
        if not 0 < length <= self.MAX_BODY:
            return None
        body: bytes = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)
        try:
            params = parse_qsl(
                body.decode("ascii"), keep_blank_values=True, strict_parsing=True, errors="strict"
            )
        except (UnicodeDecodeError, ValueError):
            return None
        form = dict(params)
        if (
            len(form) != len(params)
            or not form.keys() <= self.PARAMS
            or any("\x00" in value for value in form.values())
        ):
            return None
        return form

    def _query_client(self, client_id: str) -> OAuthClient | None:
        """find_client without a request's session: the cache, else a read of its own."""
        client = cached_client(self.engine, client_id)
        if client is not None:
            return client
        with Session(self.engine) as session:
            session.connection(execution_options=READ_ONLY)
            return find_client(session, client_id)


class UserinfoFastPath(_EndpointPath):
    """GET /userinfo, answered by idp.oidc.endpoints.userinfo (claims or RFC 6750's
    error). A query string or a body goes to Flask: userinfo reads neither, but Flask's
    guards (UTF-8, NUL) do, and may refuse the request for them."""

    def answer(self, environ: dict[str, Any]) -> Answer | None:
        if (
            environ.get("PATH_INFO") != "/userinfo"
            or environ.get("REQUEST_METHOD") != "GET"
            or environ.get("QUERY_STRING")
            or (environ.get("CONTENT_LENGTH") or "0") != "0"
            or environ.get("HTTP_TRANSFER_ENCODING")
        ):
            return None
        if not self.keyring.refresh():
            return outage_answer()
        with self.driver.connect() as db:
            return userinfo(db, self.keyring, self.settings, environ.get("HTTP_AUTHORIZATION", ""))


def install(app: Flask) -> None:
    """Put the fast paths in front of the app's Flask request handling."""
    wrapped = UserinfoFastPath(TokenFastPath(app.wsgi_app, app), app)
    app.wsgi_app = FastPath(wrapped, app.extensions["idp.keyring"])  # type: ignore[method-assign]
