"""The HTML surfaces: the account pages (login, registration, bank and eSignature logins),
consent, and (in demo mode only) the demo relying page with the simulated bank and
eParaksts; the USERS section and the invitation page are registered by create_app.
Every form is CSRF-protected; the protocol endpoints are exempt (they authenticate
clients instead)."""

from __future__ import annotations

from flask import Flask, request
from flask_wtf import CSRFProtect

from idp.accounts.cookies import logged_in_language
from idp.accounts.upstream_views import bp as upstream_bp
from idp.accounts.upstream_views import callback as upstream_callback
from idp.accounts.views import bp as accounts_bp
from idp.consent.views import bp as consent_bp
from idp.db import db_session
from idp.i18n import ACCOUNT_LANGUAGE
from idp.interactions import AppLink, way_on
from idp.oidc import views as oidc_views


def init_app(app: Flask) -> None:
    csrf = CSRFProtect(app)
    # The logged-in person's stored language, for idp.i18n.select_locale.
    app.extensions[ACCOUNT_LANGUAGE] = logged_in_language
    app.jinja_env.globals["way_on"] = _way_on
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


def _way_on() -> tuple[AppLink | None, str | None]:
    """For the templates of pages that end a path: where "Back to <application>" leads
    and the paused request the login link continues (idp.interactions.way_on)."""
    interaction = request.args.get("interaction", "")
    # A posted form's field only when the form was read already (a CSRF error): never
    # parse a body here, an error page may answer one too big to read (413).
    if not interaction and "form" in request.__dict__:
        interaction = request.form.get("interaction", "")
    if not interaction.isascii() or not interaction.isprintable():
        interaction = ""  # never an id we issued (and PostgreSQL refuses NUL)
    return way_on(db_session(), interaction[:64] or None)
