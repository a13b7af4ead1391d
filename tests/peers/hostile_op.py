"""A HOSTILE OpenID provider of ours, for tests only: a small HTTP server in a thread that
serves discovery, JWKS, /authorize and /token like an honest OP, until a test sets
`behaviour` to one of the attacks or failures in `BEHAVIOURS` (alg none, HS256 signed with
the RSA public key, wrong aud/iss/nonce, expired, unpublished kid, jku/jwk headers pointing
at attacker keys, a 5 MB token, garbage, HTTP 500, a slow answer...).

It exists because the real peer (npm oidc-provider) cannot be made to misbehave; it is not
a stand-in for it. It counts the requests it got per path (`hits`), so tests can see the
JWKS refetch happen once and no more.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from joserfc import jws
from joserfc.jwk import RSAKey

CLIENT_ID = "hostile-test-client"
CLIENT_SECRET = "hostile-test-secret-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
GOOD_KID = "good-key-1"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: Any) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


class HostileOP:
    """The server and what it will answer; `reset()` between tests."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": GOOD_KID, "use": "sig"})
        self.attacker_key = RSAKey.generate_key(2048, parameters={"kid": "attacker"})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.op = self  # type: ignore[attr-defined]
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.client_id = CLIENT_ID
        self.client_secret = CLIENT_SECRET
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with getattr(self, "lock", threading.Lock()):
            self.behaviour = "good"
            self.discovery_overrides: dict[str, Any] = {}
            self.extra_keys: list[RSAKey] = []  # published in addition to self.key
            self.codes: dict[str, dict[str, str]] = {}
            self.hits: Counter[str] = Counter()
            self.slow_seconds = 3.0

    @classmethod
    @contextmanager
    def running(cls) -> Iterator[HostileOP]:
        op = cls()
        thread = threading.Thread(target=op.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield op
        finally:
            op.server.shutdown()
            op.server.server_close()

    # what it serves

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "authorization_response_iss_parameter_supported": True,
            **self.discovery_overrides,
        }

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.as_dict(private=False) for k in [self.key, *self.extra_keys]]}

    def claims(self, nonce: str) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": self.issuer,
            "sub": "hostile-sub-1",
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
            "personal_code": "32123456785",
            "given_name": "Alise",
            "family_name": "Bērziņa",
            "acr": "urn:bank:high",
            "amr": ["mobileid"],
        }

    def sign(
        self,
        claims: dict[str, Any],
        key: RSAKey | None = None,
        header: dict[str, Any] | None = None,
    ) -> str:
        key = key or self.key
        return jws.serialize_compact(
            {"alg": "RS256", "kid": key.kid, **(header or {})},
            json.dumps(claims).encode(),
            key,
            algorithms=["RS256"],
        )

    def authorize(self, query: dict[str, str]) -> str:
        """Log in at once; the redirect back, with the code bound to nonce and PKCE."""
        code = secrets.token_urlsafe(16)
        with self.lock:
            self.codes[code] = {
                "nonce": query.get("nonce", ""),
                "challenge": query.get("code_challenge", ""),
                "redirect_uri": query.get("redirect_uri", ""),
            }
        back = {"code": code, "state": query.get("state", ""), "iss": self.issuer}
        return f"{query['redirect_uri']}?{urlencode(back)}"


def _good(op: HostileOP, nonce: str) -> str:
    return op.sign(op.claims(nonce))


def _alg_none(op: HostileOP, nonce: str) -> str:
    return f"{b64json({'alg': 'none', 'kid': GOOD_KID})}.{b64json(op.claims(nonce))}."


def _hs256_with_public_key(op: HostileOP, nonce: str) -> str:
    # Algorithm confusion: HMAC keyed with the RSA public key everybody can download.
    secret = op.key.as_pem(private=False)
    signing_input = f"{b64json({'alg': 'HS256', 'kid': GOOD_KID})}.{b64json(op.claims(nonce))}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def _claims(**changes: Any) -> Callable[[HostileOP, str], str]:
    def token(op: HostileOP, nonce: str) -> str:
        claims = op.claims(nonce)
        for name, value in changes.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value(op) if callable(value) else value
        return op.sign(claims)

    return token


def _unknown_kid(op: HostileOP, nonce: str) -> str:
    return op.sign(op.claims(nonce), key=op.attacker_key, header={"kid": "never-published"})


def _jku(op: HostileOP, nonce: str) -> str:
    # Signed by the attacker's key, which the header says to fetch from the attacker.
    return op.sign(
        op.claims(nonce),
        key=op.attacker_key,
        header={"kid": GOOD_KID, "jku": f"{op.issuer}/attacker-jwks"},
    )


def _jwk_header(op: HostileOP, nonce: str) -> str:
    return op.sign(
        op.claims(nonce),
        key=op.attacker_key,
        header={"kid": GOOD_KID, "jwk": op.attacker_key.as_dict(private=False)},
    )


def _wrong_key_same_kid(op: HostileOP, nonce: str) -> str:
    return op.sign(op.claims(nonce), key=op.attacker_key, header={"kid": GOOD_KID})


