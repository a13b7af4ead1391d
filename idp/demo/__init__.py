"""A demo relying page (registered in demo mode only) that logs in through the IdP like any
relying app would: over HTTP, with Authlib's client, PKCE, state, nonce, and an ID token
verified against the published JWKS. With the access token it then calls the example
resource servers (examples/, mounted in demo mode), which decide from the token alone.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from flask import Blueprint, Response, current_app, redirect, request, session
from flask_babel import gettext as _
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from werkzeug.wrappers import Response as BaseResponse

from idp.demo.seed import (
    DEMO_SCOPES,
    INVOICE_SERVICE_PREFIX,
    METER_SERVICE_PREFIX,
    PUBLIC_CLIENT_ID,
)
from idp.web import app_settings, html_page

bp = Blueprint("demo", __name__, url_prefix="/demo")


@bp.app_template_filter("readable_json")
def readable_json(value: object) -> str:
    """JSON as a person reads it on the demo page: indented, "Jānis" not "J\\u0101nis"
    (Jinja's tojson escapes for script tags; this text is autoescaped inside <pre>)."""
    return json.dumps(value, ensure_ascii=False, indent=2)


HTTP_TIMEOUT = 5


def _issuer() -> str:
    return app_settings().issuer


def _client() -> OAuth2Session:
    return OAuth2Session(
        PUBLIC_CLIENT_ID,
        redirect_uri=f"{_issuer()}/demo/callback",
        scope=" ".join(DEMO_SCOPES),
        token_endpoint_auth_method="none",  # noqa: S106 (a method name)
    )


@bp.get("/")
def index() -> Response:
    return html_page(
        "demo/index.html",
        result=session.pop("demo_result", None),
        answer=session.pop("demo_answer", None),
        logged_in="demo_access_token" in session,
    )


@bp.post("/start")
def start() -> BaseResponse:
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(16)
    uri, state = _client().create_authorization_url(
        f"{_issuer()}/authorize",
        nonce=nonce,
        code_challenge=create_s256_code_challenge(verifier),
        code_challenge_method="S256",
        prompt=request.form.get("prompt") or None,
    )
    session["demo"] = {"state": state, "nonce": nonce, "verifier": verifier}
    return redirect(uri, 302)


@bp.get("/callback")
def callback() -> BaseResponse | str:
    pending = session.pop("demo", None)
    if pending is None or request.args.get("state") != pending["state"]:
        return _fail(_("The answer does not belong to a login started here. Start again."))
    if request.args.get("iss") != _issuer():
        return _fail(_("The answer came from an unexpected issuer."))
    if "error" in request.args:
        return _fail(_("The IdP answered: %(error)s", error=request.args.get("error", "")[:80]))
    try:
        result = _finish(request.args.get("code", ""), pending)
    except (requests.RequestException, JoseError, ValueError, KeyError) as exc:
        current_app.logger.warning("demo login failed: %s", exc)
        return _fail(_("The login could not be completed: %(reason)s", reason=str(exc)[:200]))
    session["demo_access_token"] = result.pop("access_token")
    session["demo_result"] = result
    return redirect(f"{_issuer()}/demo/", 302)


@bp.post("/call/<service>")
def call_service(service: str) -> BaseResponse:
    """Call an example resource server with the access token, as the portal would, and
    show its answer (the status and body, errors included)."""
    token = session.get("demo_access_token")
    if token is None or service not in ("invoices", "reading"):
        return redirect(f"{_issuer()}/demo/", 302)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        if service == "invoices":
            answer = requests.get(
                f"{_issuer()}{INVOICE_SERVICE_PREFIX}/invoices",
                headers=headers,
                timeout=HTTP_TIMEOUT,
            )
        else:
            answer = requests.post(
                f"{_issuer()}{METER_SERVICE_PREFIX}/readings",
                headers=headers,
                timeout=HTTP_TIMEOUT,
                data={
                    "meter": request.form.get("meter", "")[:64],
                    "value": request.form.get("value", "")[:64],
                },
            )
        body = answer.json()
    except (requests.RequestException, ValueError) as exc:
        return _fail(_("The service could not be reached: %(reason)s", reason=str(exc)[:200]))
    session["demo_answer"] = {
        "service": service,
        "status": answer.status_code,
        "body": body,
        "challenge": answer.headers.get("WWW-Authenticate", ""),
    }
    return redirect(f"{_issuer()}/demo/", 302)


def _finish(code: str, pending: dict[str, str]) -> dict[str, Any]:
    client = _client()
    token = client.fetch_token(
        f"{_issuer()}/token", code=code, code_verifier=pending["verifier"], timeout=HTTP_TIMEOUT
    )
    jwks = requests.get(f"{_issuer()}/jwks.json", timeout=HTTP_TIMEOUT).json()
    verified = jwt.decode(
        token["id_token"], KeySet.import_key_set(jwks), algorithms=["RS256", "ES256"]
    )
    registry = jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": _issuer()},
        aud={"essential": True, "value": PUBLIC_CLIENT_ID},
        nonce={"essential": True, "value": pending["nonce"]},
        exp={"essential": True},
    )
    registry.validate(verified.claims)
    userinfo = requests.get(
        f"{_issuer()}/userinfo",
        timeout=HTTP_TIMEOUT,
        headers={"Authorization": f"Bearer {token['access_token']}"},
    ).json()
    return {
        "id_token_claims": verified.claims,
        "userinfo": userinfo,
        "id_token": token["id_token"],
        "scope": token.get("scope", ""),
        "access_token": token["access_token"],
    }


def _fail(message: str) -> Response:
    return html_page("demo/index.html", status=400, error=message, result=None)
