"""The probes a load balancer or orchestrator calls: /healthz (the process answers) and
/readyz (database, migrations, signing keys), answered in front of Flask, without a
session cookie and without writing to the database."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, event, pool, text

from idp.cli import alembic_config
from tests.conftest import fresh_database, postgres_server_url


@pytest.fixture
def ready_client(client: FlaskClient, app: Flask) -> FlaskClient:
    app.extensions["idp.keyring"].reload()  # as wsgi.py does at start-up
    return client


def probe_headers_are_plain(response: Any) -> None:
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Type"] == "application/json"
    assert "Set-Cookie" not in response.headers


def test_healthz_answers_while_the_process_runs(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    probe_headers_are_plain(response)


def test_readyz_is_ready_on_a_migrated_database_with_its_keys(ready_client: FlaskClient) -> None:
    response = ready_client.get("/readyz")
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {
        "status": "ok",
        "checks": {"database": "ok", "migrations": "ok", "keys": "ok"},
    }
    probe_headers_are_plain(response)


def test_head_gives_the_status_without_a_body(ready_client: FlaskClient) -> None:
    for path in ("/healthz", "/readyz"):
        response = ready_client.head(path)
        assert response.status_code == 200
        assert response.get_data() == b""
        probe_headers_are_plain(response)


def test_other_methods_are_refused(client: FlaskClient) -> None:
    response = client.post("/readyz")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"


def test_the_probes_neither_write_nor_start_a_flask_request(
    app: Flask, ready_client: FlaskClient
) -> None:
    engine = app.extensions["idp.engine"]
    ready_client.get("/readyz")  # the sender is started and warm; now count what follows
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement.split()[0].upper())

    requests_through_flask: list[object] = []
    app.before_request_funcs.setdefault(None, []).insert(
        0, lambda: requests_through_flask.append(1)
    )
    event.listen(engine, "before_cursor_execute", seen)
    try:
        for _ in range(3):
            assert ready_client.get("/readyz").status_code == 200
            assert ready_client.get("/healthz").status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", seen)
        app.before_request_funcs[None].pop(0)
    assert requests_through_flask == []
    # Reads only (the mail sender's idle polls may show up among them: also SELECTs).
    assert statements and set(statements) <= {"SELECT", "SET", "BEGIN"}, statements
    assert statements.count("SELECT") >= 6  # SELECT 1 and alembic_version, three times


# --- not ready ----------------------------------------------------------------------------------


@pytest.fixture
def own_database(tmp_path: Path) -> Iterator[str]:
    with fresh_database(tmp_path) as url:
        yield url


def revisions() -> list[str]:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [r.revision for r in script.walk_revisions("base", "heads")]  # newest first


def test_readyz_is_unavailable_while_the_migrations_are_behind(
    make_app: Callable[..., Flask], own_database: str
) -> None:
    head, previous = revisions()[:2]
    config = alembic_config(own_database)
    command.upgrade(config, "head")
    app = make_app(database_url=own_database)
    app.extensions["idp.keyring"].reload()
    client = app.test_client()
    assert client.get("/readyz").status_code == 200

    command.downgrade(config, "-1")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {
        "status": "unavailable",
        "checks": {
            "database": "ok",
            "migrations": f"at {previous}, head is {head}",
            "keys": "ok",
        },
    }
    probe_headers_are_plain(response)
    # The liveness probe does not care: restarting the process would not help.
    assert client.get("/healthz").status_code == 200

    command.upgrade(config, "head")
    assert client.get("/readyz").status_code == 200


def test_readyz_is_unavailable_on_a_database_never_migrated(
    make_app: Callable[..., Flask], own_database: str
) -> None:
    app = make_app(database_url=own_database)
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    checks = response.get_json()["checks"]
    assert checks["database"] == "ok"
    assert checks["migrations"] == f"not migrated, head is {revisions()[0]}"


def test_readyz_is_unavailable_until_the_signing_keys_are_loaded(
    make_app: Callable[..., Flask], own_database: str
) -> None:
    command.upgrade(alembic_config(own_database), "head")
    app = make_app(database_url=own_database)
    client = app.test_client()
    engine = create_engine(own_database, poolclass=pool.NullPool)
    with engine.connect() as conn:
        keys_before = conn.scalar(text("SELECT count(*) FROM signing_keys"))

    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"] == {
        "database": "ok",
        "migrations": "ok",
        "keys": "not loaded yet",
    }
    # Asking did not create or load them.
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM signing_keys")) == keys_before
    engine.dispose()

    # The first request through Flask loads the keys (on a new installation: creates them).
    assert client.get("/jwks.json").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_readyz_is_unavailable_when_no_key_is_active(
    make_app: Callable[..., Flask], own_database: str
) -> None:
    command.upgrade(alembic_config(own_database), "head")
    app = make_app(database_url=own_database)
    client = app.test_client()
    assert client.get("/jwks.json").status_code == 200  # creates and loads the keys
    engine = create_engine(own_database, poolclass=pool.NullPool)
    with engine.begin() as conn:
        # Published but not signing yet: e.g. every key rotated in at once.
        conn.execute(text("UPDATE signing_keys SET activates_at = '2999-01-01 00:00:00'"))
    engine.dispose()
    app.extensions["idp.keyring"].reload()

    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["keys"] == "no active RS256, ES256 signing key"


def test_readyz_reports_a_database_that_cannot_be_reached(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    # A directory where the SQLite file should be: it cannot be opened.
    (tmp_path / "not-a-file.sqlite3").mkdir()
    app = make_app(database_url=f"sqlite:///{tmp_path / 'not-a-file.sqlite3'}")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    checks = response.get_json()["checks"]
    assert checks["database"] == "error: OperationalError"
    assert checks["migrations"] == "not checked"


@pytest.mark.skipif(
    postgres_server_url() is None, reason="PostgreSQL: a table lock that the check's read waits for"
)
def test_readyz_answers_within_its_timeout_when_the_database_does_not(
    make_app: Callable[..., Flask], own_database: str
) -> None:
    command.upgrade(alembic_config(own_database), "head")
    app = make_app(database_url=own_database, readiness_timeout=1)
    app.extensions["idp.keyring"].reload()
    client = app.test_client()
    engine = create_engine(own_database, poolclass=pool.NullPool)
    with engine.begin() as locker:
        locker.exec_driver_sql("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE")
        for _ in range(2):
            started = time.monotonic()
            response = client.get("/readyz")
            assert time.monotonic() - started < 3  # the feature: a bounded answer
            assert response.status_code == 503
            assert response.get_json()["checks"]["database"] in (
                "no answer within 1 s",
                "error: QueryCanceled",  # statement_timeout fired first
            )
    engine.dispose()
    # statement_timeout gave the connection back; the next check is a fresh one.
    deadline = time.monotonic() + 5
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, client.get("/readyz").get_json()
        time.sleep(0.1)
