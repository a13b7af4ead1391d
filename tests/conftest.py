"""Shared fixtures: a real database (SQLite by default, PostgreSQL when
IDP_TEST_DATABASE_URL is set), migrated with Alembic once per run and emptied between tests;
the app, its test client and CLI runner (flaskr style); and builders for users, clients
and a whole authorization-code login. Every test app delivers its mail to a real SMTP server
(aiosmtpd on a loopback port, `smtp_server`); tests read it through `mailbox`.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiosmtpd.controller import Controller
from alembic import command
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.orm import Session

from idp import create_app, mail
from idp.accounts.services import create_user
from idp.cli import alembic_config
from idp.db import Base, session_factory
from idp.models import Customer, SigningKey, User
from idp.oidc import registry

ISSUER = "http://localhost"
PASSWORD = "correct horse battery staple"
# No test reads a developer's `make run` settings (instance/effective.toml), nor do the
# servers and CLIs the tests start (they inherit the environment).
os.environ["IDP_EFFECTIVE_CONFIG"] = ""

# The real-browser tests need Debian's chromium and axe-core (`make test-browser`): they are
# collected only when named (`pytest tests/browser`, or a file or test in it), never by a
# plain `pytest`, so `make test` needs no browser.
BROWSER_TESTS = Path(__file__).resolve().parent / "browser"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path != BROWSER_TESTS:
        return None
    for arg in config.args:
        named = (config.invocation_params.dir / arg.split("::")[0]).resolve()
        if named == BROWSER_TESTS or BROWSER_TESTS in named.parents:
            return None
    return True


def postgres_server_url() -> str | None:
    """IDP_TEST_DATABASE_URL (a PostgreSQL server to test on), in psycopg 3 form."""
    url = os.environ.get("IDP_TEST_DATABASE_URL")
    if url and url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
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


# --- mail: a real SMTP server -----------------------------------------------------------------

SMTP_HOST = "127.0.0.1"


@dataclass
class ReceivedMail:
    message: EmailMessage
    mail_from: str
    rcpt_tos: list[str]


@dataclass
class _MailCollector:
    """aiosmtpd handler: keeps every message it accepts, parsed."""

    received: list[ReceivedMail] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        message = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.received.append(ReceivedMail(message, envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


class SmtpServer:
    """aiosmtpd on 127.0.0.1:`port`, in a thread of the test process. `stop()`/`start()`
    keep the port, so a test can take it down and bring it back ("SMTP down then up");
    prefer `with smtp_server.down():`, which always brings it back."""

    def __init__(self, port: int, **smtp_options: Any) -> None:
        self.host = SMTP_HOST
        self.port = port
        self.handler = _MailCollector()
        self.options = smtp_options
        self._controller: Controller | None = None

    def start(self) -> None:
        if self._controller is None:
            # A new Controller each time: a stopped one has closed its event loop.
            controller = Controller(
                self.handler,
                hostname=self.host,
                port=self.port,
                server_hostname="localhost",
                **self.options,
            )
            controller.start()
            self._controller = controller

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    @property
    def running(self) -> bool:
        return self._controller is not None

    @contextmanager
    def down(self) -> Iterator[None]:
        self.stop()
        try:
            yield
        finally:
            self.start()

    @property
    def received(self) -> list[ReceivedMail]:
        with self.handler.lock:
            return list(self.handler.received)

    def clear(self) -> None:
        with self.handler.lock:
            self.handler.received.clear()


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((SMTP_HOST, 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_smtp_server(**smtp_options: Any) -> Iterator[SmtpServer]:
    """A server of its own (e.g. one that requires AUTH), stopped afterwards."""
    server = SmtpServer(free_loopback_port(), **smtp_options)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpServer]:
    """The SMTP server every test app delivers to (see base_settings)."""
    with running_smtp_server() as server:
        yield server


def text_body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, "no text/plain part"
    return str(part.get_content()).replace("\r\n", "\n")  # lines end in CRLF on the wire


def html_body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None, "no text/html part"
    return str(part.get_content()).replace("\r\n", "\n")  # lines end in CRLF on the wire


def first_link(message: EmailMessage) -> str:
    """The first http(s) URL in the text body (where the flows put their links)."""
    match = re.search(r"https?://[^\s<>\"']+", text_body(message))
    assert match, f"no link in the mail:\n{text_body(message)}"
    return match.group(0)


class Mailbox:
    """What `smtp_server` received during this test."""

    def __init__(self, server: SmtpServer) -> None:
        self.server = server
        self._taken: set[int] = set()

    def messages(self, to: str | None = None) -> list[EmailMessage]:
        return [
            m.message
            for m in self.server.received
            if to is None or to.lower() in (r.lower() for r in m.rcpt_tos)
        ]

    def wait_for(self, to: str, timeout: float = 10) -> EmailMessage:
        """The next mail to `to` that this test has not taken yet (mail is delivered by
        a background thread: it arrives shortly after the request). On SQLite, end the
        `db` session's transaction first (db.commit()): it holds the write lock that the
        sender needs to claim the mail."""
        deadline = time.monotonic() + timeout
        while True:
            for index, received in enumerate(self.server.received):
                if index not in self._taken and to.lower() in (
                    r.lower() for r in received.rcpt_tos
                ):
                    self._taken.add(index)
                    return received.message
            if time.monotonic() > deadline:
                got = [(m.rcpt_tos, m.message["Subject"]) for m in self.server.received]
                raise AssertionError(f"no mail to {to} within {timeout} s; received: {got}")
            time.sleep(0.05)

    def link_for(self, to: str, timeout: float = 10) -> str:
        """The first link of the next mail to `to`."""
        return first_link(self.wait_for(to, timeout))


@pytest.fixture
def mailbox(smtp_server: SmtpServer) -> Mailbox:
    """Empty at the start of each test."""
    smtp_server.clear()
    return Mailbox(smtp_server)


@pytest.fixture(scope="session")
def base_settings(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, smtp_server: SmtpServer
) -> dict[str, Any]:
    return {
        "mode": "development",
        "issuer": ISSUER,
        # Most tests read English text; the language tests ask for lv and ru themselves
        # (tests/integration/test_languages.py checks the shipped default, lv).
        "default_locale": "en",
        "database_url": database_url,
        "instance_path": str(tmp_path_factory.mktemp("instance")),
        "secret_key": "test-secret-key-" + "x" * 32,
        "key_encryption_key": base64.urlsafe_b64encode(b"k" * 32).decode(),
        "key_activation_delay": 0,
        "jwks_max_age": 0,
        "smtp_host": smtp_server.host,
        "smtp_port": smtp_server.port,
        "smtp_security": "none",
        "smtp_timeout": 5,
        "mail_poll_interval": 1,
        "mail_retry_base": 1,
        "mail_retry_max": 4,
    }


def _empty_tables(app: Flask) -> None:
    # The app's mail sender must not write meanwhile (nor deliver one test's mail during
    # the next); it starts again at the next request or commit that wrote mail.
    mail.get_sender(app).stop()
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
        mail.get_sender(app).stop()
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
    row = Customer(
        number="100200300", kind="person", name="Jānis Bērziņš", personal_code="32123456785"
    )
    db.add(row)
    db.commit()
    return row


@pytest.fixture
def user(app: Flask, db: Session, customer: Customer) -> User:
    row = create_user(
        db,
        app.extensions["idp.passwords"],
        email="Janis.Berzins@Example.lv",
        name="Jānis Bērziņš",
        password=PASSWORD,
        customer_number=customer.number,
        phone="+37120000000",
    )
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
        return RegisteredClient(
            new.client.client_id,
            new.secret,
            new.client.redirect_uris[0] if new.client.redirect_uris else "",
        )

    return factory


@pytest.fixture
def confidential_client(make_client: Callable[..., RegisteredClient]) -> RegisteredClient:
    return make_client(
        name="Portal",
        first_party=True,
        audience="https://api.example.lv",
        grant_types=["authorization_code", "refresh_token", "client_credentials"],
        post_logout_redirect_uris=["https://rp.example.lv/bye"],
    )


@pytest.fixture
def public_client(make_client: Callable[..., RegisteredClient]) -> RegisteredClient:
    return make_client(
        name="Mobile app", auth_method="none", redirect_uris=["http://127.0.0.1:8765/cb"]
    )


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

    def login(
        self,
        email: str = "janis.berzins@example.lv",
        password: str = PASSWORD,
        interaction: str = "",
    ) -> Any:
        page = self.client.get("/login", query_string={"interaction": interaction})
        return self.client.post(
            "/login",
            data={
                "csrf_token": csrf_token(page.get_data(as_text=True)),
                "email": email,
                "password": password,
                "interaction": interaction,
            },
        )

    def authorize(
        self,
        params: dict[str, str],
        email: str = "janis.berzins@example.lv",
        password: str = PASSWORD,
        consent: str | None = "allow",
        act_for: int | None = None,
    ) -> Any:
        """GET /authorize and walk through login, the "act for" page (choosing the
        customer with id `act_for`) and consent; returns the final response (the
        redirect to the client, or the page where the walk stopped)."""
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
                response = self.client.post(
                    "/consent",
                    data={
                        "csrf_token": csrf_token(page.get_data(as_text=True)),
                        "interaction": interaction,
                        consent: consent.title(),
                    },
                )
            elif path == "/act-for" and act_for is not None:
                page = self.client.get(location)
                response = self.client.post(
                    "/act-for",
                    data={
                        "csrf_token": csrf_token(page.get_data(as_text=True)),
                        "interaction": interaction,
                        "customer": str(act_for),
                    },
                )
            else:
                response = self.client.get(location)
        return response


@pytest.fixture
def browser(client: FlaskClient) -> Browser:
    return Browser(client)


def auth_params(rp: RegisteredClient, **extra: str) -> tuple[dict[str, str], str]:
    """A valid authorization request for `rp` (with PKCE); returns (params, verifier)."""
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": rp.client_id,
        "redirect_uri": rp.redirect_uri,
        "scope": "openid profile email",
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(extra)
    return params, verifier
