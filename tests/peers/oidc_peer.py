"""The real upstream OpenID provider for tests (npm `oidc-provider`, `oidc-peer.mjs`): install
it into a cached folder, start it on a loopback port, and drive its login pages over HTTP
like a browser would. The fixtures in tests/providers/conftest.py use it; other test folders
can start their own peer with `start_oidc_peer(...)` or reuse the `oidc_peer` fixture by
adding `pytest_plugins = ["tests.providers.conftest"]` to their conftest.

Nothing here is a mock: the browser steps, the token endpoint and the JWKS are the peer's.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import requests

from providers.base import ConnectorConfig

PEERS = Path(__file__).resolve().parent
CACHE_ROOT = Path(os.path.expanduser("~/.cache/idp-test-peers"))
CLIENT_ID = "idp-test-client"
CLIENT_SECRET = "idp-test-secret-0a1b2c3d4e5f60718293a4b5c6d7e8f9"
REDIRECT_URI = "http://localhost/upstream/callback"
# accountId -> the claims the peer returns for it, with the `acr`/`amr` of the login.
ACCOUNTS: dict[str, dict[str, Any]] = {
    # New-format code (since 2017, starts with 32, valid check digit).
    "alice": {
        "personal_code": "32123456785",
        "given_name": "Alise",
        "family_name": "Bērziņa",
        "acr": "urn:bank:high",
        "amr": ["pwd", "otp"],
    },
    # Old format, written with a hyphen, at a lower acr.
    "janis": {
        "personal_code": "121282-11210",
        "given_name": "Jānis",
        "family_name": "Ozols",
        "acr": "urn:bank:substantial",
    },
    # eParaksts/Smart-ID style ETSI identifier in serial_number.
    "etsi": {
        "serial_number": "PNOLV-121282-11210",
        "given_name": "Jānis",
        "family_name": "Ozols",
        "acr": "urn:bank:high",
    },
    # A code failing the checksum: accepted (upstream-verified) and logged.
    "badsum": {
        "personal_code": "32123456786",
        "given_name": "Ilze",
        "family_name": "Kalna",
        "acr": "urn:bank:substantial",
    },
    # A company's registration number (valid as such) where a personal code belongs.
    "company": {
        "personal_code": "40003032949",
        "given_name": "Gāzes",
        "family_name": "Līnija",
        "acr": "urn:bank:substantial",
    },
    # No personal code at all.
    "nocode": {"given_name": "Nav", "family_name": "Koda", "acr": "urn:bank:substantial"},
}


class PeerError(RuntimeError):
    """The peer could not be installed, started or driven."""


def _run(cmd: list[str], cwd: Path) -> None:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        raise PeerError(f"{' '.join(cmd)} failed in {cwd}:\n{result.stdout}\n{result.stderr}")


def installed_peer() -> Path:
    """A folder with node_modules for tests/peers/package.json + package-lock.json, installed
    once with `npm ci` into ~/.cache/idp-test-peers/<hash of both files> (outside the repo)."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise PeerError(
                f"{tool!r} is not on PATH: the upstream OIDC peer (npm "
                "oidc-provider) needs Node.js 20+ and npm; install them"
            )
    manifest = (PEERS / "package.json").read_bytes()
    lock = (PEERS / "package-lock.json").read_bytes()
    digest = hashlib.sha256(manifest + b"\0" + lock).hexdigest()[:16]
    target = CACHE_ROOT / digest
    if (target / "node_modules" / "oidc-provider" / "package.json").exists():
        return target
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with open(CACHE_ROOT / f"{digest}.lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # parallel runs install once
        if (target / "node_modules" / "oidc-provider" / "package.json").exists():
            return target
        work = Path(tempfile.mkdtemp(prefix=f"{digest}.", dir=CACHE_ROOT))
        (work / "package.json").write_bytes(manifest)
        (work / "package-lock.json").write_bytes(lock)
        _run(["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"], work)
        shutil.rmtree(target, ignore_errors=True)
        work.rename(target)
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class PeerCallback:
    """Where the peer sent the browser back: the callback URL, its parameters (query or
    form_post body) and the HTTP method the browser would use."""

    url: str
    params: dict[str, str]
    method: str


@dataclass(frozen=True)
class OidcPeer:
    """A running oidc-provider: its issuer, the confidential client registered at it
    (client_secret_basic; `post_client_id` is the same with client_secret_post), the
    redirect URI registered for it, and the accounts one can log in as."""

    issuer: str
    client_id: str
    client_secret: str
    redirect_uri: str
    accounts: dict[str, dict[str, Any]] = field(repr=False)
    loopback_redirects: bool = True

    @property
    def post_client_id(self) -> str:
        return f"{self.client_id}-post"

    def config(
        self,
        name: str = "testbank",
        *,
        client_id: str | None = None,
        method: str = "bank",
        **options: Any,
    ) -> ConnectorConfig:
        """A ConnectorConfig for providers.oidc pointing at this peer."""
        return ConnectorConfig(
            name=name,
            method=method,
            display_name=f"Test bank {name}",
            base_url=self.issuer,
            client_id=client_id or self.client_id,
            client_secret=self.client_secret,
            options=options,
        )

    def login(
        self,
        authorization_url: str,
        account: str = "alice",
        *,
        cancel: bool = False,
        session: requests.Session | None = None,
    ) -> PeerCallback:
        return drive_login(authorization_url, self.issuer, account, cancel=cancel, session=session)


class _Page(HTMLParser):
    """Forms (action, method, inputs) and links of one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.links: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(
                {
                    "action": a.get("action", ""),
                    "method": a.get("method", "get").upper(),
                    "inputs": {},
                }
            )
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1]["inputs"][a["name"]] = a.get("value", "")
        elif tag == "a" and a.get("id"):
            self.links[a["id"]] = a.get("href", "")


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def drive_login(
    authorization_url: str,
    issuer: str,
    account: str = "alice",
    *,
    cancel: bool = False,
    session: requests.Session | None = None,
    max_steps: int = 12,
) -> PeerCallback:
    """Play the browser at the peer: follow its redirects, submit its login form as
    `account` (or press Cancel), and stop at the first hop leaving the peer's origin — the
    callback, by redirect (response_mode=query) or by auto-submitted form (form_post)."""
    browser = session or requests.Session()
    peer = _origin(issuer)
    response = browser.get(authorization_url, allow_redirects=False, timeout=10)
    for _ in range(max_steps):
        if response.is_redirect:
            target = urljoin(response.url, response.headers["Location"])
            if _origin(target) != peer:
                return PeerCallback(
                    target.split("?")[0], dict(parse_qsl(urlsplit(target).query)), "GET"
                )
            response = browser.get(target, allow_redirects=False, timeout=10)
            continue
        if response.status_code != 200:
            raise PeerError(f"peer answered {response.status_code}: {response.text[:500]}")
        page = _Page()
        page.feed(response.text)
        if page.forms and _origin(urljoin(response.url, page.forms[0]["action"])) != peer:
            form = page.forms[0]  # form_post: the browser would submit it to the callback
            return PeerCallback(
                urljoin(response.url, form["action"]), form["inputs"], form["method"]
            )
        if "cancel" in page.links and cancel:
            response = browser.get(
                urljoin(response.url, page.links["cancel"]), allow_redirects=False, timeout=10
            )
            continue
        login = next((f for f in page.forms if "login" in f["inputs"]), None)
        if login is None:
            raise PeerError(f"unexpected peer page: {response.text[:500]}")
        response = browser.post(
            urljoin(response.url, login["action"]),
            data={**login["inputs"], "login": account},
            allow_redirects=False,
            timeout=10,
        )
    raise PeerError("the peer's login did not come back to the callback")


@contextmanager
def start_oidc_peer(
    *,
    accounts: dict[str, dict[str, Any]] | None = None,
    redirect_uris: tuple[str, ...] = (REDIRECT_URI,),
    loopback_redirects: bool = True,
    client_id: str = CLIENT_ID,
    client_secret: str = CLIENT_SECRET,
) -> Iterator[OidcPeer]:
    """Install (once) and run the peer until the block ends."""
    folder = installed_peer()
    script = folder / "oidc-peer.mjs"
    tmp = folder / f".oidc-peer.{os.getpid()}.mjs"
    tmp.write_bytes((PEERS / "oidc-peer.mjs").read_bytes())
    tmp.replace(script)  # the script must sit next to node_modules to import it
    port = free_port()
    accounts = ACCOUNTS if accounts is None else accounts
    env = {
        **os.environ,
        "PEER_PORT": str(port),
        "PEER_CLIENT_ID": client_id,
        "PEER_CLIENT_SECRET": client_secret,
        "PEER_REDIRECT_URIS": ",".join(redirect_uris),
        "PEER_ACCOUNTS": json.dumps(accounts),
        "PEER_LOOPBACK_REDIRECTS": "1" if loopback_redirects else "0",
    }
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        ["node", str(script)], cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    issuer = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                log.seek(0)
                raise PeerError(
                    f"the OIDC peer exited ({process.returncode}):\n"
                    f"{log.read().decode(errors='replace')}"
                )
            try:
                if (
                    requests.get(
                        f"{issuer}/.well-known/openid-configuration", timeout=1
                    ).status_code
                    == 200
                ):
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise PeerError("the OIDC peer did not answer discovery within 30 s")
            time.sleep(0.1)
        yield OidcPeer(
            issuer=issuer,
            client_id=client_id,
            client_secret=client_secret,
            redirect_uri=redirect_uris[0],
            accounts=accounts,
            loopback_redirects=loopback_redirects,
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
