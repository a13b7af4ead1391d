"""DEMO bank — not a real bank. A minimal OpenID provider mounted at /demo-bank/ in demo
mode only, so a newcomer can register and log in "by internet bank" without one.

It is still a correct provider, because the IdP's generic OIDC connector talks to it like to
any bank: discovery (with RFC 9207 `iss` in responses), its own ES256 key (generated in the
process at start-up: a restart invalidates nothing that matters for a demo), authorization
code with PKCE S256 required, `client_secret_basic` at the token endpoint, single-use codes,
and an ID token carrying the demo person's personal code. State lives in this process only
(no database): run the demo with one app process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    jsonify,
    redirect,
    request,
)
from flask_wtf import CSRFProtect
from joserfc import jwt
from joserfc.jwk import ECKey
from werkzeug.wrappers import Response as BaseResponse

from idp.web import html_page

bp = Blueprint("demo_bank", __name__, url_prefix="/demo-bank")

# The client the IdP is at this bank (idp demo seed registers the same values).
CLIENT_ID = "demo-idp"
CLIENT_SECRET = "demo-bank-secret-not-for-production"  # noqa: S105 (demo mode only)
ACR = "urn:demo-bank:substantial"
# The demo customers (idp/demo/seed.py), and Ilze, who is nobody's customer (the person a
# contractor adds as an additional user in the README walkthrough): personal code ->
# (given name, family name).
PEOPLE = {
    "32123456785": ("Jānis", "Bērziņš"),
    "01019010001": ("Anna", "Liepa"),
    "32098765438": ("Pēteris", "Ozols"),
    "15058510006": ("Ilze", "Kalniņa"),
}
SCOPES = ("openid", "profile")
# Seconds: a paused authorization request, a code, an access token, an ID token.
REQUEST_LIFETIME = 600
CODE_LIFETIME = 60
TOKEN_LIFETIME = 300
ALG = "ES256"


@dataclass
class _Request:
    client_id: str
    redirect_uri: str
    state: str | None
    nonce: str | None
    code_challenge: str
    scope: str
    expires_at: float


@dataclass
class _Code:
    request: _Request
    personal_code: str
    auth_time: int
    expires_at: float


@dataclass
class DemoBank:
    """The bank's key and what it keeps between requests, guarded by one lock."""

    key: ECKey
    kid: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: dict[str, _Request] = field(default_factory=dict)
    codes: dict[str, _Code] = field(default_factory=dict)
    tokens: dict[str, tuple[str, float]] = field(default_factory=dict)

    @classmethod
    def create(cls) -> DemoBank:
        key = ECKey.import_key(ec.generate_private_key(ec.SECP256R1()))
        return cls(key=key, kid=f"demo-bank-{secrets.token_urlsafe(8)}")

    def _purge(self, now: float) -> None:
        for table in (self.requests, self.codes):
            for k in [k for k, v in table.items() if v.expires_at <= now]:
                del table[k]
        for k in [k for k, (_, exp) in self.tokens.items() if exp <= now]:
            del self.tokens[k]

    def pause(self, pending: _Request) -> str:
        request_id = secrets.token_urlsafe(24)
        with self.lock:
            self._purge(time.time())
            self.requests[request_id] = pending
        return request_id

    def resume(self, request_id: str) -> _Request | None:
        """The paused request, once: a second decision for it finds nothing."""
        with self.lock:
            pending = self.requests.pop(request_id, None)
        return pending if pending and pending.expires_at > time.time() else None

    def issue_code(self, pending: _Request, personal_code: str) -> str:
        code = secrets.token_urlsafe(32)
        now = time.time()
        with self.lock:
            self.codes[code] = _Code(pending, personal_code, int(now), now + CODE_LIFETIME)
        return code

    def redeem(self, code: str) -> _Code | None:
        """Single use: the code leaves the table the moment it is redeemed."""
        with self.lock:
            found = self.codes.pop(code, None)
        return found if found and found.expires_at > time.time() else None

    def issue_token(self, personal_code: str) -> str:
        token = secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[token] = (personal_code, time.time() + TOKEN_LIFETIME)
        return token

    def token_owner(self, token: str) -> str | None:
        with self.lock:
            found = self.tokens.get(token)
        return found[0] if found and found[1] > time.time() else None

    def jwks(self) -> dict[str, Any]:
        public = self.key.as_dict(private=False)
        public.update({"kid": self.kid, "alg": ALG, "use": "sig"})
        return {"keys": [public]}


