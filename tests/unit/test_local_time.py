"""Pages and mails state moments in Latvian time, to the minute, on a 24-hour clock, as
the language being rendered writes a date (idp.i18n.local_minute, local_time, local_date)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from flask import Flask
from flask_babel import Babel, force_locale

from idp.i18n import local_date, local_minute, local_time

WINTER = dt.datetime(2026, 12, 2, 12, 30, 59, tzinfo=dt.UTC)  # EET, UTC+2
SUMMER = dt.datetime(2026, 7, 1, 21, 5, tzinfo=dt.UTC)  # EEST, UTC+3: already 2 July


@pytest.fixture(autouse=True)
def babel_app() -> Iterator[None]:
    app = Flask(__name__)
    Babel(app)
    with app.app_context():
        yield


@pytest.mark.parametrize(
    ("language", "winter", "summer"),
    [
        # CLDR keeps "2026 г." together with a narrow no-break space (U+202F).
        ("lv", "2026. gada 2. decembris 14:30", "2026. gada 2. jūlijs 00:05"),
        ("ru", "2 декабря 2026\u202fг., 14:30", "2 июля 2026\u202fг., 00:05"),
        # European English: day first, 24-hour clock (CLDR's plain "en" is American).
        ("en", "2 December 2026, 14:30", "2 July 2026, 00:05"),
    ],
)
def test_a_moment_is_shown_in_latvian_time_in_the_language_being_rendered(
    language: str, winter: str, summer: str
) -> None:
    with force_locale(language):
        assert local_minute(WINTER) == winter
        assert local_minute(SUMMER) == summer
        assert local_time(WINTER) == winter  # pages and mails read the same


def test_a_day_is_written_in_full_in_each_language() -> None:
    day = dt.date(2026, 12, 31)
    expected = {
        "lv": "2026. gada 31. decembris",
        "ru": "31 декабря 2026\u202fг.",
        "en": "31 December 2026",
    }
    for language, text in expected.items():
        with force_locale(language):
            assert local_date(day) == text


def test_outside_any_page_the_cli_language_is_used() -> None:
    assert local_minute(WINTER) == "2 December 2026, 14:30"


def test_a_missing_moment_shows_nothing_on_a_page() -> None:
    assert local_time(None) == ""


def test_a_naive_moment_is_refused_rather_than_read_as_the_servers_clock() -> None:
    with pytest.raises(ValueError, match="aware"):
        local_minute(dt.datetime(2026, 12, 1, 12, 0))
    with pytest.raises(ValueError, match="aware"):
        local_time(dt.datetime(2026, 12, 1, 12, 0))
