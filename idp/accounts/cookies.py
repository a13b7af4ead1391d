"""The browser-session cookie: an opaque random id; the session itself is a database row."""

from __future__ import annotations

from flask import Response, current_app, g, request

from idp.accounts.services import find_browser_session
from idp.db import db_session
from idp.models import BrowserSession


def cookie_name() -> str:
    return current_app.config["IDP_SETTINGS"].session_cookie_name


def current_browser_session() -> BrowserSession | None:
    if "browser_session" not in g:
        g.browser_session = find_browser_session(db_session(), request.cookies.get(cookie_name()))
    return g.browser_session


def set_session_cookie(response: Response, value: str) -> None:
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


def clear_session_cookie(response: Response) -> None:
    settings = current_app.config["IDP_SETTINGS"]
    response.delete_cookie(
        cookie_name(), path="/", secure=not settings.issuer_is_loopback_http,
        httponly=True, samesite="Lax",
    )
