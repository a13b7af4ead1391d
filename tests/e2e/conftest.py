"""End-to-end fixtures: the IdP as an operator runs it. A fresh database is migrated and
seeded with the `idp` admin command, then granian serves `wsgi:app` in a subprocess on a
free loopback port, and the tests talk to it over real HTTP.

`live_server` is session-scoped (one server start for the whole e2e run); tests stay
independent by logging in as a fresh person each (`person`), so no login, consent or
token of one test is visible to another.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from tests.conftest import (
    PASSWORD,
    SmtpServer,
    csrf_token,
    fresh_database,
    pkce_pair,
    query,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# The venv that runs pytest also holds the `idp` and `granian` entry points.
BIN = Path(sys.executable).parent
LOOPBACK = "127.0.0.1"
# Every HTTP call of the e2e tests is bounded by this (seconds).
HTTP_TIMEOUT = 10.0
# How long a server may take until discovery answers.
STARTUP_TIMEOUT = 30.0
SCOPE = "openid profile email"


# --- server processes ------------------------------------------------------------------------


def free_port() -> int:
    """A port the kernel just handed out; granian binds it right after (tiny race, retried)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """One granian process (main + worker, in a process group of its own)."""

    base_url: str
    issuer: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self, offset: int = 0) -> str:
        with self.log_path.open("rb") as fh:
            fh.seek(offset)
            return fh.read().decode("utf-8", errors="replace")

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log_tail(self, chars: int = 4000) -> str:
        return self.log()[-chars:]

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        # SIGTERM: granian shuts its worker down gracefully.
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            # Still unreaped, so the group id is still ours: kill main and worker together.
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def _wait_until_ready(server: ServerProcess) -> bool:
    """True once discovery answers; False if the process died (e.g. the port was taken)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    url = server.base_url + "/.well-known/openid-configuration"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"granian did not answer within {STARTUP_TIMEOUT}s:\n{server.log_tail()}")


def start_server(
    env: dict[str, str], log_path: Path, issuer: str | None = None, workers: int = 1
) -> ServerProcess:
    """granian as the Makefile starts it, on a free loopback port. Without `issuer` the
    server's own address is the issuer; `workers` worker processes (the Makefile's
    WORKERS)."""
    last_log = ""
    for _attempt in range(3):
        port = free_port()
        base_url = f"http://{LOOPBACK}:{port}"
        server_env = {**env, "IDP_ISSUER": issuer or base_url}
        log = log_path.open("ab")
        try:
            process = subprocess.Popen(
                [
                    str(BIN / "granian"),
                    "--interface",
                    "wsgi",
                    "--host",
                    LOOPBACK,
                    "--port",
                    str(port),
                    "--workers",
                    str(workers),
                    "--blocking-threads",
                    "4",
                    "wsgi:app",
                ],
                cwd=PROJECT_ROOT,
                env=server_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log.close()
        server = ServerProcess(base_url, server_env["IDP_ISSUER"], process, log_path)
        if _wait_until_ready(server):
            return server
        server.stop()
        last_log = server.log_tail()
    raise RuntimeError(f"granian would not start:\n{last_log}")


# --- the deployment ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RegisteredApp:
    client_id: str
    client_secret: str | None
    redirect_uri: str
    post_logout_redirect_uri: str | None = None

    @property
    def auth(self) -> tuple[str, str] | None:
        """HTTP Basic credentials (client_secret_basic), None for a public client."""
        return (self.client_id, self.client_secret) if self.client_secret else None


@dataclass(frozen=True)
class Person:
    email: str
    password: str
    sub: str


@dataclass
class LiveServer:
    """The running IdP, its database and what was registered in it."""

    server: ServerProcess
    database_url: str
    env: dict[str, str]
    workdir: Path
    confidential: RegisteredApp
    public: RegisteredApp
    person: Person
    others: list[ServerProcess] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def issuer(self) -> str:
        return self.server.issuer

    @property
    def servers(self) -> list[ServerProcess]:
        return [self.server, *self.others]

    def idp(self, *args: str) -> Any:
        """Run `idp ARGS --json` against this deployment's database; its parsed output."""
        return run_idp(self.env, *args, "--json")

    def create_person(self) -> Person:
        """A new user (a fresh consent record, no session): tests do not see each other."""
        email = f"e2e-{secrets.token_hex(5)}@example.lv"
        out = self.idp(
            "users", "create", "--email", email, "--name", "Anna Bērziņa", "--password", PASSWORD
        )
        return Person(email=email, password=PASSWORD, sub=out["sub"])

    def discovery(self) -> dict[str, Any]:
        response = requests.get(
            self.base_url + "/.well-known/openid-configuration", timeout=HTTP_TIMEOUT
        )
        response.raise_for_status()
        return response.json()

    @contextmanager
    def another_instance(self) -> Iterator[ServerProcess]:
        """A second granian process on the same database, as a second app instance behind a
        load balancer: same issuer, secret key and key-encryption key, its own port."""
        log_path = self.workdir / f"granian-{len(self.others) + 2}.log"
        server = start_server(self.env, log_path, issuer=self.issuer)
        self.others.append(server)
        try:
            yield server
        finally:
            server.stop()


