"""Flask-Babel: every user-facing string goes through gettext; the locale comes from
the client's ui_locales, then the browser's Accept-Language."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from flask import Flask, current_app, has_request_context, request, session
from flask_babel import Babel, get_locale

# The utility's clock: pages and mails show times in Latvia, and an end date in an
# application means the end of that day there.
LOCAL_TIMEZONE = ZoneInfo("Europe/Riga")


# The language of the admin CLI (and of anything rendered outside a request that does not
# say otherwise): docs/cli.md and the operators' scripts read English.
CLI_LOCALE = "en"


def select_locale() -> str:
    if not has_request_context():
        return CLI_LOCALE
    settings = current_app.config["IDP_SETTINGS"]
    for tag in str(session.get("ui_locales", "")).split():
        base = tag.split("-")[0].lower()
        if base in settings.locales:
            return base
    return request.accept_languages.best_match(settings.locales) or settings.default_locale


def init_app(app: Flask) -> None:
    Babel(app, locale_selector=select_locale)
    app.jinja_env.globals["get_locale"] = get_locale
    app.jinja_env.filters["local_time"] = local_time
    app.jinja_env.filters["local_minute"] = local_minute


def local_time(moment: dt.datetime | None) -> str:
    """A moment as people in Latvia read it, in the page's language (e.g. on USERS)."""
    if moment is None:
        return ""
    return format_datetime(moment, "medium", tzinfo=LOCAL_TIMEZONE, locale=get_locale() or "en")


def local_minute(moment: dt.datetime) -> str:
    """A moment in Latvian time to the minute, "2026-12-01 14:30": how mails state
    deadlines (the same in every language; the mail says it is Latvian time)."""
    if moment.tzinfo is None:  # would be read as the server's local time
        raise ValueError("local_minute needs an aware datetime")
    return moment.astimezone(LOCAL_TIMEZONE).strftime("%Y-%m-%d %H:%M")


def current_language() -> str:
    """The language of the current page, remembered for the person's mails."""
    return str(get_locale() or current_app.config["IDP_SETTINGS"].default_locale)
