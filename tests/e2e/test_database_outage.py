"""The database goes away, then comes back; then it freezes (its processes stopped), then
thaws. A PostgreSQL cluster of this test's own (initdb in a temporary folder, a spare
port: never the shared server) under a granian IdP: while the database is unavailable
every database-backed endpoint answers 503 with Retry-After within the configured bound
(JSON temporarily_unavailable on the protocol endpoints, a page for people), the JWKS and
discovery keep answering from memory, and once the database is back the instance
recovers by itself, with no token issued that was not stored.

The outage is PostgreSQL's, so this test runs on both CI legs (it needs the PostgreSQL
server binaries, found as /usr/lib/postgresql/<version>/bin or by pg_config).
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import psycopg
import pytest
import requests

from tests.conftest import PASSWORD, csrf_token, pkce_pair
from tests.e2e.conftest import (
    HTTP_TIMEOUT,
    SCOPE,
    Browser,
    Person,
    RegisteredApp,
    _base_env,
    free_port,
    race,
    redeem_code,
    refresh,
    run_idp,
    start_server,
)

# The server's database timeouts (connect, statement, pool checkout), in seconds: small,
# so that the frozen phase does not take minutes; the shipped default is 5.
DB_TIMEOUT = 2
# What "within the bound" means here: one wait (a statement on a connection that no longer
# answers, or a connection not accepted: at most DB_TIMEOUT each), and some slack for
# scheduling.
ANSWER_BOUND = DB_TIMEOUT + 2.0
# start_server's --blocking-threads.
THREADS = 4
# How long the instance may take to recover once the database is back.
RECOVERY_BOUND = 15.0


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        bindir = Path(out.stdout.strip())
        if (bindir / "initdb").exists():
            return bindir
    return None


PG_BIN = _postgres_bin()
pytestmark = pytest.mark.skipif(PG_BIN is None, reason="no PostgreSQL server binaries")


@pytest.fixture(autouse=True)
def _server_logged_no_errors() -> Iterator[None]:
    """Replaces the e2e suite's check (it would start the shared live server): this test
    checks its own server's log."""
    yield