def run_idp(env: dict[str, str], *args: str) -> Any:
    """The admin command, as an operator types it; JSON output is parsed."""
    result = subprocess.run(
        [str(BIN / "idp"), *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"idp {' '.join(args)} failed:\n{result.stderr}"
    return json.loads(result.stdout) if "--json" in args else result.stdout


def _base_env(database_url: str, workdir: Path) -> dict[str, str]:
    # Nothing IDP_* from the caller's shell leaks in (e.g. an IDP_CONFIG file).
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env.update(
        {
            "IDP_MODE": "development",
            # Nor a developer's `make run` (instance/effective.toml).
            "IDP_EFFECTIVE_CONFIG": "",
            "IDP_DATABASE_URL": database_url,
            "IDP_INSTANCE_PATH": str(workdir / "instance"),
            "IDP_SECRET_KEY": secrets.token_urlsafe(48),
            "IDP_KEY_ENCRYPTION_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            "IDP_LOG_LEVEL": "INFO",
            # The end-to-end tests read English pages (the shipped default is lv).
            "IDP_DEFAULT_LOCALE": "en",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@contextmanager
def demo_deployment(
    workdir: Path, smtp_server: SmtpServer, log_name: str, settings: dict[str, str] | None = None
) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    """A demo-mode server, as `make run` starts it (the DEMO bank, eParaksts and the example
    services inside), mailing to the tests' SMTP server, with the demo data seeded. Yields
    the server and the environment its admin commands run with. `settings`: more IDP_*
    variables (e.g. another utility's look)."""
    with fresh_database(workdir) as database_url:
        env = _base_env(database_url, workdir)
        env.update(
            {
                "IDP_MODE": "demo",
                "IDP_SMTP_HOST": smtp_server.host,
                "IDP_SMTP_PORT": str(smtp_server.port),
                "IDP_SMTP_SECURITY": "none",
                "IDP_MAIL_POLL_INTERVAL": "1",
                **(settings or {}),
            }
        )
        run_idp(env, "db", "upgrade")
        server = start_server(env, workdir / log_name)
        try:
            env = {**env, "IDP_ISSUER": server.issuer}
            run_idp(env, "demo", "seed")  # the demo customers, the DEMO bank as a provider
            yield server, env
        finally:
            server.stop()


def _register(env: dict[str, str], *args: str) -> dict[str, Any]:
    out: dict[str, Any] = run_idp(env, "clients", "add", *args, "--json")
    return out


@pytest.fixture(scope="session")
def live_server(
    tmp_path_factory: pytest.TempPathFactory, smtp_server: SmtpServer
) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp("e2e")
    with fresh_database(workdir) as database_url:
        env = _base_env(database_url, workdir)
        # Mail goes to the tests' real SMTP server (tests/conftest.py).
        env.update(
            {
                "IDP_SMTP_HOST": smtp_server.host,
                "IDP_SMTP_PORT": str(smtp_server.port),
                "IDP_SMTP_SECURITY": "none",
                "IDP_MAIL_POLL_INTERVAL": "1",
            }
        )
        run_idp(env, "db", "upgrade")
        email = "e2e-owner@example.lv"
        user = run_idp(
            env,
            "users",
            "create",
            "--email",
            email,
            "--name",
            "Jānis Bērziņš",
            "--password",
            PASSWORD,
            "--json",
        )
        # Not first party, so the consent page is shown.
        conf = _register(
            env,
            "--name",
            "Gas portal (e2e)",
            "--redirect-uri",
            f"http://{LOOPBACK}/e2e/cb",
            "--post-logout-redirect-uri",
            f"http://{LOOPBACK}/e2e/bye",
            "--auth-method",
            "client_secret_basic",
            "--grant-type",
            "authorization_code,refresh_token,client_credentials",
            "--scope",
            "openid,profile,email",
        )
        public = _register(
            env,
            "--name",
            "Meter app (e2e)",
            "--redirect-uri",
            f"http://{LOOPBACK}/e2e/native-cb",
            "--auth-method",
            "none",
        )
        assert conf["first_party"] is False and conf["client_secret"]
        assert public["client_secret"] is None
        server = start_server(env, workdir / "granian-1.log")
        try:
            yield LiveServer(
                server=server,
                database_url=database_url,
                env={**env, "IDP_ISSUER": server.issuer},
                workdir=workdir,
                confidential=RegisteredApp(
                    conf["client_id"],
                    conf["client_secret"],
                    conf["redirect_uris"][0],
                    conf["post_logout_redirect_uris"][0],
                ),
                public=RegisteredApp(public["client_id"], None, public["redirect_uris"][0]),
                person=Person(email, PASSWORD, user["sub"]),
            )
        finally:
            server.stop()


@pytest.fixture
def person(live_server: LiveServer) -> Person:
    return live_server.create_person()


@pytest.fixture(autouse=True)
def _server_logged_no_errors(live_server: LiveServer) -> Iterator[None]:
    """After each test: no server process logged an unhandled exception meanwhile (a 500 is
    a bug even when the test's own assertions happen to hold)."""
    offsets = {id(s): s.log_size() for s in live_server.servers}
    yield
    for server in live_server.servers:
        text = server.log(offsets.get(id(server), 0))
        for marker in ("Traceback", "database is locked"):
            assert marker not in text, f"{server.base_url} logged an error:\n{text[-6000:]}"


# --- a person's browser ---------------------------------------------------------------------


class Browser:
    """A requests.Session acting as the person's browser: it keeps the IdP's cookies, follows
    redirects within the IdP itself and fills in the login and consent pages; it stops when
    the IdP sends it to a client (the callback, which is never fetched)."""

    def __init__(self, issuer: str, person: Person) -> None:
        self.http = requests.Session()
        self.issuer = issuer
        self.person = person
        # Paths of the pages the person saw, in order (e.g. ["/login", "/consent"]).
        self.pages: list[str] = []

    def close(self) -> None:
        self.http.close()

    def get(self, url: str) -> requests.Response:
        return self.http.get(url, allow_redirects=False, timeout=HTTP_TIMEOUT)

    def visit(self, url: str, consent: str = "allow") -> str:
        """Open `url` and act until the IdP redirects away from itself; returns that URL."""
        response = self.get(url)
        for _ in range(10):
            assert response.status_code in (302, 303), (
                f"stopped at {response.url}: {response.status_code}\n{response.text[:2000]}"
            )
            location = urljoin(response.url, response.headers["Location"])
            if not location.startswith(self.issuer + "/"):
                return location
            path = urlsplit(location).path
            if path == "/login":
                response = self._login(location)
            elif path == "/consent":
                response = self._consent(location, consent)
            else:
                response = self.get(location)
        raise AssertionError("the IdP redirected too many times")

    def _login(self, location: str) -> requests.Response:
        page = self.get(location)
        assert page.status_code == 200 and 'name="password"' in page.text, page.text[:2000]
        self.pages.append("/login")
        return self.http.post(
            urljoin(location, "/login"),
            data={
                "csrf_token": csrf_token(page.text),
                "email": self.person.email,
                "password": self.person.password,
                "interaction": query(location).get("interaction", ""),
            },
            allow_redirects=False,
            timeout=HTTP_TIMEOUT,
        )

    def _consent(self, location: str, answer: str) -> requests.Response:
        page = self.get(location)
        assert page.status_code == 200 and 'name="allow"' in page.text, page.text[:2000]
        self.pages.append("/consent")
        return self.http.post(
            urljoin(location, "/consent"),
            data={
                "csrf_token": csrf_token(page.text),
                "interaction": query(location).get("interaction", ""),
                answer: answer.title(),
            },
            allow_redirects=False,
            timeout=HTTP_TIMEOUT,
        )

    def obtain_code(self, app: RegisteredApp, **extra: str) -> tuple[str, str]:
        """One authorization code for `app` (logging in and consenting as needed) and its
        PKCE verifier."""
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(12)
        params = {
            "response_type": "code",
            "client_id": app.client_id,
            "redirect_uri": app.redirect_uri,
            "scope": SCOPE,
            "state": state,
            "nonce": secrets.token_urlsafe(12),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            **extra,
        }
        callback = self.visit(f"{self.issuer}/authorize?{urlencode(params)}")
        answer = query(callback)
        assert callback.startswith(app.redirect_uri + "?") and "code" in answer, callback
        assert answer["state"] == state and answer["iss"] == self.issuer
        return answer["code"], verifier


@pytest.fixture
def browser_for(live_server: LiveServer) -> Iterator[Callable[[Person], Browser]]:
    made: list[Browser] = []

    def factory(who: Person) -> Browser:
        made.append(Browser(live_server.issuer, who))
        return made[-1]

    yield factory
    for browser in made:
        browser.close()


# --- token helpers ---------------------------------------------------------------------------


def redeem_code(
    base_url: str,
    app: RegisteredApp,
    code: str,
    verifier: str,
    http: requests.Session | None = None,
) -> requests.Response:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": app.redirect_uri,
        "code_verifier": verifier,
    }
    if app.auth is None:
        data["client_id"] = app.client_id
    return (http or requests).post(
        f"{base_url}/token", data=data, auth=app.auth, timeout=HTTP_TIMEOUT
    )


def refresh(
    base_url: str, app: RegisteredApp, refresh_token: str, http: requests.Session | None = None
) -> requests.Response:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if app.auth is None:
        data["client_id"] = app.client_id
    return (http or requests).post(
        f"{base_url}/token", data=data, auth=app.auth, timeout=HTTP_TIMEOUT
    )


def half_hash(value: str) -> str:
    """at_hash for RS256/ES256 (OIDC Core §3.1.3.6), computed independently of the IdP."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def verify_id_token(
    id_token: str,
    jwks: dict[str, Any],
    *,
    issuer: str,
    client_id: str,
    nonce: str | None,
    access_token: str | None,
) -> dict[str, Any]:
    """Verify as a relying party must (OIDC Core §3.1.3.7): signature against the JWKS,
    iss, aud, exp, nonce, and at_hash over the access token issued with it."""
    decoded = jwt.decode(id_token, KeySet.import_key_set(jwks), algorithms=["RS256", "ES256"])
    expected: dict[str, Any] = {
        "iss": {"essential": True, "value": issuer},
        "aud": {"essential": True, "value": client_id},
        "sub": {"essential": True},
        "exp": {"essential": True},
        "iat": {"essential": True},
        "auth_time": {"essential": True},
    }
    if nonce is not None:
        expected["nonce"] = {"essential": True, "value": nonce}
    JWTClaimsRegistry(leeway=5, **expected).validate(decoded.claims)
    claims = dict(decoded.claims)
    assert claims["exp"] > time.time(), "the ID token is already expired"
    if access_token is not None:
        assert claims["at_hash"] == half_hash(access_token)
    return claims


def race(calls: list[Callable[[], requests.Response]]) -> list[requests.Response]:
    """Run the calls at the same moment, one thread each (a barrier releases them together)."""
    barrier = threading.Barrier(len(calls))
    results: list[requests.Response | BaseException | None] = [None] * len(calls)

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=HTTP_TIMEOUT)
            results[index] = calls[index]()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread below
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=HTTP_TIMEOUT * 2)
    answers: list[requests.Response] = []
    for result in results:
        if isinstance(result, BaseException):
            raise result
        assert result is not None, "a racing request did not finish in time"
        answers.append(result)
    return answers
