"""Flask-Babel: every user-facing string goes through gettext. The language of a page
(issue 13; docs/operations.md, "Languages"), first that applies:

1. the sign-in's language: the first supported tag of the paused authorization request's
   `ui_locales` (stored with the request, so it lasts across login, the bank round trip,
   registration and consent), replaced by the person's own choice when they use the
   switcher during that sign-in;
2. the person's choice: the language cookie the switcher sets, else the language stored on
   the account (the logged-in person's, or that of the account an e-mail link is for);
3. the browser's Accept-Language;
4. settings.default_locale.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import NamedTuple
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time, get_datetime_format
from flask import Flask, current_app, g, has_request_context, request, url_for
from flask_babel import Babel, get_locale, refresh
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from idp.db import db_session
from idp.interactions import load_interaction
from idp.models import Interaction

# The utility's clock: pages and mails show times in Latvia, and an end date in an
# application means the end of that day there.
LOCAL_TIMEZONE = ZoneInfo("Europe/Riga")


# The language of the admin CLI (and of anything rendered outside a request that does not
# say otherwise): docs/cli.md and the operators' scripts read English.
CLI_LOCALE = "en"


# The cookie the language switcher sets (GET /language/<code>): the person's choice.
LANGUAGE_COOKIE = "idp_language"
LANGUAGE_COOKIE_MAX_AGE = 400 * 86400  # browsers keep a cookie at most 400 days

# Each language named in itself on the switcher (never translated).
LANGUAGE_NAMES = {"lv": "Latviešu", "ru": "Русский", "en": "English"}

# app.extensions key: a function giving the logged-in person's stored language (the
# accounts feature knows the browser session; this module must not import it).
ACCOUNT_LANGUAGE = "idp.account_language"

_SIGN_IN = "idp_sign_in_language"
_ACCOUNT = "idp_account_language"


def first_supported(tags: str | None, locales: list[str]) -> str | None:
    """The first of space-separated BCP 47 tags (ui_locales, OIDC Core §3.1.2.1) that the
    IdP speaks; "lv-LV" counts as "lv"."""
    for tag in str(tags or "").split()[:16]:
        base = tag.replace("_", "-").split("-")[0].lower()
        if base in locales:
            return base
    return None


def select_locale() -> str:
    if not has_request_context():
        return CLI_LOCALE
    settings = current_app.config["IDP_SETTINGS"]
    sources: tuple[Callable[[], str | None], ...] = (
        _sign_in_language,
        lambda: request.cookies.get(LANGUAGE_COOKIE),
        _account_language,
    )
    for source in sources:  # in turn: the later ones may ask the database
        found = first_supported(source(), settings.locales)
        if found:
            return found
    best: str | None = request.accept_languages.best_match(settings.locales)
    return best or settings.default_locale


def interaction_language(interaction: Interaction) -> str | None:
    """The ui_locales stored with a paused request (the switcher may have replaced them)."""
    values = interaction.params.get("ui_locales") or []
    return str(values[0]) if values else None


def speak_for_sign_in(ui_locales: str | None) -> None:
    """This page belongs to a sign-in whose request asked for `ui_locales` (the
    /authorize page itself, the bank callback, the pages found by a token rather than an
    `interaction=` parameter)."""
    if ui_locales:
        setattr(g, _SIGN_IN, ui_locales)
        refresh()


def speak_for_interaction(interaction_id: str | None) -> None:
    interaction = _live_interaction(interaction_id)
    if interaction is not None:
        speak_for_sign_in(interaction_language(interaction))


def speak_for_account(language: str | None) -> None:
    """This page is about one account (an e-mail link's): its stored language counts as
    the person's choice when the browser brings none."""
    if language:
        setattr(g, _ACCOUNT, language)
        refresh()


def _live_interaction(interaction_id: str | None) -> Interaction | None:
    try:
        return load_interaction(db_session(), interaction_id)
    except SQLAlchemyError:  # e.g. the error page of a failed transaction: no sign-in known
        return None


def _sign_in_language() -> str | None:
    """The language of the paused request this page carries (`interaction=` in the query
    or the form), unless a view said which sign-in it belongs to."""
    if _SIGN_IN in g:
        chosen: str | None = g.get(_SIGN_IN)
        return chosen
    try:
        interaction_id = request.values.get("interaction")
    except HTTPException:  # a body too large or malformed: answered elsewhere
        interaction_id = None
    interaction = _live_interaction(interaction_id)
    language = interaction_language(interaction) if interaction is not None else None
    setattr(g, _SIGN_IN, language)
    return language


def _account_language() -> str | None:
    if _ACCOUNT in g:
        stored: str | None = g.get(_ACCOUNT)
        return stored
    finder: Callable[[], str | None] | None = current_app.extensions.get(ACCOUNT_LANGUAGE)
    try:
        language = finder() if finder is not None else None
    except SQLAlchemyError:  # as in _live_interaction
        language = None
    setattr(g, _ACCOUNT, language)
    return language


class LanguageLink(NamedTuple):
    code: str
    name: str
    href: str
    current: bool


def language_links() -> list[LanguageLink]:
    """The switcher of base.html: one plain link per language, back to this very page
    (path and query, so a paused sign-in's `interaction=` is kept)."""
    settings = current_app.config["IDP_SETTINGS"]
    here = request.script_root + request.path
    query = request.query_string.decode("latin-1")
    if query:
        here += "?" + query
    current = str(get_locale() or settings.default_locale)
    return [
        LanguageLink(
            code,
            LANGUAGE_NAMES.get(code, code),
            url_for("accounts.choose_language", code=code, next=here),
            code == current,
        )
        for code in settings.locales
    ]


def init_app(app: Flask) -> None:
    Babel(app, locale_selector=select_locale)
    app.jinja_env.globals["get_locale"] = get_locale
    app.jinja_env.globals["language_links"] = language_links
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
