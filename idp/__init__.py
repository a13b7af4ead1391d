"""The identity provider. `create_app()` only assembles: settings, extensions, blueprints."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask

from idp.settings import PROJECT_ROOT, load_settings


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    settings = load_settings(overrides)
    app = Flask(
        __name__,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
        instance_path=str(settings.instance_dir),
    )
    app.config.update(
        IDP_SETTINGS=settings,
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_NAME="idp_csrf",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=not settings.issuer_is_loopback_http,
        MAX_CONTENT_LENGTH=64 * 1024,
        MAX_FORM_PARTS=200,
        WTF_CSRF_TIME_LIMIT=None,
        # With "Referrer-Policy: no-referrer" browsers send no Referer on our own form
        # posts, so Flask-WTF's https-only Referer check would refuse every form. The CSRF
        # token plus SameSite=Lax, Secure cookies protect the forms.
        WTF_CSRF_SSL_STRICT=False,
        BABEL_DEFAULT_LOCALE=settings.default_locale,
        BABEL_TRANSLATION_DIRECTORIES=str(PROJECT_ROOT / "idp" / "translations"),
    )
    logging.getLogger("idp").setLevel(settings.log_level)

    from idp import (
        cli,
        db,
        errors,
        fastpath,
        i18n,
        mail,
        observability,
        oidc,
        pages,
        proxies,
        security,
        theme,
    )

    observability.init_app(app)  # logging first: later modules log at set-up
    db.init_app(app)
    mail.init_app(app)
    security.init_app(app)
    i18n.init_app(app)
    theme.init_app(app)
    oidc.init_app(app)
    pages.init_app(app)
    # The USERS section and the invited person's page (CSRF-protected like every page).
    from idp.accounts import invitation_views
    from idp.delegation import views as users_views
    from idp.my_account import history_views
    from idp.my_account import session_views as account_session_views
    from idp.my_account import views as account_views

    app.register_blueprint(users_views.bp)
    app.register_blueprint(invitation_views.bp)
    app.register_blueprint(account_views.bp)
    app.register_blueprint(account_views.links_bp)
    app.register_blueprint(account_session_views.bp)
    app.register_blueprint(history_views.bp)
    errors.init_app(app)
    cli.init_app(app)
    from idp import health  # /healthz and /readyz, answered without a Flask request

    health.install(app)
    fastpath.install(app)
    # Request id, access line, metrics: of every request, the fast paths' too.
    observability.install(app, fastpath.ROUTES | {health.HEALTH_PATH, health.READY_PATH})
    # Outermost, so the fast paths see the client's address and scheme too.
    app.wsgi_app = proxies.TrustedProxies(  # type: ignore[method-assign]  # Flask's middleware idiom
        app.wsgi_app, proxies.parse_networks(settings.trusted_proxies)
    )
    return app
