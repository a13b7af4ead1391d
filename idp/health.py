"""Health probes for load balancers and orchestrators, answered in front of Flask.

`GET /healthz` (liveness): the process answers. No database, no check: 200 as long as a
worker thread is free to run Python.

`GET /readyz` (readiness): 200 when this instance can serve - the database answers within
`readiness_timeout` seconds, its migrations are at this release's head, and the key ring
holds an active signing key of every algorithm - else 503. Both say what each check saw:
`{"status": "unavailable", "checks": {"database": "no answer within 2 s", ...}}`.

Cheap and side-effect free: a WSGI wrapper right around Flask (create_app installs it
before the fast paths of idp/fastpath.py, which pass these paths on) answers them without a
Flask request, so no session cookie, no CSRF or locale hooks, no database write. HEAD works
too; every answer is `Cache-Control: no-store`.

Bounded on a frozen database. A query to a PostgreSQL whose processes are paused waits on
its socket forever: no server-side timeout can fire, and psycopg has no client-side one.
So the database check runs in a daemon thread of its own and the probe waits for it at
most `readiness_timeout`. At most one such check runs per process at a time: probes that
arrive while it runs wait for that one (concurrent probes cost one query, and a frozen
database holds one thread and one pooled connection, not one per probe). On PostgreSQL the
check also runs under `SET LOCAL statement_timeout`, so a slow but living server cancels it
itself and the thread comes back.

Migrations: the database's `alembic_version` against the head of migrations/ (read once per
process). A database *ahead* of this release (a revision it does not know: a newer release
ran `idp db upgrade` during a rolling upgrade) counts as ready - the newer schema is meant to
serve the old code until every instance runs the new one (docs/operations.md).

A readiness probe also starts this process's mail sender when it is not running yet
(idp/mail.py starts it at the first request through Flask): a worker that sees only probes
still delivers the mail another instance left behind.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

from flask import Flask
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from idp import mail
from idp.db import READ_ONLY
from idp.keys import KeyRing
from idp.settings import PROJECT_ROOT

HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
OK = "ok"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

log = logging.getLogger(__name__)

_HEADERS = [
    ("Content-Type", "application/json"),
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
]
_HEALTHY = json.dumps({"status": OK}).encode()


# --- migrations -------------------------------------------------------------------------------


@cache
def _migrations() -> tuple[frozenset[str], frozenset[str]]:
    """(head revisions, every revision) of migrations/, read once per process."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(PROJECT_ROOT / "migrations"))
    return frozenset(script.get_heads()), frozenset(r.revision for r in script.walk_revisions())


def migration_state(versions: Iterable[str]) -> tuple[bool, str]:
    """(ready, what to say) for the revisions the database's alembic_version holds."""
    heads, known = _migrations()
    at = frozenset(versions)
    head_text = ", ".join(sorted(heads))
    if at == heads:
        return True, OK
    if not at:
        return False, f"not migrated, head is {head_text}"
    if not at <= known:
        # A newer release migrated the database during a rolling upgrade.
        return True, f"ahead: at {', '.join(sorted(at))}, this release's head is {head_text}"
    return False, f"at {', '.join(sorted(at))}, head is {head_text}"


# --- the database check, bounded ------------------------------------------------------------


class _Run:
    __slots__ = ("done", "result", "started")

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.done = threading.Event()
        # (database, (migrations ready, migrations text) or None when not read)
        self.result: tuple[str, tuple[bool, str] | None] = ("not checked", None)


# Whether alembic_version exists; a query that also proves the database answers.
_HAS_VERSION_TABLE = {
    "postgresql": "SELECT to_regclass('alembic_version') IS NOT NULL",
    "sqlite": "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='alembic_version'",
}


def _query(engine: Engine, timeout: float) -> tuple[str, tuple[bool, str] | None]:
    """Whether the database answers, then its migration revisions. Only reads (READ_ONLY:
    no SQLite write lock)."""
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(**READ_ONLY)
            dialect = conn.dialect.name
            if dialect == "postgresql":
                conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(timeout * 1000)}")
            if not conn.exec_driver_sql(_HAS_VERSION_TABLE[dialect]).scalar():
                return OK, migration_state(())
            versions = conn.exec_driver_sql("SELECT version_num FROM alembic_version")
            return OK, migration_state(str(v) for (v,) in versions)
    except SQLAlchemyError as exc:
        # The error's class only: a public endpoint shows no host names or driver details.
        orig = getattr(exc, "orig", None)
        return f"error: {type(orig or exc).__name__}", None


