"""The answers while the database cannot be reached, through the Flask test client: an
app whose database is a PostgreSQL address where nothing listens (so this runs on both
CI legs). The stop, freeze and recovery of a real server are tests/e2e/test_database_outage.py.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from idp.db import Timeouts, is_outage, make_engine
from tests.conftest import postgres_server_url
from tests.e2e.conftest import free_port


@pytest.fixture
def unreachable(make_app: Any) -> Flask:
    port = free_port()  # handed out and closed again: nothing listens there
    app: Flask = make_app(database_url=f"postgresql+psycopg://postgres@127.0.0.1:{port}/idp")
    return app


def _json_503(response: Any) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Retry-After"] == "5"
    assert response.get_json()["error"] == "temporarily_unavailable"


def test_the_protocol_endpoints_and_fast_paths_answer_json_503(unreachable: Flask) -> None:
    client = unreachable.test_client()
    basic = {"Authorization": "Basic Y2xpZW50OnNlY3JldA=="}  # client:secret
    # The fast paths (refresh_token, client_credentials, userinfo), then Flask's.
    _json_503(client.post("/token", data={"grant_type": "refresh_token", "refresh_token": "r"},
                          headers=basic))  # fmt: skip
    _json_503(client.post("/token", data={"grant_type": "client_credentials"}, headers=basic))
    _json_503(client.get("/userinfo", headers={"Authorization": "Bearer t"}))
    _json_503(client.post("/token", data={"grant_type": "authorization_code", "code": "c"},
                          headers=basic))  # fmt: skip
    _json_503(client.post("/introspect", data={"token": "t"}, headers=basic))
    _json_503(client.post("/revoke", data={"token": "t"}, headers=basic))


@pytest.mark.parametrize(
    ("language", "title"),
    [
        ("en", "The service is briefly unavailable"),
        ("lv", "Pakalpojums īslaicīgi nav pieejams"),
        ("ru", "Сервис временно недоступен"),
    ],
)
def test_people_get_a_page_that_says_to_try_again(
    unreachable: Flask, language: str, title: str
) -> None:
    client = unreachable.test_client()
    response = client.get(
        "/login?interaction=abc",
        # Kept by the request log (idp.observability) as this request's id.
        headers={"Accept-Language": language, "X-Request-ID": "r3qu3st1d"},
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.headers["Content-Type"].startswith("text/html")
    assert title in page
    assert "r3qu3st1d" in page  # the reference support can look up
    assert 'href="/login?interaction=abc"' in page  # try again: the same page
    assert "Traceback" not in page


def test_a_form_sent_during_the_outage_is_answered_with_the_page(unreachable: Flask) -> None:
    unreachable.config["WTF_CSRF_ENABLED"] = False
    response = unreachable.test_client().post(
        "/login", data={"email": "a@example.lv", "password": "x" * 12}
    )
    assert response.status_code == 503
    # The request log gave it an id: the page shows the one the answer carries.
    reference = response.headers["X-Request-ID"]
    assert f"Reference: {reference}" in response.get_data(as_text=True)


def test_what_counts_as_an_outage() -> None:
    def wrapped(orig: Exception) -> OperationalError:
        return OperationalError("SELECT 1", {}, orig)

    assert is_outage(wrapped(sqlite3.OperationalError("database is locked")))
    assert is_outage(sqlite3.OperationalError("database is locked"), sqlite3)
    # A schema that is not there is a deployment's mistake, not a wait: a 500.
    assert not is_outage(wrapped(sqlite3.OperationalError("no such table: users")))
    assert not is_outage(IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE")))
    assert not is_outage(ValueError("not a database error"), sqlite3)


@pytest.mark.skipif(postgres_server_url() is None, reason="PostgreSQL's statement timeout")
def test_a_slow_statement_is_cancelled_by_the_server_and_the_connection_kept() -> None:
    url = postgres_server_url()
    assert url is not None
    engine = make_engine(url, timeouts=Timeouts(connect=5, statement=1, pool=5))
    try:
        with engine.connect() as conn:
            started = time.monotonic()
            with pytest.raises(OperationalError) as raised:
                conn.execute(text("SELECT pg_sleep(3)"))
            assert time.monotonic() - started < 1.0  # the server's 0.5 s, not the client's 1 s
            assert is_outage(raised.value) and not raised.value.connection_invalidated
            conn.rollback()
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def test_every_error_page_shows_the_request_reference(client: Any) -> None:
    missing = client.get("/no-such-page", headers={"X-Request-ID": "abc123def"})
    assert missing.status_code == 404
    assert "Reference: abc123def" in missing.get_data(as_text=True)
    bad_request = client.get("/authorize", headers={"X-Request-ID": "abc123def"})
    assert bad_request.status_code == 400
    assert "Reference: abc123def" in bad_request.get_data(as_text=True)
