"""The protocol surface: the Authlib server, discovery, JWKS, tokens, userinfo, logout."""

from __future__ import annotations

from flask import Flask

from idp.consent.scopes import SUPPORTED_SCOPES
from idp.keys import KeyRing
from idp.oidc.claims import SUPPORTED_CLAIMS
from idp.oidc.server import build_authorization_server
from idp.oidc.views import bp, discovery_document


def init_app(app: Flask) -> None:
    settings = app.config["IDP_SETTINGS"]
    keyring = KeyRing(settings, app.extensions["idp.engine"])
    app.extensions["idp.keyring"] = keyring
    app.extensions["idp.oauth_server"] = build_authorization_server(settings, keyring)
    app.extensions["idp.discovery_json"] = discovery_document(
        settings.issuer, SUPPORTED_SCOPES, SUPPORTED_CLAIMS, settings.locales
    )
    app.before_request(keyring.refresh_before_request)
    app.register_blueprint(bp)