def init_app(app: Flask, csrf: CSRFProtect) -> None:
    """Mount the demo bank (demo mode only: idp/pages.py decides)."""
    app.extensions["idp.demo_bank"] = DemoBank.create()
    # The token and userinfo endpoints authenticate the client / the token instead.
    csrf.exempt(token)
    csrf.exempt(userinfo)
    app.register_blueprint(bp)


def _bank() -> DemoBank:
    bank: DemoBank = current_app.extensions["idp.demo_bank"]
    return bank


def issuer_for(idp_issuer: str) -> str:
    return f"{idp_issuer}/demo-bank"


def issuer() -> str:
    return issuer_for(current_app.config["IDP_SETTINGS"].issuer)


def subject(personal_code: str) -> str:
    """Stable and opaque per person, like a bank's own `sub`."""
    return "demo-" + hashlib.sha256(f"demo-bank:{personal_code}".encode()).hexdigest()[:20]


def _redirect_uri_allowed(uri: str) -> bool:
    """The demo's client is the IdP itself: any callback on the IdP's own origin (the
    callback path belongs to the login pages; exact registration is what a real bank does)."""
    ours, theirs = urlsplit(current_app.config["IDP_SETTINGS"].issuer), urlsplit(uri)
    return (
        (theirs.scheme, theirs.netloc) == (ours.scheme, ours.netloc)
        and not theirs.fragment
        and "#" not in uri
        and theirs.path.startswith("/")
    )


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


# --- discovery and keys ------------------------------------------------------------------------


@bp.get("/.well-known/openid-configuration")
def discovery() -> Response:
    base = issuer()
    return jsonify(
        {
            "issuer": base,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "userinfo_endpoint": f"{base}/userinfo",
            "jwks_uri": f"{base}/jwks.json",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALG],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": list(SCOPES),
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "azp",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "acr",
                "personal_code",
                "given_name",
                "family_name",
                "name",
            ],
            "acr_values_supported": [ACR],
            "authorization_response_iss_parameter_supported": True,
        }
    )


@bp.get("/jwks.json")
def jwks() -> Response:
    return jsonify(_bank().jwks())


# --- authorization: choose a demo person -------------------------------------------------------


def _page(status: int = 200, **context: Any) -> Response:
    return html_page("demo_bank/authorize.html", status=status, people=PEOPLE, **context)


def _back(pending_redirect: str, state: str | None, **params: str) -> BaseResponse:
    """To the client's redirect URI with `state` and `iss` (RFC 6749 §4.1.2, RFC 9207)."""
    answer = dict(params)
    if state is not None:
        answer["state"] = state
    answer["iss"] = issuer()
    sep = "&" if urlsplit(pending_redirect).query else "?"
    return redirect(f"{pending_redirect}{sep}{urlencode(answer)}", 302)


@bp.get("/authorize")
def authorize() -> BaseResponse:
    args = request.args
    client_id, redirect_uri = args.get("client_id", ""), args.get("redirect_uri", "")
    # An unknown client or redirect URI is never redirected to (RFC 6749 §4.1.2.1).
    if client_id != CLIENT_ID:
        return _page(400, error="Unknown client_id.")
    if not _redirect_uri_allowed(redirect_uri):
        return _page(400, error="This redirect_uri is not registered for the client.")
    state = args.get("state")

    def refuse(error: str, description: str) -> BaseResponse:
        return _back(redirect_uri, state, error=error, error_description=description)

    if args.get("response_type") != "code":
        return refuse("unsupported_response_type", "only response_type=code")
    scopes = args.get("scope", "").split()
    if "openid" not in scopes:
        return refuse("invalid_scope", "the openid scope is required")
    challenge = args.get("code_challenge", "")
    if args.get("code_challenge_method") != "S256" or not 43 <= len(challenge) <= 128:
        return refuse("invalid_request", "PKCE with code_challenge_method=S256 is required")
    pending = _Request(
        client_id=client_id,
        redirect_uri=redirect_uri,
        state=state,
        nonce=args.get("nonce"),
        code_challenge=challenge,
        scope=" ".join(s for s in scopes if s in SCOPES),
        expires_at=time.time() + REQUEST_LIFETIME,
    )
    return _page(request_id=_bank().pause(pending))