@dataclass
class Cluster:
    """A PostgreSQL cluster in a folder of its own, run as the `postgres` user when the
    tests run as root (PostgreSQL refuses to run as root)."""

    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _run(self, *args: str) -> None:
        assert PG_BIN is not None
        command = [str(PG_BIN / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, f"{args[0]} failed:\n{result.stdout}\n{result.stderr}"

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=100"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "log"),
            "-w",
            "start",
        )

    def stop(self, mode: str = "immediate") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def processes(self) -> list[int]:
        """The postmaster and all its children (backends, checkpointer, walwriter...)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = []
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                fields = Path(stat).read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            if int(fields[1]) == postmaster:
                children.append(int(Path(stat).parent.name))
        return [postmaster, *children]

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    # Under /tmp itself: pytest's own temporary folders are closed to the postgres user.
    root = Path(tempfile.mkdtemp(prefix="idp-outage-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    made = Cluster(root, free_port())
    try:
        made.init()
        made.start()
        with psycopg.connect(
            f"host=127.0.0.1 port={made.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute("CREATE DATABASE idp")
        yield made
    finally:
        if made.running():
            for pid in _pids_or_none(made):
                _signal(pid, signal.SIGCONT)
            made.stop()
        shutil.rmtree(root, ignore_errors=True)


def _pids_or_none(cluster: Cluster) -> list[int]:
    try:
        return cluster.processes()
    except (OSError, ValueError, IndexError):
        return []


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


@dataclass
class Deployment:
    base_url: str
    app: RegisteredApp
    person: Person
    server_log: Callable[[], str]


@pytest.fixture
def deployment(cluster: Cluster, tmp_path: Path) -> Iterator[Deployment]:
    env = _base_env(cluster.url("idp"), tmp_path)
    env.update(
        {
            "IDP_DATABASE_CONNECT_TIMEOUT": str(DB_TIMEOUT),
            "IDP_DATABASE_STATEMENT_TIMEOUT": str(DB_TIMEOUT),
            "IDP_DATABASE_POOL_TIMEOUT": str(DB_TIMEOUT),
            # The keys are re-read often, so the outage meets a reload too.
            "IDP_KEYS_REFRESH_INTERVAL": "2",
        }
    )
    run_idp(env, "db", "upgrade")
    email = f"outage-{secrets.token_hex(4)}@example.lv"
    user = run_idp(env, "users", "create", "--email", email, "--name", "Ilze Kalniņa",
                   "--password", PASSWORD, "--json")  # fmt: skip
    client = run_idp(env, "clients", "add", "--name", "Gas portal (outage)",
                     "--redirect-uri", "http://127.0.0.1/outage/cb",
                     "--auth-method", "client_secret_basic",
                     "--grant-type", "authorization_code,refresh_token,client_credentials",
                     "--scope", "openid,profile,email", "--json")  # fmt: skip
    server = start_server(env, tmp_path / "granian.log")
    try:
        yield Deployment(
            server.base_url,
            RegisteredApp(client["client_id"], client["client_secret"], client["redirect_uris"][0]),
            Person(email, PASSWORD, user["sub"]),
            server.log,
        )
    finally:
        server.stop()


# --- what is asked during the outage ------------------------------------------------------


@dataclass
class Held:
    """What was obtained before the outage, to be used during it."""

    code: str
    verifier: str
    access_token: str
    login_page: str  # /login?interaction=... of a paused sign-in
    login_form: dict[str, str]  # its filled-in form, with the CSRF token
    stranger: requests.Session  # the browser of that paused sign-in
    signed_in: requests.Session  # a browser logged in (My account)


def _authorize_url(base_url: str, app: RegisteredApp) -> str:
    _verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": app.redirect_uri,
        "scope": SCOPE,
        "state": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return f"{base_url}/authorize?{urlencode(params)}"


def _hold(site: Deployment, browser: Browser) -> Held:
    code, verifier = browser.obtain_code(site.app)  # redeemed during the outage
    tokens = redeem_code(site.base_url, site.app, *browser.obtain_code(site.app))
    assert tokens.status_code == 200, tokens.text
    stranger = requests.Session()
    paused = stranger.get(
        _authorize_url(site.base_url, site.app), allow_redirects=False, timeout=HTTP_TIMEOUT
    )
    assert paused.status_code in (302, 303), paused.text[:500]
    login_page = site.base_url + paused.headers["Location"].removeprefix(site.base_url)
    page = stranger.get(login_page, timeout=HTTP_TIMEOUT)
    assert page.status_code == 200
    form = {
        "csrf_token": csrf_token(page.text),
        "email": site.person.email,
        "password": site.person.password,
        "interaction": login_page.split("interaction=", 1)[1].split("&")[0],
    }
    return Held(
        code, verifier, tokens.json()["access_token"], login_page, form, stranger, browser.http
    )


@dataclass
class Asked:
    name: str
    kind: str  # "json": a protocol endpoint; "page": for people; "memory": no database
    seconds: float
    response: requests.Response


def _ask_everything(site: Deployment, held: Held, refresh_token: str) -> list[Asked]:
    app, base = site.app, site.base_url
    timeout = ANSWER_BOUND + 5  # longer than the bound: a hang shows as a slow answer
    requests_by_name: list[tuple[str, str, Callable[[], requests.Response]]] = [
        ("refresh", "json", lambda: refresh(base, app, refresh_token)),
        ("code", "json", lambda: redeem_code(base, app, held.code, held.verifier)),
        (
            "client_credentials",
            "json",
            lambda: requests.post(
                f"{base}/token",
                data={"grant_type": "client_credentials"},
                auth=app.auth,
                timeout=timeout,
            ),
        ),
        (
            "userinfo",
            "json",
            lambda: requests.get(
                f"{base}/userinfo",
                timeout=timeout,
                headers={"Authorization": f"Bearer {held.access_token}"},
            ),
        ),
        (
            "introspect",
            "json",
            lambda: requests.post(
                f"{base}/introspect",
                data={"token": held.access_token},
                auth=app.auth,
                timeout=timeout,
            ),
        ),
        (
            "revoke",
            "json",
            lambda: requests.post(
                f"{base}/revoke", data={"token": refresh_token}, auth=app.auth, timeout=timeout
            ),
        ),
        ("login GET", "page", lambda: held.stranger.get(held.login_page, timeout=timeout)),
        (
            "login POST",
            "page",
            lambda: held.stranger.post(
                f"{base}/login", data=held.login_form, allow_redirects=False, timeout=timeout
            ),
        ),
        (
            "authorize",
            "page",
            lambda: held.signed_in.get(
                _authorize_url(base, app), allow_redirects=False, timeout=timeout
            ),
        ),
        ("account", "page", lambda: held.signed_in.get(f"{base}/account", timeout=timeout)),
        ("jwks", "memory", lambda: requests.get(f"{base}/jwks.json", timeout=timeout)),
        (
            "discovery",
            "memory",
            lambda: requests.get(f"{base}/.well-known/openid-configuration", timeout=timeout),
        ),
    ]
    asked = []
    for name, kind, call in requests_by_name:
        started = time.monotonic()
        response = call()
        asked.append(Asked(name, kind, time.monotonic() - started, response))
    return asked


def _check_unavailable(asked: list[Asked]) -> None:
    for one in asked:
        response, label = one.response, f"{one.name}: {one.response.status_code}"
        assert one.seconds < ANSWER_BOUND, f"{label} took {one.seconds:.1f} s"
        if one.kind == "memory":
            assert response.status_code == 200, label
            continue
        if one.name == "client_credentials" and response.status_code == 200:
            # A client known to the instance's cache needs no database, and nothing is
            # stored for this grant: the token may be issued.
            assert response.json()["access_token"], label
            continue
        assert response.status_code == 503, f"{label}\n{response.text[:1000]}"
        assert response.headers.get("Retry-After", "").isdigit(), label
        assert response.headers["Cache-Control"] == "no-store", label
        if one.kind == "json":
            assert response.headers["Content-Type"] == "application/json", label
            assert response.json()["error"] == "temporarily_unavailable", label
        else:
            assert response.headers["Content-Type"].startswith("text/html"), label
            assert "The service is briefly unavailable" in response.text, label
            assert "Traceback" not in response.text


def _refreshed(site: Deployment, refresh_token: str, answer: list[requests.Response]) -> bool:
    """Whether a refresh got an answer other than 503 (kept in `answer`)."""
    answer[:] = [refresh(site.base_url, site.app, refresh_token)]
    return answer[0].status_code != 503


def _wait_for(predicate: Callable[[], bool], bound: float) -> float:
    """Seconds until `predicate()` held (asked again and again), at most `bound`."""
    started = time.monotonic()
    while time.monotonic() - started < bound:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"not within {bound} s")


def test_outage_stop_start_freeze_thaw(
    cluster: Cluster, deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    site = deployment
    browser = Browser(site.base_url, site.person)
    first = redeem_code(site.base_url, site.app, *browser.obtain_code(site.app))
    assert first.status_code == 200, first.text
    before_outage = first.json()["refresh_token"]
    held = _hold(site, browser)
    figures: dict[str, float] = {}

    # 1. The server stops.
    cluster.stop("immediate")
    answer: list[requests.Response] = []
    figures["first 503 after the stop (s)"] = _wait_for(
        lambda: not _refreshed(site, before_outage, answer), ANSWER_BOUND
    )
    asked = _ask_everything(site, held, before_outage)
    _check_unavailable(asked)
    figures["slowest answer, stopped (s)"] = max(a.seconds for a in asked)

    # 2. It starts again: the instance recovers by itself, and the refresh token tried
    # during the outage was not spent (nothing was rotated that the app did not get).
    cluster.start()
    figures["first answer after the start (s)"] = _wait_for(
        lambda: _refreshed(site, before_outage, answer), RECOVERY_BOUND
    )
    assert answer[0].status_code == 200, answer[0].text
    after_start = answer[0].json()["refresh_token"]
    # The code tried during the outage was not spent either.
    redeemed = redeem_code(site.base_url, site.app, held.code, held.verifier)
    assert redeemed.status_code == 200, redeemed.text
    page = held.stranger.get(held.login_page, timeout=HTTP_TIMEOUT)
    assert page.status_code == 200 and 'name="password"' in page.text

    # 3. The server freezes: every answer still comes within the bound.
    frozen = cluster.processes()
    try:
        for pid in frozen:
            _signal(pid, signal.SIGSTOP)
        asked = _ask_everything(site, held, after_start)
        _check_unavailable(asked)
        figures["slowest answer, frozen (s)"] = max(a.seconds for a in asked)
        figures["refresh while frozen (s)"] = asked[0].seconds
        # As many at once as the server has threads: the waits overlap, none adds up.
        started = time.monotonic()
        answers = race([lambda: refresh(site.base_url, site.app, after_start)] * THREADS)
        figures["refreshes at once, frozen (s)"] = time.monotonic() - started
        assert all(a.status_code == 503 for a in answers), [a.status_code for a in answers]
        assert figures["refreshes at once, frozen (s)"] < ANSWER_BOUND
    finally:
        for pid in frozen:
            _signal(pid, signal.SIGCONT)
    figures["first answer after the thaw (s)"] = _wait_for(
        lambda: _refreshed(site, after_start, answer), RECOVERY_BOUND
    )
    assert answer[0].status_code == 200, answer[0].text

    # Each refresh token worked exactly once: the one of before the outage, used again,
    # is a replay.
    replay = refresh(site.base_url, site.app, before_outage)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    log = site.server_log()
    assert "Traceback" not in log, log[-6000:]
    with capsys.disabled():
        print("\ndatabase outage figures:", {k: round(v, 2) for k, v in figures.items()})
