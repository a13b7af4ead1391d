"""The HTML surfaces: the account pages (login, registration, bank and eSignature logins),
consent, and (in demo mode only) the demo relying page with the simulated bank and
eParaksts; the USERS section and the invitation page are registered by create_app.
Every form is CSRF-protected; the protocol endpoints are exempt (they authenticate
clients instead)."""

from __future__ import annotations

from flask import Flask
from flask_wtf import CSRFProtect

from idp.accounts.cookies import logged_in_language
from idp.accounts.upstream_views import bp as upstream_bp
from idp.accounts.upstream_views import callback as upstream_callback
from idp.accounts.views import bp as accounts_bp
from idp.consent.views import bp as consent_bp
from idp.i18n import ACCOUNT_LANGUAGE
from idp.oidc import views as oidc_views


def init_app(app: Flask) -> None:
    csrf = CSRFProtect(app)
    # The logged-in person's stored language, for idp.i18n.select_locale.
    app.extensions[ACCOUNT_LANGUAGE] = logged_in_language
    app.register_blueprint(accounts_bp)
    app.register_blueprint(upstream_bp)
    # The provider's answer may be a cross-site form_post: its `state`, found server-side,
    # is what protects it (not a CSRF token the provider cannot know).
    csrf.exempt(upstream_callback)
    app.register_blueprint(consent_bp)
    for view in (
        oidc_views.authorize_endpoint,
        oidc_views.token,
        oidc_views.revoke,
        oidc_views.introspect,
        oidc_views.userinfo,
        oidc_views.end_session,
    ):
        csrf.exempt(view)
    if app.config["IDP_SETTINGS"].is_demo:
        from werkzeug.middleware.dispatcher import DispatcherMiddleware

        from idp.demo import bank_sim
        from idp.demo import bp as demo_bp
        from idp.demo.seed import DEMO_EPARAKSTS_PREFIX, eparaksts_simulator, example_services

        app.register_blueprint(demo_bp)
        # DEMO upstream providers (simulators, never outside demo mode): the bank as a
        # blueprint, eParaksts as its own WSGI app under its prefix.
        bank_sim.init_app(app, csrf)
        simulator = eparaksts_simulator(app.config["IDP_SETTINGS"])
        app.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]  # Flask's middleware idiom
            app.wsgi_app,
            {
                DEMO_EPARAKSTS_PREFIX: simulator,
                **example_services(app.config["IDP_SETTINGS"].issuer),
            },
        )
