"""Shared fixtures: a real database (SQLite by default, PostgreSQL when
IDP_TEST_DATABASE_URL is set), migrated with Alembic once per run and emptied between tests;
the app, its test client and CLI runner (flaskr style); and builders for users, clients
and a whole authorization-code login.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from alembic import command
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.orm import Session

from idp import create_app
from idp.accounts.services import create_user
from idp.cli import alembic_config
from idp.db import Base, session_factory
from idp.models import Customer, SigningKey, User
from idp.oidc import registry

ISSUER = "http://localhost"
PASSWORD = "correct horse battery staple"


def postgres_server_url() -> str | None:
    """IDP_TEST_DATABASE_URL (a PostgreSQL server to test on), in psycopg 3 form."""
    url = os.environ.get("IDP_TEST_DATABASE_URL")
    if url and url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url or None


@contextmanager
def fresh_database(tmp_root: Path) -> Iterator[str]:
    """An empty database of its own: a new PostgreSQL database on the test server (so
    parallel runs never share one), or a new SQLite file."""
    server = postgres_server_url()
    if server is None:
        yield f"sqlite:///{tmp_root / 'idp-test.sqlite3'}"
        return
    name = f"idp_test_{secrets.token_hex(6)}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A freshly migrated database for the whole run."""
    with fresh_database(tmp_path_factory.mktemp("db")) as url:
        command.upgrade(alembic_config(url), "head")
        yield url


@pytest.fixture(scope="session")
def base_settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return {
        "mode": "development",
        "issuer": ISSUER,
        "database_url": database_url,
        "instance_path": str(tmp_path_factory.mktemp("instance")),
        "secret_key": "test-secret-key-" + "x" * 32,
        "key_encryption_key": base64.urlsafe_b64encode(b"k" * 32).decode(),
        "key_activation_delay": 0,
        "jwks_max_age": 0,
    }


def _empty_tables(app: Flask) -> None:
    engine = app.extensions["idp.engine"]
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name != SigningKey.__tablename__:
                conn.execute(table.delete())


@pytest.fixture(scope="session")
def _shared_app(base_settings: dict[str, Any]) -> Flask:
    return create_app(base_settings)


@pytest.fixture
def make_app(base_settings: dict[str, Any]) -> Iterator[Callable[..., Flask]]:
    """Build an app with extra settings (e.g. make_app(login_free_attempts=1))."""
    built: list[Flask] = []

    def factory(**overrides: Any) -> Flask:
        app = create_app({**base_settings, **overrides})
        built.append(app)
        return app

    yield factory
    for app in built:
        app.extensions["idp.engine"].dispose()


@pytest.fixture
def app(_shared_app: Flask) -> Iterator[Flask]:
    # No app context is held here: each test-client request must get its own `g`
    # (request-scoped DB session and browser session), as in production.
    _empty_tables(_shared_app)
    yield _shared_app
    _empty_tables(_shared_app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> Any:
    return app.test_cli_runner()


@pytest.fixture
def db(app: Flask) -> Iterator[Session]:
    """A session for arranging and checking data (commit what a request must see)."""
    session = session_factory(app)()
    yield session
    session.close()


@pytest.fixture
def customer(db: Session) -> Customer:
    row = Customer(number="100200300", kind="person", name="Jānis Bērziņš",
                   personal_code="32123456785")
    db.add(row)
    db.commit()
    return row


@pytest.fixture
def user(app: Flask, db: Session, customer: Customer) -> User:
    row = create_user(db, app.extensions["idp.passwords"], email="Janis.Berzins@Example.lv",
                      name="Jānis Bērziņš", password=PASSWORD, customer_number=customer.number,
                      phone="+37120000000")
    db.commit()
    return row


@dataclass
class RegisteredClient:
    client_id: str
    secret: str | None
    redirect_uri: str


@pytest.fixture
def make_client(db: Session) -> Callable[..., RegisteredClient]:
    def factory(**kwargs: Any) -> RegisteredClient:
        kwargs.setdefault("name", "Test app")
        kwargs.setdefault("redirect_uris", ["https://rp.example.lv/cb"])
        kwargs.setdefault("scopes", ["openid", "profile", "email", "phone"])
        new = registry.add_client(db, **kwargs)
        db.commit()
        return RegisteredClient(new.client.client_id, new.secret, new.client.redirect_uris[0]
                                if new.client.redirect_uris else "")

    return factory


@pytest.fixture
def confidential_client(make_client: Callable[..., RegisteredClient]) -> RegisteredClient:
    return make_client(name="Portal", first_party=True, audience="https://api.example.lv",
                       grant_types=["authorization_code", "refresh_token", "client_credentials"],
                       post_logout_redirect_uris=["https://rp.example.lv/bye"])


@pytest.fixture
def public_client(make_client: Callable[..., RegisteredClient]) -> RegisteredClient:
    return make_client(name="Mobile app", auth_method="none",
                       redirect_uris=["http://127.0.0.1:8765/cb"])


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


class Browser:
    """Drives the login and consent pages with the Flask test client, like a person."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def login(self, email: str = "janis.berzins@example.lv", password: str = PASSWORD,
              interaction: str = "") -> Any:
        page = self.client.get("/login", query_string={"interaction": interaction})
        return self.client.post("/login", data={
            "csrf_token": csrf_token(page.get_data(as_text=True)), "email": email,
            "password": password, "interaction": interaction})

    def authorize(self, params: dict[str, str], email: str = "janis.berzins@example.lv",
                  password: str = PASSWORD, consent: str | None = "allow") -> Any:
        """GET /authorize and walk through login and consent; returns the final response
        (the redirect to the client, or the page where the walk stopped)."""
        response = self.client.get("/authorize", query_string=params)
        for _ in range(6):
            location = response.headers.get("Location", "")
            if response.status_code != 302 or not location.startswith("/"):
                return response
            path = urlsplit(location).path
            interaction = query(location).get("interaction", "")
            if path == "/login":
                response = self.login(email, password, interaction)
            elif path == "/consent":
                if consent is None:
                    return response
                page = self.client.get(location)
                response = self.client.post("/consent", data={
                    "csrf_token": csrf_token(page.get_data(as_text=True)),
                    "interaction": interaction, consent: consent.title()})
            else:
                response = self.client.get(location)
        return response


@pytest.fixture
def browser(client: FlaskClient) -> Browser:
    return Browser(client)


def auth_params(rp: RegisteredClient, **extra: str) -> tuple[dict[str, str], str]:
    """A valid authorization request for `rp` (with PKCE); returns (params, verifier)."""
    verifier, challenge = pkce_pair()
    params = {"response_type": "code", "client_id": rp.client_id,
              "redirect_uri": rp.redirect_uri, "scope": "openid profile email",
              "state": secrets.token_urlsafe(8), "nonce": secrets.token_urlsafe(8),
              "code_challenge": challenge, "code_challenge_method": "S256"}
    params.update(extra)
    return params, verifier