class DatabaseCheck:
    """The database check in a daemon thread, one at a time, waited for at most `timeout`."""

    def __init__(self, engine: Engine, timeout: float) -> None:
        self.engine = engine
        self.timeout = timeout
        self._lock = threading.Lock()
        self._run: _Run | None = None

    def __call__(self) -> tuple[str, tuple[bool, str] | None]:
        with self._lock:
            run = self._run
            if run is None or run.done.is_set():
                run = self._run = _Run()
                threading.Thread(
                    target=self._work, args=(run,), daemon=True, name="idp-readiness"
                ).start()
        if run.done.wait(self.timeout):
            return run.result
        waited = time.monotonic() - run.started
        return f"no answer within {waited:.0f} s", None

    def _work(self, run: _Run) -> None:
        try:
            run.result = _query(self.engine, self.timeout)
        finally:
            run.done.set()


# --- the probes -------------------------------------------------------------------------------


class Readiness:
    def __init__(
        self, check_database: Callable[[], tuple[str, tuple[bool, str] | None]], keyring: KeyRing
    ) -> None:
        self.check_database = check_database
        self.keyring = keyring
        self._last_ready: bool | None = None

    def __call__(self) -> tuple[bool, dict[str, str]]:
        database, migrations = self.check_database()
        missing = self.keyring.missing_signing_algs()
        if missing is None:
            keys = "not loaded yet"
        elif missing:
            keys = f"no active {', '.join(missing)} signing key"
        else:
            keys = OK
        ready = database == OK and migrations is not None and migrations[0] and keys == OK
        checks = {
            "database": database,
            "migrations": migrations[1] if migrations is not None else "not checked",
            "keys": keys,
        }
        if ready != self._last_ready:
            # Once per change, not per probe: balancers probe every few seconds.
            if ready:
                log.info("ready")
            else:
                log.warning("not ready: %s", checks)
            self._last_ready = ready
        return ready, checks


class HealthProbes:
    """WSGI middleware: /healthz and /readyz answered here, anything else passed on."""

    def __init__(
        self,
        app: WSGIApp,
        readiness: Callable[[], tuple[bool, dict[str, str]]],
        on_ready_probe: Callable[[], None],
    ) -> None:
        self.app = app
        self.readiness = readiness
        self.on_ready_probe = on_ready_probe

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO")
        if path != HEALTH_PATH and path != READY_PATH:
            return self.app(environ, start_response)
        method = environ.get("REQUEST_METHOD")
        if method not in ("GET", "HEAD"):
            body = json.dumps({"error": "method not allowed"}).encode()
            return _answer(
                start_response, "405 Method Not Allowed", body, method, [("Allow", "GET, HEAD")]
            )
        if path == HEALTH_PATH:
            return _answer(start_response, "200 OK", _HEALTHY, method)
        self.on_ready_probe()
        ready, checks = self.readiness()
        body = json.dumps({"status": OK if ready else "unavailable", "checks": checks}).encode()
        status = "200 OK" if ready else "503 Service Unavailable"
        return _answer(start_response, status, body, method)


def _answer(
    start_response: Callable[..., Any],
    status: str,
    body: bytes,
    method: str | None,
    extra: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    headers = [*_HEADERS, *(extra or ()), ("Content-Length", str(len(body)))]
    start_response(status, headers)
    return [] if method == "HEAD" else [body]


def install(app: Flask) -> None:
    """Wrap `app.wsgi_app` (create_app), as idp.fastpath.install does."""
    settings = app.config["IDP_SETTINGS"]
    readiness = Readiness(
        DatabaseCheck(app.extensions["idp.engine"], settings.readiness_timeout),
        app.extensions["idp.keyring"],
    )
    app.wsgi_app = HealthProbes(  # type: ignore[method-assign]  # Flask's middleware idiom
        app.wsgi_app, readiness, mail.get_sender(app).ensure_running
    )
