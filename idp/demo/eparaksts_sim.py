"""DEMO eParaksts simulator — not the real service. A small WSGI app that follows the
published eParaksts protocol (OAuth 2.0 authorization code, client_secret_basic, then
`GET /trustedx-resources/openid/v1/users/me`) for tests and for `make run`.

No public test double of eParaksts exists; this one is ours. It answers like the real
service as far as its public integration docs go: `users/me` gives a `sub` that differs
per login method for the same person, the method's flow URN as `acr`, and the person's
`serial_number` (`PNOLV-DDMMYY-NNNNN`). A person is picked from a built-in list on a page
clearly marked DEMO.

Mounting: the simulator is its own Flask app, so the IdP's CSRF, session and security
headers never touch it. Serve it alone (tests: `werkzeug.serving.make_server`), or mount it
under a prefix inside the IdP with Werkzeug's dispatcher; its URLs follow SCRIPT_NAME::

    from werkzeug.middleware.dispatcher import DispatcherMiddleware
    sim = create_simulator({"idp-demo": SimClient("secret", ("http://…/callback",))})
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/demo/eparaksts": sim})
    # the connector's base_url is then f"{issuer}/demo/eparaksts"

State (pending requests, codes, tokens) lives in process memory behind a lock: one process
only (the Flask dev server, threaded, as `make run` uses; the IdP calls back into itself
for the token and users/me, so it must not be a single synchronous worker).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit, urlunsplit

from flask import Flask, Response, jsonify, render_template_string, request

AUTHORIZE_PATH = "/trustedx-authserver/oauth/lvrtc-eipsign-as"
TOKEN_PATH = AUTHORIZE_PATH + "/token"
USERS_ME_PATH = "/trustedx-resources/openid/v1/users/me"
SCOPE = "urn:lvrtc:fpeil:aa"
FLOW_PREFIX = "urn:eparaksts:authentication:flow:"
# The login methods (acr_values) the simulator offers, with what the page calls them.
FLOWS = {
    FLOW_PREFIX + "mobileid": "eParaksts Mobile",
    FLOW_PREFIX + "mobileid:cross-device": "eParaksts Mobile (other device)",
    FLOW_PREFIX + "sc_plugin": "eID card (smart card reader)",
    FLOW_PREFIX + "mobile-eid": "eID card (eID Scan)",
}
AMR_PREFIX = "urn:eparaksts:tws:policies:authentication:adaptive:methods:"
# Same person, different method → different `sub`, as the real service does.
_SUB_NAMESPACE = uuid.UUID("6f1d7a52-3c1e-4f7b-9a57-0e3f5c2b8d11")


@dataclass(frozen=True)
class TestPerson:
    """A DEMO person the simulator can log in."""

    __test__ = False  # not a pytest test class

    given_name: str
    family_name: str
    # As eParaksts writes it: "PNOLV-" + the first 6 digits + "-" + the last 5. Any other
    # string is answered as it is (the tests use foreign and malformed ones).
    serial_number: str

    def sub(self, flow: str) -> str:
        """A stable `sub` per person *and* method (eParaksts Mobile ≠ eID card)."""
        kind = "mobile" if "mobileid" in flow else "card"
        return str(uuid.uuid5(_SUB_NAMESPACE, f"{kind}:{self.serial_number}"))


def serial_number(personal_code: str) -> str:
    """`PNOLV-DDMMYY-NNNNN` for an 11-digit code (with or without its hyphen)."""
    digits = personal_code.replace("-", "")
    if len(digits) != 11 or not digits.isdigit():
        raise ValueError("a Latvian personal code has 11 digits")
    return f"PNOLV-{digits[:6]}-{digits[6:]}"


# The demo customers of idp/demo/seed.py, and one person who is no customer.
DEFAULT_PERSONS: tuple[TestPerson, ...] = (
    TestPerson("Jānis", "Bērziņš", serial_number("32123456785")),
    TestPerson("Anna", "Liepa", serial_number("010190-10001")),
    TestPerson("Pēteris", "Ozols", serial_number("32098765438")),
    TestPerson("Ilze", "Kalniņa", serial_number("32555555550")),
)


@dataclass(frozen=True)
class SimClient:
    """A registered client: its secret and the callback URLs it may use."""

    secret: str
    redirect_uris: tuple[str, ...]


@dataclass
class _Request:
    client_id: str
    redirect_uri: str
    state: str
    flows: tuple[str, ...]
    code_challenge: str | None
    expires_at: float


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    person: TestPerson
    flow: str
    code_challenge: str | None
    expires_at: float
    used: bool = False
    access_token: str | None = None


@dataclass
class _Token:
    person: TestPerson
    flow: str
    expires_at: float


@dataclass
class _State:
    """Everything in flight, behind one lock (the app serves requests on threads)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: dict[str, _Request] = field(default_factory=dict)
    codes: dict[str, _Code] = field(default_factory=dict)
    tokens: dict[str, _Token] = field(default_factory=dict)

    def prune(self, now: float) -> None:
        for table in (self.requests, self.codes, self.tokens):
            for key in [k for k, v in table.items() if v.expires_at <= now]:
                del table[key]


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>DEMO eParaksts simulator — not the real service</title>
<style>body{font-family:sans-serif;max-width:36em;margin:2em auto}
.demo{background:#b00020;color:#fff;padding:.5em 1em;font-weight:bold}</style></head>
<body><p class="demo">DEMO — this is a simulator, not the real eParaksts service.</p>
<h1>DEMO eParaksts simulator — not the real service</h1>
{% if error %}<p role="alert">{{ error }}</p>{% else %}
<form method="post" action="{{ action }}">
<input type="hidden" name="request_id" value="{{ request_id }}">
<fieldset><legend>Log in as test person</legend>
{% for p in persons %}<label><input type="radio" name="person" value="{{ p.serial_number }}"
 {% if loop.first %}checked{% endif %}> {{ p.given_name }} {{ p.family_name }}
 ({{ p.serial_number }})</label><br>{% endfor %}</fieldset>
<fieldset><legend>Method</legend>
{% for f in flows %}<label><input type="radio" name="flow" value="{{ f }}"
 {% if loop.first %}checked{% endif %}> {{ flow_names[f] }}</label><br>{% endfor %}</fieldset>
<p><button name="action" value="login">Log in</button>
<button name="action" value="cancel">Cancel</button></p>
</form>{% endif %}</body></html>"""


def create_simulator(
    clients: Mapping[str, SimClient],
    *,
    persons: Iterable[TestPerson] = DEFAULT_PERSONS,
    code_ttl: float = 60,
    token_ttl: float = 600,
    require_pkce: bool = False,
    clock: Callable[[], float] = time.monotonic,
) -> Flask:
    """The DEMO eParaksts simulator as a WSGI app. `clients` are the registered clients;
    `code_ttl`/`token_ttl` are seconds; `require_pkce` refuses an authorization request
    without S256 PKCE (otherwise PKCE is checked only when the client sent it)."""
    people = {p.serial_number: p for p in persons}
    registered = dict(clients)
    state = _State()
    app = Flask(__name__)

    def _redirect(uri: str, params: Mapping[str, str]) -> Response:
        parts = urlsplit(uri)
        query = "&".join(q for q in (parts.query, urlencode(params)) if q)
        response = Response(status=302)
        response.headers["Location"] = urlunsplit(parts._replace(query=query))
        return response

    def _page(error: str | None = None, status: int = 200, **values: Any) -> Response:
        html = render_template_string(_PAGE, error=error, flow_names=FLOWS, **values)
        return Response(html, status=status, mimetype="text/html")

    @app.get(AUTHORIZE_PATH)
    def authorize() -> Response:
        args = request.args
        client_id = args.get("client_id", "")
        redirect_uri = args.get("redirect_uri", "")
        client = registered.get(client_id)
        # RFC 6749 §4.1.2.1: never redirect to an unverified redirect_uri.
        if client is None:
            return _page("DEMO: unknown client_id.", 400)
        if redirect_uri not in client.redirect_uris:
            return _page("DEMO: redirect_uri is not registered for this client.", 400)
        given_state = args.get("state", "")
        if not given_state:
            return _redirect(
                redirect_uri, {"error": "invalid_request", "error_description": "state is required"}
            )
        err = {"state": given_state}
        if args.get("response_type") != "code":
            return _redirect(redirect_uri, {"error": "unsupported_response_type", **err})
        if SCOPE not in args.get("scope", "").split():
            return _redirect(redirect_uri, {"error": "invalid_scope", **err})
        requested = args.get("acr_values", "").split()
        flows = tuple(f for f in requested if f in FLOWS) if requested else tuple(FLOWS)
        if not flows or len(flows) != len(requested or flows):
            return _redirect(
                redirect_uri,
                {"error": "invalid_request", "error_description": "unknown acr_values", **err},
            )
        challenge = args.get("code_challenge")
        if challenge is not None and args.get("code_challenge_method") != "S256":
            return _redirect(
                redirect_uri,
                {"error": "invalid_request", "error_description": "only S256 PKCE", **err},
            )
        if require_pkce and challenge is None:
            return _redirect(
                redirect_uri,
                {"error": "invalid_request", "error_description": "PKCE required", **err},
            )
        request_id = secrets.token_urlsafe(24)
        with state.lock:
            now = clock()
            state.prune(now)
            state.requests[request_id] = _Request(
                client_id, redirect_uri, given_state, flows, challenge, now + 600
            )
        return _page(
            action=request.base_url,
            request_id=request_id,
            persons=list(people.values()),
            flows=flows,
        )

    @app.post(AUTHORIZE_PATH)
    def decide() -> Response:
        form = request.form
        with state.lock:
            pending = state.requests.get(form.get("request_id", ""))
            if pending is None or pending.expires_at <= clock():
                return _page("DEMO: this login request is unknown or expired; start again.", 400)
            person = people.get(form.get("person", ""))
            flow = form.get("flow", pending.flows[0])
            cancel = form.get("action") != "login"
            if not cancel and (person is None or flow not in pending.flows):
                return _page("DEMO: choose one of the listed persons and methods.", 400)
            # Answered once: the request is consumed by this decision.
            del state.requests[form["request_id"]]
        answer = {"state": pending.state}
        if cancel or person is None:
            return _redirect(pending.redirect_uri, {"error": "access_denied", **answer})
        code = secrets.token_urlsafe(32)
        with state.lock:
            state.codes[code] = _Code(
                pending.client_id,
                pending.redirect_uri,
                person,
                flow,
                pending.code_challenge,
                clock() + code_ttl,
            )
        return _redirect(pending.redirect_uri, {"code": code, **answer})

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    def _oauth_error(error: str, status: int = 400) -> Response:
        response = jsonify(error=error)
        response.status_code = status
        response.headers["Cache-Control"] = "no-store"
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="eparaksts-sim"'
        return response

    def _client_from_basic() -> str | None:
        """client_secret_basic (RFC 6749 §2.3.1: both parts form-urlencoded)."""
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            raw = base64.b64decode(header[6:], validate=True).decode("utf-8")
        except ValueError:
            return None
        client_id, sep, secret = raw.partition(":")
        client = registered.get(unquote(client_id))
        if (
            not sep
            or client is None
            or not hmac.compare_digest(unquote(secret).encode(), client.secret.encode())
        ):
            return None
        return unquote(client_id)

    @app.post(TOKEN_PATH)
    def token() -> Response:
        client_id = _client_from_basic()
        if client_id is None:
            return _oauth_error("invalid_client", 401)
        form = request.form
        if form.get("grant_type") != "authorization_code":
            return _oauth_error("unsupported_grant_type")
        with state.lock:
            now = clock()
            record = state.codes.get(form.get("code", ""))
            if record is None or record.expires_at <= now:
                return _oauth_error("invalid_grant")
            if record.used:
                # RFC 6749 §4.1.2: a reused code revokes what it issued.
                if record.access_token is not None:
                    state.tokens.pop(record.access_token, None)
                return _oauth_error("invalid_grant")
            record.used = True
            if record.client_id != client_id or record.redirect_uri != form.get("redirect_uri"):
                return _oauth_error("invalid_grant")
            if record.code_challenge is not None and not _pkce_ok(
                record.code_challenge, form.get("code_verifier", "")
            ):
                return _oauth_error("invalid_grant")
            access_token = secrets.token_urlsafe(32)
            record.access_token = access_token
            state.tokens[access_token] = _Token(record.person, record.flow, now + token_ttl)
        response = jsonify(
            access_token=access_token,
            token_type="Bearer",  # noqa: S106
            expires_in=int(token_ttl),
            scope=SCOPE,
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get(USERS_ME_PATH)
    def users_me() -> Response:
        header = request.headers.get("Authorization", "")
        with state.lock:
            grant = state.tokens.get(header[7:]) if header.startswith("Bearer ") else None
            if grant is not None and grant.expires_at <= clock():
                grant = None
        if grant is None:
            response = jsonify(error="invalid_token")
            response.status_code = 401
            response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
            return response
        person = grant.person
        method = grant.flow[len(FLOW_PREFIX) :]
        return jsonify(
            sub=person.sub(grant.flow),
            domain="citizen",
            acr=grant.flow,
            amr=[AMR_PREFIX + method],
            given_name=person.given_name,
            family_name=person.family_name,
            name=f"{person.given_name} {person.family_name}",
            serial_number=person.serial_number,
        )

    return app


def _pkce_ok(challenge: str, verifier: str) -> bool:
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return hmac.compare_digest(expected.encode(), challenge.encode())
