"""Engine, sessions and the declarative Base (SQLAlchemy 2 style), one engine per app.

Views get the request's session with `db_session()`; services receive a session argument.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import cache
from pathlib import Path
from typing import Any, cast

from flask import Flask, current_app, g, has_app_context
from sqlalchemy import (
    JSON,
    Connection,
    CursorResult,
    DateTime,
    Engine,
    MetaData,
    Result,
    create_engine,
    event,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime(), dict[str, Any]: JSON, list[str]: JSON}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# What a client is told to wait before trying again while the database is unreachable
# (Retry-After of the 503 answers, idp.errors and idp.fastpath).
RETRY_AFTER_SECONDS = 5
# The server cancels a statement this much before the client gives up on the exchange
# (after the statement timeout): a server that is alive answers the cancellation in time
# and the connection is kept; only one that does not answer at all is given up on.
_SERVER_LEAD_MS = 500


@dataclasses.dataclass(frozen=True)
class Timeouts:
    """How long (seconds) a request may wait for PostgreSQL: to connect, for one statement
    (lock waits included) and for a connection from the pool (config/default.toml)."""

    connect: int = 5
    statement: int = 5
    pool: int = 5


def make_engine(
    url: str, sqlite_busy_timeout: int = 30, timeouts: Timeouts | None = None
) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return _server_engine(url, timeouts or Timeouts())

    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, connect_args={"timeout": sqlite_busy_timeout, "check_same_thread": False}
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when a transaction begins (see _on_begin).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(sqlite_busy_timeout * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # BEGIN IMMEDIATE takes the write lock up front (waiting up to busy_timeout), so a
        # transaction never fails half-way when it upgrades from reading to writing:
        # two concurrent writers queue instead of surfacing "database is locked".
        # Connections marked read-only (READ_ONLY) use a plain BEGIN: in WAL mode readers
        # never wait for the writer.
        if conn.get_execution_options().get("idp_read_only"):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _server_engine(url: str, timeouts: Timeouts) -> Engine:
    """PostgreSQL with every wait bounded, so that a request answers within seconds when
    the server is gone or frozen: connect_timeout (psycopg enforces it on the client),
    statement_timeout (the server cancels a slow statement or lock wait, the connection
    survives) and pool_timeout (all connections busy). A frozen server (its processes
    stopped) enforces nothing, and its kernel still acknowledges every packet, so TCP
    keepalives and tcp_user_timeout never fire either: each exchange with the server is
    also bounded on the client (_BoundedConnection)."""
    parsed = make_url(url)
    connect_args: dict[str, Any] = {
        "connect_timeout": timeouts.connect,
        "options": f"-c statement_timeout={timeouts.statement * 1000 - _SERVER_LEAD_MS}",
    }
    engine = create_engine(
        url,
        pool_size=10,
        max_overflow=20,
        pool_timeout=timeouts.pool,
        # No ping per checkout (a round trip on every request): a connection that died
        # fails its first statement, and SQLAlchemy then drops the whole pool (a
        # disconnect invalidates every older connection), so one request sees it.
        pool_pre_ping=False,
        connect_args=connect_args,
    )
    if parsed.get_driver_name() == "psycopg":
        connection_class = _bounded_connection_class()
        bound = float(timeouts.statement)

        @event.listens_for(engine, "do_connect")
        def _bounded_connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
            conn = connection_class.connect(*cargs, **cparams)
            conn.answer_within = bound
            return conn

    return engine


@cache
def _bounded_connection_class() -> type[Any]:
    # psycopg is imported only for PostgreSQL (a SQLite deployment need not have it).
    import psycopg
    from psycopg.errors import _WaitTimeout  # what Connection.wait(timeout=...) raises

    class BoundedConnection(psycopg.Connection[Any]):
        """A psycopg connection whose every wait for the server (statement, fetch,
        commit, rollback) ends after `answer_within` seconds: the connection is then
        closed (its state is unknown) and OperationalError raised, which SQLAlchemy takes
        for a disconnect (the pool is renewed). psycopg has no such setting of its own."""

        answer_within: float | None = None

        def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
            try:
                return super().wait(
                    gen, interval, self.answer_within if timeout is None else timeout
                )
            except _WaitTimeout:
                self.close()
                raise psycopg.OperationalError(
                    f"the database did not answer within {self.answer_within} s"
                ) from None

    return BoundedConnection


def is_outage(error: BaseException, dbapi: Any = None) -> bool:
    """The database could not be reached or did not answer in time (gone, frozen, a
    timeout, the pool exhausted, SQLite's write lock not had), rather than a statement or
    schema that is wrong: worth a 503 and a retry, not a 500. `dbapi`: the driver module,
    for the fast paths, whose bare connections raise the driver's own errors."""
    if isinstance(error, (PoolTimeoutError, DatabaseUnavailable)):
        return True
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        if not isinstance(error, (OperationalError, InterfaceError)):
            return False
        error = error.orig if error.orig is not None else error
    elif dbapi is None or not isinstance(error, (dbapi.OperationalError, dbapi.InterfaceError)):
        return False
    # sqlite3 raises OperationalError for a missing table too: only its waits count.
    if type(error).__module__ == "sqlite3":
        return any(word in str(error) for word in _SQLITE_WAITS)
    return True


_SQLITE_WAITS = ("database is locked", "database table is locked", "unable to open database")


# Execution options for a connection that only reads (see make_engine, _on_begin).
READ_ONLY = {"idp_read_only": True}


def init_app(app: Flask) -> None:
    settings = app.config["IDP_SETTINGS"]
    timeouts = Timeouts(
        connect=settings.database_connect_timeout,
        statement=settings.database_statement_timeout,
        pool=settings.database_pool_timeout,
    )
    engine = make_engine(settings.resolved_database_url(), settings.sqlite_busy_timeout, timeouts)
    app.extensions["idp.engine"] = engine
    event.listen(engine, "handle_error", _note_outage)
    factory = sessionmaker(engine, expire_on_commit=False)
    event.listen(factory, "do_orm_execute", _refuse_after_outage)
    app.extensions["idp.sessionmaker"] = factory
    app.teardown_appcontext(_close_session)


def session_factory(app: Flask | None = None) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = (app or current_app).extensions["idp.sessionmaker"]
    return factory


def db_session() -> Session:
    """The session of the current request or CLI command, created on first use."""
    if "db_unavailable" in g:
        raise DatabaseUnavailable("the database is unavailable")
    if "db_session" not in g:
        g.db_session = session_factory()()
    session: Session = g.db_session
    return session


def read_only_session() -> Session:
    """The request's session, for a request that only reads: on SQLite its transaction
    begins without taking the write lock. Call it before the request's first query."""
    session = db_session()
    session.connection(execution_options=READ_ONLY)
    return session


class DatabaseUnavailable(SQLAlchemyError):
    """Raised by db_session() once this request has met the database unavailable."""


def _note_outage(context: Any) -> None:
    """After one wait for a database that is unavailable (a connect or statement timeout,
    a refused connection), the rest of the request does not wait again: db_session()
    fails at once, and so does every query of a session taken earlier
    (_refuse_after_outage): a request that would try twice (the key ring's reload, the
    page's language, then the view) still answers within one timeout."""
    error = context.sqlalchemy_exception or context.original_exception
    if has_app_context() and is_outage(error):
        g.db_unavailable = True


def _refuse_after_outage(_state: Any) -> None:
    # A session taken before the outage was met (a view's, at its start) is refused too.
    if has_app_context() and "db_unavailable" in g:
        raise DatabaseUnavailable("the database is unavailable")


def give_up_database() -> None:
    """The database is unavailable for the rest of this request (an outage answer is on
    its way): the request's session is closed, the writes meant for after it are dropped,
    and db_session() raises DatabaseUnavailable at once instead of waiting once more (so
    the error page's language falls back to the cookie and the browser's)."""
    g.db_unavailable = True
    g.pop("writes_after_close", None)
    session: Session | None = g.pop("db_session", None)
    if session is not None:
        # Its connection's state is unknown, and a rollback could wait for a frozen
        # server once more: the connection is dropped instead (no round trip).
        session.invalidate()


def _close_session(_exc: BaseException | None) -> None:
    session: Session | None = g.pop("db_session", None)
    if session is not None:
        session.close()
    for write in g.pop("writes_after_close", ()):
        _best_effort(write)


def after_session_closed(write: Callable[[Connection], None]) -> None:
    """Run `write(connection)` once this request's session is closed, in a short
    transaction of its own (`side_transaction`): for bookkeeping (when a browser session
    was last used) that must neither commit a view's half-done work nor wait for the
    request's own transaction (on SQLite that would be waiting for oneself). Best effort:
    a write that fails is logged, never raised, and the page is answered all the same."""
    g.setdefault("writes_after_close", []).append(write)


def _best_effort(write: Callable[[Connection], None]) -> None:
    try:
        with side_transaction(current_app.extensions["idp.engine"]) as conn:
            write(conn)
    except SQLAlchemyError as exc:  # a lock not had in time, the database away: skip it
        # The driver's message only: SQLAlchemy's own names the statement's parameters,
        # and those may be hashes that no log should hold.
        reason = getattr(exc, "orig", None) or type(exc).__name__
        logging.getLogger(__name__).warning("a write after the request was skipped: %s", reason)


@contextmanager
def side_transaction(engine: Engine, lock_wait: float = 1.0) -> Iterator[Connection]:
    """A short transaction on a connection of its own that waits at most `lock_wait`
    seconds for a lock (SQLite's one writer, a PostgreSQL row lock) and then fails, so a
    best-effort write never holds a request up for the usual busy timeout."""
    wait_ms = int(lock_wait * 1000)
    with engine.connect() as conn:
        if conn.dialect.name != "sqlite":
            with conn.begin():
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = {wait_ms}")
                yield conn
            return
        # SQLite: the busy timeout is the connection's (and the pool keeps it), so it is
        # set on the driver's connection outside any transaction and put back afterwards.
        driver = conn.connection.driver_connection
        assert driver is not None
        usual = driver.execute("PRAGMA busy_timeout").fetchone()[0]
        driver.execute(f"PRAGMA busy_timeout={wait_ms}")
        try:
            with conn.begin():
                yield conn
        finally:
            driver.execute(f"PRAGMA busy_timeout={int(usual)}")


def rowcount(result: Result[*tuple[Any, ...]]) -> int:
    """The rows an UPDATE or DELETE run by Session.execute matched. Session.execute is
    typed to return a Result for any statement; for these it returns a CursorResult, the
    one that carries the count."""
    return cast("CursorResult[*tuple[Any, ...]]", result).rowcount


# What the hot-path functions run their prebuilt statements on: a Session, a Connection,
# or idp.fastpath's runner on the bare driver connection (execute().first(), .rowcount,
# scalar(), `dialect` and write_transaction()).
Runner = Session | Connection | Any


def atomic(db: Runner) -> AbstractContextManager[Any]:
    """Around statements that must commit together: a Session or Connection runs them in
    its own transaction, which its caller commits; the fast paths' runner is in
    autocommit and opens a transaction for them."""
    if isinstance(db, (Session, Connection)):
        return nullcontext()
    transaction: AbstractContextManager[Any] = db.write_transaction()
    return transaction
