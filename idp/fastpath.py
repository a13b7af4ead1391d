"""Replayed answers for the two public documents that every relying app polls.

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

Wiring: `install(app)` (wsgi.py) wraps `app.wsgi_app`, so `app` stays the Flask object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

from idp.keys import KeyRing

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
        if is_jwks is None or environ.get("REQUEST_METHOD") != "GET":
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


def install(app: Flask) -> None:
    """Put the fast path in front of the app's Flask request handling."""
    app.wsgi_app = FastPath(app.wsgi_app, app.extensions["idp.keyring"])  # type: ignore[method-assign]