# behaviour -> the ID token the token endpoint answers with (the non-token failures are
# handled in _Handler.token).
BEHAVIOURS: dict[str, Callable[[HostileOP, str], str]] = {
    "good": _good,
    "alg_none": _alg_none,
    "hs256_public_key": _hs256_with_public_key,
    "wrong_aud": _claims(aud="someone-else"),
    "several_aud_no_azp": _claims(aud=lambda op: [op.client_id, "someone-else"]),
    "wrong_azp": _claims(azp="someone-else"),
    "wrong_iss": _claims(iss="https://evil.example"),
    "expired": _claims(
        exp=lambda op: int(time.time()) - 3600, iat=lambda op: int(time.time()) - 4000
    ),
    "future_iat": _claims(iat=lambda op: int(time.time()) + 3600),
    "no_exp": _claims(exp=None),
    "wrong_nonce": _claims(nonce="not-the-nonce-we-sent"),
    "no_nonce": _claims(nonce=None),
    "unknown_kid": _unknown_kid,
    "jku_header": _jku,
    "jwk_header": _jwk_header,
    "wrong_key_same_kid": _wrong_key_same_kid,
    "garbled_code": _claims(personal_code="not-a-code"),
    "no_code": _claims(personal_code=None),
}
FAILURES = (
    "huge",
    "huge_unannounced",
    "garbage",
    "not_an_object",
    "http_500",
    "slow",
    "no_id_token",
    "id_token_not_jws",
    "token_500_always",
    "token_invalid_request_always",
)


class _Handler(BaseHTTPRequestHandler):
    server: Any

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
        pass

    @property
    def op(self) -> HostileOP:
        return self.server.op

    def send(
        self, status: int, body: bytes, content_type: str = "application/json", length: bool = True
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (too large, too slow): that is the point

    def send_json(self, value: Any, status: int = 200) -> None:
        self.send(status, json.dumps(value).encode())

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        url = urlsplit(self.path)
        self.op.hits[url.path] += 1
        if url.path == "/.well-known/openid-configuration":
            self.send_json(self.op.discovery())
        elif url.path == "/jwks":
            self.send_json(self.op.jwks())
        elif url.path == "/attacker-jwks":
            self.send_json({"keys": [self.op.attacker_key.as_dict(private=False)]})
        elif url.path == "/authorize":
            self.send_response(302)
            self.send_header("Location", self.op.authorize(dict(parse_qsl(url.query))))
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_json({"error": "not_found"}, 404)

    def do_POST(self) -> None:  # noqa: N802 (stdlib name)
        url = urlsplit(self.path)
        self.op.hits[url.path] += 1
        length = int(self.headers.get("Content-Length") or 0)
        form = dict(parse_qsl(self.rfile.read(length).decode()))
        if url.path != "/token":
            self.send_json({"error": "not_found"}, 404)
            return
        self.token(form)

    def token(self, form: dict[str, str]) -> None:
        op = self.op
        # Answers before any client authentication (what `idp providers check` must report).
        if op.behaviour == "token_500_always":
            self.send(500, b"<html>Internal Server Error</html>", "text/html")
            return
        if op.behaviour == "token_invalid_request_always":
            self.send_json({"error": "invalid_request"}, 400)
            return
        expected = base64.b64encode(f"{op.client_id}:{op.client_secret}".encode()).decode()
        if self.headers.get("Authorization") != f"Basic {expected}":
            self.send_json({"error": "invalid_client"}, 401)
            return
        with op.lock:
            grant = op.codes.pop(form.get("code", ""), None)
        verifier = form.get("code_verifier", "")
        challenge = b64(hashlib.sha256(verifier.encode()).digest())
        if (
            grant is None
            or grant["challenge"] != challenge
            or grant["redirect_uri"] != form.get("redirect_uri")
        ):
            self.send_json({"error": "invalid_grant"}, 400)
            return
        behaviour = op.behaviour
        if behaviour == "http_500":
            self.send(500, b"<html>Internal Server Error</html>", "text/html")
        elif behaviour == "garbage":
            self.send(200, b'{"id_token": "eyJ\x00\xff garbage', "application/json")
        elif behaviour == "not_an_object":
            self.send_json(["id_token"])
        elif behaviour == "slow":
            time.sleep(op.slow_seconds)
            self.send_json({"id_token": _good(op, grant["nonce"]), "token_type": "Bearer"})
        elif behaviour in ("huge", "huge_unannounced"):
            blob = b64(b"x" * (5 * 1024 * 1024))
            body = json.dumps({"id_token": f"{blob}.{blob}.{blob}"}).encode()
            self.send(200, body, length=behaviour == "huge")
            self.close_connection = True
        elif behaviour == "no_id_token":
            self.send_json({"access_token": "at", "token_type": "Bearer"})
        elif behaviour == "id_token_not_jws":
            self.send_json({"id_token": "a.b", "token_type": "Bearer"})
        else:
            token = BEHAVIOURS[behaviour](op, grant["nonce"])
            self.send_json({"access_token": "at", "token_type": "Bearer", "id_token": token})
