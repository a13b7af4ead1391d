"""Protocol endpoints. They answer JSON errors as the RFCs spell them; the authorization
and logout endpoints, which a browser sees, answer HTML pages where they cannot redirect.
"""

from __future__ import annotations

import json
from typing import Any

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error
from flask import (
    Blueprint,
    Response,
    current_app,
    redirect,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from idp import i18n, interactions
from idp.accounts import cookies
from idp.accounts.services import end_browser_session
from idp.assurance import ASSURANCE_LEVELS
from idp.db import db_session, read_only_session, utcnow
from idp.memberships.acting import acting_options
from idp.memberships.labels import role_label
from idp.oidc import authorize, endpoints
from idp.oidc.forms import SelectCustomerForm
from idp.oidc.server import IdpAuthorizationServer, answer_response
from idp.oidc.tokens import ACCESS_TOKEN_TYPE
from idp.security import hash_secret, new_token
from idp.web import html_page

bp = Blueprint("oidc", __name__)


def server() -> IdpAuthorizationServer:
    oauth_server: IdpAuthorizationServer = current_app.extensions["idp.oauth_server"]
    return oauth_server


def _json(body: dict[str, Any], status: int = 200, **headers: str) -> Response:
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    response.headers.update(headers)
    return response


# --- discovery and keys --------------------------------------------------------------------


@bp.get("/.well-known/openid-configuration")
@bp.get("/.well-known/oauth-authorization-server")
def discovery() -> Response:
    body: bytes = current_app.extensions["idp.discovery_json"]
    return Response(
        body, mimetype="application/json", headers={"Cache-Control": "public, max-age=300"}
    )


@bp.get("/jwks.json")
def jwks() -> Response:
    settings = current_app.config["IDP_SETTINGS"]
    return Response(
        server().keyring.jwks_json(),
        mimetype="application/jwk-set+json",
        headers={"Cache-Control": f"public, max-age={settings.jwks_max_age}"},
    )


# --- authorization endpoint ------------------------------------------------------------------


@bp.route("/authorize", methods=["GET", "POST"])
def authorize_endpoint() -> BaseResponse:
    params = request.args if request.method == "GET" else request.form
    # The request's language for the pages of this sign-in; it is stored with the paused
    # request (Interaction.params), where every later page finds it (idp.i18n).
    i18n.speak_for_sign_in(params.get("ui_locales", "")[:256])
    browser = cookies.current_browser_session()
    # One binding value per browser (kept while it lives, so other tabs keep theirs).
    binding = cookies.interaction_binding() or new_token(24)
    outcome = authorize.process(
        db_session(), server(), params, browser, browser_hash=hash_secret(binding)
    )
    response = _answer(outcome, params.get("client_id"))
    if outcome.interaction_id:  # a request paused: bind it to this browser
        cookies.set_interaction_binding(response, binding)
    return response


@bp.get("/authorize/resume")
def resume() -> BaseResponse:
    """Continue a paused request after login or consent (same browser only)."""
    interaction_id = request.args.get("interaction", "")
    interaction = interactions.paused_here(db_session(), interaction_id)
    if interaction is None or not interactions.belongs_to_browser(
        interaction, cookies.interaction_binding()
    ):
        return interactions.expired_page(db_session(), interaction_id)
    browser = cookies.current_browser_session()
    params = interactions.interaction_params(interaction)
    return _answer(
        authorize.process(db_session(), server(), params, browser, interaction),
        params.get("client_id"),
    )


def _answer(outcome: authorize.Outcome, client_id: str | None = None) -> BaseResponse:
    if outcome.kind == "redirect":
        return redirect(outcome.location, code=302)
    if outcome.kind == "error_page":
        return interactions.error_page(
            outcome.error, outcome.description, message=outcome.message or None
        )
    interactions.remember_in_browser(outcome.interaction_id, client_id)
    endpoint = {
        "login": "accounts.login",
        "contact": "accounts.contact",
        "select_customer": "oidc.select_customer",
    }.get(outcome.kind, "consent.consent_page")
    return redirect(url_for(endpoint, interaction=outcome.interaction_id), code=302)


@bp.route("/act-for", methods=["GET", "POST"])
def select_customer() -> BaseResponse:
    """Whom the person acts for in this request (several memberships; DOMAIN.md)."""
    db = db_session()
    interaction = interactions.paused_here(db, request.values.get("interaction", ""))
    if interaction is None:
        return interactions.expired_page(db, request.values.get("interaction", ""))
    browser = cookies.current_browser_session()
    if browser is None:
        return redirect(url_for("accounts.login", interaction=interaction.id), 302)
    options = acting_options(db, browser.user_id, utcnow())
    form = SelectCustomerForm()
    form.customer.choices = [(o.customer_id, o.customer_name) for o in options]
    error = None
    if form.validate_on_submit():
        if authorize.choose_customer(db, interaction, browser, form.customer.data):
            db.commit()
            return redirect(url_for("oidc.resume", interaction=interaction.id), 302)
    if request.method == "POST":
        error = _("Choose one of the customers below and press Continue.")
    form.interaction.data = interaction.id
    client = server().query_client(interactions.interaction_params(interaction).get("client_id"))
    return html_page(
        "oidc/select_customer.html",
        status=400 if error else 200,
        form=form,
        options=options,
        error=error,
        role_label=role_label,
        client_name=client.name if client else "",
    )


# --- token, userinfo, revocation, introspection ------------------------------------------------


@bp.post("/token")
def token() -> Response:
    return server().create_token_response()


@bp.post("/revoke")
def revoke() -> Response:
    response: Response = server().create_endpoint_response("revocation")
    return response


@bp.post("/introspect")
def introspect() -> Response:
    response: Response = server().create_endpoint_response("introspection")
    return response


@bp.route("/userinfo", methods=["GET", "POST"])
def userinfo() -> Response:
    answer = endpoints.userinfo(
        read_only_session(),
        server().keyring,
        server().settings,
        request.headers.get("Authorization", ""),
    )
    return answer_response(answer)


# --- RP-initiated logout ---------------------------------------------------------------------


@bp.route("/logout", methods=["GET", "POST"])
def end_session() -> BaseResponse:
    """OIDC RP-Initiated Logout 1.0. Redirects only to a post_logout_redirect_uri registered
    exactly for the client the id_token_hint names; otherwise shows our own page."""
    params = request.values
    hint_claims = _id_token_hint_claims(params.get("id_token_hint"))
    client_id = params.get("client_id") or (hint_claims or {}).get("aud")
    client = server().query_client(client_id) if isinstance(client_id, str) else None
    target = params.get("post_logout_redirect_uri")
    redirect_to = None
    if (
        target
        and client is not None
        and target in client.post_logout_redirect_uris
        and (hint_claims is None or hint_claims.get("aud") == client.client_id)
    ):
        redirect_to = target
        if params.get("state"):
            redirect_to = add_params_to_uri(target, [("state", params["state"][:512])])

    browser = cookies.current_browser_session()
    # Log out at once only when the hint proves the request comes from the session's own
    # relying party; otherwise ask, so a cross-site link cannot log anyone out.
    confirmed = browser is None or (
        hint_claims is not None and hint_claims.get("sid") == browser.sid
    )
    if not confirmed:
        session["logout_redirect"] = redirect_to
        return html_page("oidc/logout_confirm.html", client_name=client.name if client else None)
    return _finish_logout(redirect_to)


@bp.post("/logout/confirm")
def logout_confirm() -> BaseResponse:
    return _finish_logout(session.pop("logout_redirect", None))


def _finish_logout(redirect_to: str | None) -> BaseResponse:
    end_browser_session(db_session(), request.cookies.get(cookies.cookie_name()))
    db_session().commit()
    interactions.forget_in_browser()
    response = (
        redirect(redirect_to, 302) if redirect_to else redirect(url_for("oidc.logged_out"), 302)
    )
    cookies.clear_session_cookie(response)
    return response


@bp.get("/logged-out")
def logged_out() -> Response:
    return html_page("oidc/logged_out.html")


def _id_token_hint_claims(hint: str | None) -> dict[str, Any] | None:
    """Claims of an ID token we issued (signature and issuer checked; expiry is not, as the
    spec allows an expired hint)."""
    if not hint or len(hint) > 8192:
        return None
    verified = server().keyring.verify(hint)
    if verified is None or verified[0].get("typ") == ACCESS_TOKEN_TYPE:
        return None
    claims = verified[1]
    return claims if claims.get("iss") == server().settings.issuer else None


# --- errors ----------------------------------------------------------------------------------


@bp.errorhandler(OAuth2Error)
def _oauth_error(error: OAuth2Error) -> Response:
    status, body, headers = error()
    return _json(dict(body), status, **dict(headers))


def protocol_http_error(error: HTTPException) -> Response:
    """JSON for 404/405/413 on protocol paths (pages get HTML from the app handler)."""
    code = error.code or 400
    name = "not_found" if code == 404 else "server_error" if code >= 500 else "invalid_request"
    return _json(
        {"error": name, "error_description": error.description or ""},
        code,
        **{"Cache-Control": "no-store"},
    )


def discovery_document(
    issuer: str, scopes: tuple[str, ...], claims: tuple[str, ...], locales: list[str]
) -> bytes:
    auth_methods = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
    doc = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "jwks_uri": f"{issuer}/jwks.json",
        "revocation_endpoint": f"{issuer}/revoke",
        "introspection_endpoint": f"{issuer}/introspect",
        "end_session_endpoint": f"{issuer}/logout",
        "scopes_supported": list(scopes),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "token_endpoint_auth_methods_supported": [*auth_methods, "none"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256"],
        "revocation_endpoint_auth_methods_supported": [*auth_methods, "none"],
        "revocation_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256"],
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": list(claims),
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "authorization_response_iss_parameter_supported": True,
        "prompt_values_supported": sorted(authorize.SUPPORTED_PROMPTS),
        "acr_values_supported": list(ASSURANCE_LEVELS),
        "ui_locales_supported": locales,
        "claim_types_supported": ["normal"],
    }
    return json.dumps(doc, separators=(",", ":")).encode()
