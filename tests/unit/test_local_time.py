"""Mails state moments in Latvian time (idp.i18n.local_minute)."""

from __future__ import annotations

import datetime as dt

import pytest

from idp.i18n import local_minute


def test_a_utc_moment_is_shown_in_latvian_time_winter_and_summer() -> None:
    assert local_minute(dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)) == "2026-12-01 14:00"
    assert local_minute(dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.UTC)) == "2026-07-01 15:00"


def test_a_naive_moment_is_refused_rather_than_read_as_the_servers_clock() -> None:
    with pytest.raises(ValueError, match="aware"):
        local_minute(dt.datetime(2026, 12, 1, 12, 0))
