"""Flask-Babel: every user-facing string goes through gettext; the locale comes from
the client's ui_locales, then the browser's Accept-Language."""

from __future__ import annotations

from flask import Flask, current_app, request, session
from flask_babel import Babel, get_locale


def select_locale() -> str:
    settings = current_app.config["IDP_SETTINGS"]
    for tag in str(session.get("ui_locales", "")).split():
        base = tag.split("-")[0].lower()
        if base in settings.locales:
            return base
    return request.accept_languages.best_match(settings.locales) or settings.default_locale


def init_app(app: Flask) -> None:
    Babel(app, locale_selector=select_locale)
    app.jinja_env.globals["get_locale"] = get_locale


def current_language() -> str:
    """The language of the current page, remembered for the person's mails."""
    return str(get_locale() or current_app.config["IDP_SETTINGS"].default_locale)
