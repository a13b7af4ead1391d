"""The browser-session cookie: an opaque random id; the session itself is a database row."""

from __future__ import annotations

import re
from typing import Any

from flask import current_app, g, request
from werkzeug.wrappers import Response as BaseResponse

from idp.accounts.services import find_browser_session, mark_seen, seen_long_ago
from idp.db import after_session_closed, db_session, utcnow
from idp.i18n import LANGUAGE_COOKIE, LANGUAGE_COOKIE_MAX_AGE
from idp.models import BrowserSession
from idp.web import app_settings


def cookie_name() -> str:
    return app_settings().session_cookie_name


def current_browser_session() -> BrowserSession | None:
    """The logged-in session of this browser, if any. Finding it counts as using it: its
    "last used" moves (at most once a minute), after the request, in a write of its own."""
    if "browser_session" not in g:
        browser = find_browser_session(db_session(), request.cookies.get(cookie_name()))
        g.browser_session = browser
        now = utcnow()
        if browser is not None and seen_long_ago(browser, now):
            id_hash = browser.id_hash
            after_session_closed(lambda conn: mark_seen(conn, id_hash, now))
    found: BrowserSession | None = g.browser_session
    return found


def set_session_cookie(response: BaseResponse, value: str) -> None:
    settings = current_app.config["IDP_SETTINGS"]
    response.set_cookie(
        cookie_name(),
        value,
        max_age=settings.session_lifetime,
        # Secure everywhere except plain-http loopback development, where browsers would
        # otherwise drop it.
        secure=not settings.issuer_is_loopback_http,
        httponly=True,
        samesite="Lax",
        path="/",
    )


def clear_session_cookie(response: BaseResponse) -> None:
    settings = current_app.config["IDP_SETTINGS"]
    response.delete_cookie(
        cookie_name(),
        path="/",
        secure=not settings.issuer_is_loopback_http,
        httponly=True,
        samesite="Lax",
    )


# --- browser bindings (login CSRF) ------------------------------------------------------------

# The bank/eSignature button sets this; the callback must bring it back (idp/accounts/
# upstream.py): a finished upstream login counts only in the browser that started it.
UPSTREAM_COOKIE = "idp_upstream"
UPSTREAM_COOKIE_PATH = "/upstream/callback"
# Set with each paused authorization request (idp/oidc/authorize.py): one value per browser,
# kept while any of its requests lives, so several tabs each keep their own request.
INTERACTION_COOKIE = "idp_interaction"
# What new_token(24..48) makes; anything else in the cookie is ignored (a new value is set).
_BINDING = re.compile(r"[A-Za-z0-9_-]{32,64}")


def _binding(name: str) -> str | None:
    value = request.cookies.get(name, "")
    return value if _BINDING.fullmatch(value) else None


def upstream_binding() -> str | None:
    return _binding(UPSTREAM_COOKIE)


def interaction_binding() -> str | None:
    return _binding(INTERACTION_COOKIE)


def _upstream_cookie_attributes() -> dict[str, Any]:
    settings = current_app.config["IDP_SETTINGS"]
    if settings.issuer_is_loopback_http:
        # Plain-http loopback (demo, development): browsers drop Secure cookies there and
        # refuse SameSite=None without Secure. A Lax cookie still binds, as browsers send
        # it on the top-level GET redirect back (the demo bank's way); only a form_post
        # callback then finds no cookie and the person is asked to start again.
        return {"secure": False, "samesite": "Lax"}
    # SameSite=None: a provider answering with response_mode=form_post sends the browser
    # back with a cross-site POST, which carries no Lax cookie. The narrow path, HttpOnly
    # and a few minutes of life keep it from being of use anywhere else.
    return {"secure": True, "samesite": "None"}


def set_upstream_binding(response: BaseResponse, value: str) -> None:
    settings = current_app.config["IDP_SETTINGS"]
    response.set_cookie(
        UPSTREAM_COOKIE,
        value,
        max_age=settings.upstream_login_lifetime,
        httponly=True,
        path=UPSTREAM_COOKIE_PATH,
        **_upstream_cookie_attributes(),
    )


def clear_upstream_binding(response: BaseResponse) -> None:
    response.delete_cookie(
        UPSTREAM_COOKIE, path=UPSTREAM_COOKIE_PATH, httponly=True, **_upstream_cookie_attributes()
    )


def set_interaction_binding(response: BaseResponse, value: str) -> None:
    settings = current_app.config["IDP_SETTINGS"]
    # Lax is enough: every page that reads it is a top-level GET or one of our own forms
    # (the form_post callback relies on the upstream binding instead).
    response.set_cookie(
        INTERACTION_COOKIE,
        value,
        max_age=settings.interaction_lifetime,
        secure=not settings.issuer_is_loopback_http,
        httponly=True,
        samesite="Lax",
        path="/",
    )


# --- the language the person chose (idp.i18n) ------------------------------------------------


def set_language_cookie(response: BaseResponse, language: str) -> None:
    settings = current_app.config["IDP_SETTINGS"]
    response.set_cookie(
        LANGUAGE_COOKIE,
        language,
        max_age=LANGUAGE_COOKIE_MAX_AGE,
        secure=not settings.issuer_is_loopback_http,
        httponly=True,
        samesite="Lax",
        path="/",
    )


def logged_in_language() -> str | None:
    """The stored language of the person logged in in this browser (idp.i18n asks)."""
    browser = current_browser_session()
    return browser.user.language if browser is not None else None
