"""The HTML surfaces: login, consent, and (in demo mode only) the demo relying page.
Every form is CSRF-protected; the protocol endpoints are exempt (they authenticate
clients instead)."""

from __future__ import annotations

from flask import Flask
from flask_wtf import CSRFProtect

from consent.views import bp as consent_bp
from idp.accounts.views import bp as accounts_bp
from idp.oidc import views as oidc_views


def init_app(app: Flask) -> None:
    csrf = CSRFProtect(app)
    app.register_blueprint(accounts_bp)
    app.register_blueprint(consent_bp)
    for view in (oidc_views.authorize_endpoint, oidc_views.token, oidc_views.revoke,
                 oidc_views.introspect, oidc_views.userinfo, oidc_views.end_session):
        csrf.exempt(view)
    if app.config["IDP_SETTINGS"].is_demo:
        from idp.demo import bp as demo_bp

        app.register_blueprint(demo_bp)