@bp.post("/authorize")
def decide() -> BaseResponse:
    """The person picked a demo person, or cancelled (CSRF-protected form)."""
    pending = _bank().resume(request.form.get("request", ""))
    if pending is None:
        return _page(
            400,
            error="This login request is unknown, used or expired. Start again from the portal.",
        )
    if "cancel" in request.form:
        return _back(
            pending.redirect_uri,
            pending.state,
            error="access_denied",
            error_description="the person cancelled the login",
        )
    personal_code = request.form.get("person", "")
    if personal_code not in PEOPLE:
        return _back(
            pending.redirect_uri,
            pending.state,
            error="access_denied",
            error_description="no such demo person",
        )
    code = _bank().issue_code(pending, personal_code)
    return _back(pending.redirect_uri, pending.state, code=code)


# --- token and userinfo --------------------------------------------------------------------------


def _token_error(error: str, description: str, status: int = 400) -> Response:
    response = jsonify({"error": error, "error_description": description})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="demo-bank"'
    return _no_store(response)


def _client_authenticated() -> bool:
    """client_secret_basic (RFC 6749 §2.3.1: form-urlencoded id and secret)."""
    auth = request.authorization
    if auth is None or auth.type != "basic":
        return False
    return hmac.compare_digest(
        (auth.username or "").encode(), CLIENT_ID.encode()
    ) and hmac.compare_digest((auth.password or "").encode(), CLIENT_SECRET.encode())


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@bp.post("/token")
def token() -> Response:
    if not _client_authenticated():
        return _token_error("invalid_client", "client_secret_basic with the demo client", 401)
    form = request.form
    if form.get("grant_type") != "authorization_code":
        return _token_error("unsupported_grant_type", "only authorization_code")
    found = _bank().redeem(form.get("code", ""))
    if found is None:
        return _token_error("invalid_grant", "unknown, used or expired code")
    pending = found.request
    if pending.client_id != CLIENT_ID or form.get("redirect_uri") != pending.redirect_uri:
        return _token_error("invalid_grant", "redirect_uri differs from the authorization request")
    verifier = form.get("code_verifier", "")
    if not (
        43 <= len(verifier) <= 128
        and verifier.isascii()
        and hmac.compare_digest(_s256(verifier), pending.code_challenge)
    ):
        return _token_error("invalid_grant", "PKCE verification failed")
    now = int(time.time())
    given, family = PEOPLE[found.personal_code]
    claims: dict[str, Any] = {
        "iss": issuer(),
        "sub": subject(found.personal_code),
        "aud": CLIENT_ID,
        "azp": CLIENT_ID,
        "iat": now,
        "exp": now + TOKEN_LIFETIME,
        "auth_time": found.auth_time,
        "acr": ACR,
        "personal_code": found.personal_code,
        "given_name": given,
        "family_name": family,
        "name": f"{given} {family}",
    }
    if pending.nonce is not None:
        claims["nonce"] = pending.nonce
    bank = _bank()
    id_token = jwt.encode(
        {"alg": ALG, "kid": bank.kid, "typ": "JWT"}, claims, bank.key, algorithms=[ALG]
    )
    return _no_store(
        jsonify(
            {
                "access_token": bank.issue_token(found.personal_code),
                "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME,
                "id_token": id_token,
                "scope": pending.scope,
            }
        )
    )


@bp.route("/userinfo", methods=["GET", "POST"])
def userinfo() -> Response:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    personal_code = _bank().token_owner(value.strip()) if scheme.lower() == "bearer" else None
    if personal_code is None:
        response = jsonify({"error": "invalid_token"})
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return _no_store(response)
    given, family = PEOPLE[personal_code]
    return _no_store(
        jsonify(
            {
                "sub": subject(personal_code),
                "personal_code": personal_code,
                "given_name": given,
                "family_name": family,
                "name": f"{given} {family}",
            }
        )
    )
