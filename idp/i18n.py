"""Flask-Babel: every user-facing string goes through gettext; the locale comes from
the client's ui_locales, then the browser's Accept-Language."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time, get_datetime_format
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
    app.jinja_env.filters["local_date"] = local_date


# Babel's data for each page language. CLDR's "en" is American English ("December 2,
# 2026, 2:30 PM"); the utility's English pages read as in Europe, 24-hour clock included.
_BABEL_LOCALES = {"en": "en_GB"}


def _babel_locale() -> str:
    language = str(get_locale() or CLI_LOCALE)
    return _BABEL_LOCALES.get(language, language)


def local_minute(moment: dt.datetime) -> str:
    """A moment in Latvian time to the minute, in the language being rendered (a page, or
    a mail inside force_locale): CLDR's long date and its date-time pattern, with a 24-hour
    "HH:mm" in every language because the utility's customers read that clock.
    lv "2026. gada 2. decembris 14:30", ru "2 декабря 2026 г., 14:30",
    en "2 December 2026, 14:30"."""
    if moment.tzinfo is None:  # would be read as the server's local time
        raise ValueError("local_minute needs an aware datetime")
    locale = _babel_locale()
    local = moment.astimezone(LOCAL_TIMEZONE)
    date = format_date(local.date(), "long", locale=locale)
    time = format_time(local, "HH:mm", tzinfo=LOCAL_TIMEZONE, locale=locale)
    # As Babel itself joins a date and a time ({1} the date, {0} the time).
    pattern = str(get_datetime_format("long", locale=locale)).replace("'", "")
    return pattern.replace("{1}", date).replace("{0}", time)


def local_time(moment: dt.datetime | None) -> str:
    """The page filter: local_minute, and nothing for a moment that is not set (e.g. a
    membership without an end on USERS)."""
    return "" if moment is None else local_minute(moment)


def local_date(day: dt.date) -> str:
    """A calendar day as the language being rendered writes it in full ("the last day of
    an authorisation"): lv "2026. gada 31. decembris", ru "31 декабря 2026 г.",
    en "31 December 2026"."""
    return format_date(day, "long", locale=_babel_locale())


def current_language() -> str:
    """The language of the current page, remembered for the person's mails."""
    return str(get_locale() or current_app.config["IDP_SETTINGS"].default_locale)
