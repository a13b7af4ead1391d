"""My account, "Sessions" (issue 15): a person sees every browser they are logged in on,
logs one of the others out or all of them, and the other browser is really out: asked
to log in, its applications' refresh tokens refused."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable

import pytest
from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from idp.accounts.services import create_user, mark_seen
from idp.db import after_session_closed, utcnow
from idp.models import AccountEvent, BrowserSession, TokenFamily, User
from tests.conftest import PASSWORD, Browser, RegisteredClient, csrf_token
from tests.integration.account_pages import (
    CHROME_ANDROID,
    FIREFOX_WINDOWS,
    SAFARI_IPHONE,
    end_buttons,
    is_asked_to_log_in,
    logged_in,
    page,
)
from tests.integration.conftest import login_tokens, refresh


@pytest.fixture
def portal_app(make_client: Callable[..., RegisteredClient]) -> RegisteredClient:
    return make_client(
        name="Portal", first_party=True, grant_types=["authorization_code", "refresh_token"]
    )


def session_of(db: Session, user_agent: str) -> BrowserSession:
    db.expire_all()
    row = db.scalar(select(BrowserSession).where(BrowserSession.user_agent == user_agent))
    db.commit()  # end the read: SQLite lets no one else write meanwhile
    assert row is not None
    return row


def events(db: Session, kind: str) -> list[AccountEvent]:
    found = list(db.scalars(select(AccountEvent).where(AccountEvent.kind == kind)))
    db.commit()
    return found


def post(browser: Browser, path: str, form_page: str) -> int:
    response = browser.client.post(path, data={"csrf_token": csrf_token(form_page)})
    if response.status_code == 303:
        assert response.headers["Location"] == "/account/sessions"
    return response.status_code


# --- the list --------------------------------------------------------------------------------


def test_every_browser_is_listed_by_its_device_this_one_first(app: Flask, user: User) -> None:
    laptop = logged_in(app, FIREFOX_WINDOWS)
    phone = logged_in(app, SAFARI_IPHONE)

    html = page(laptop, "/account/sessions")
    mark = '<span class="tag">This browser</span>'
    assert html.count(mark) == 1
    assert html.index("Firefox on Windows") < html.index(mark) < html.index("Safari on iPhone")
    assert "127.0.0.1" in html
    assert "E-mail and password" in html
    # This browser logs out the ordinary way; only the other one has a button of its own.
    assert 'action="/logout/confirm"' in html
    assert len(end_buttons(html)) == 1
    assert "Log out of Safari on iPhone" in html
    assert "Log out everywhere else" in html

    on_the_phone = page(phone, "/account/sessions")
    assert on_the_phone.index("Safari on iPhone") < on_the_phone.index("Firefox on Windows")


def test_a_browser_without_a_user_agent_is_an_unknown_device(app: Flask, user: User) -> None:
    laptop = logged_in(app, FIREFOX_WINDOWS)
    logged_in(app, "")
    assert "Unknown device" in page(laptop, "/account/sessions")


def test_an_expired_session_is_not_listed(app: Flask, db: Session, user: User) -> None:
    laptop = logged_in(app, FIREFOX_WINDOWS)
    logged_in(app, SAFARI_IPHONE)
    db.execute(
        update(BrowserSession)
        .where(BrowserSession.user_agent == SAFARI_IPHONE)
        .values(expires_at=utcnow() - dt.timedelta(minutes=1))
    )
    db.commit()
    html = page(laptop, "/account/sessions")
    assert "Safari on iPhone" not in html
    assert "You are not logged in anywhere else." in html


def test_the_page_asks_to_log_in_first(app: Flask, user: User) -> None:
    anyone = app.test_client()
    for path in ("/account/sessions", "/account/apps"):
        response = anyone.get(path)
        assert response.status_code == 303
        assert response.headers["Location"] == "/login"


# --- log out of another browser ------------------------------------------------------------------


def test_logging_out_another_browser_logs_it_and_its_apps_out(
    app: Flask, db: Session, user: User, portal_app: RegisteredClient
) -> None:
    laptop = logged_in(app, FIREFOX_WINDOWS)
    phone = logged_in(app, SAFARI_IPHONE)
    on_the_phone = login_tokens(phone.client, phone, portal_app)
    on_the_laptop = login_tokens(laptop.client, laptop, portal_app)

    html = page(laptop, "/account/sessions")
    (sid,) = end_buttons(html)
    assert sid == session_of(db, SAFARI_IPHONE).sid
    assert post(laptop, f"/account/sessions/{sid}/end", html) == 303
    assert "Safari on iPhone is logged out." in page(laptop, "/account/sessions")

    assert is_asked_to_log_in(phone)
    answer = refresh(phone.client, portal_app, on_the_phone["refresh_token"])
    assert answer.status_code == 400
    assert answer.get_json()["error"] == "invalid_grant"
    # This browser, and what it logged in to, go on.
    assert not is_asked_to_log_in(laptop)
    assert refresh(laptop.client, portal_app, on_the_laptop["refresh_token"]).status_code == 200

    (event,) = events(db, "session_ended")
    assert event.user_id == user.id
    assert event.details == {"device": "Safari on iPhone", "apps_logged_out": 1}
    assert event.user_agent == FIREFOX_WINDOWS  # done from the laptop
    assert sid not in str(event.details)
    (family,) = db.scalars(select(TokenFamily).where(TokenFamily.sid == sid))
    db.commit()
    assert family.revoked_reason == "session_ended"


def test_log_out_everywhere_else(
    app: Flask, db: Session, user: User, portal_app: RegisteredClient
) -> None:
    laptop = logged_in(app, FIREFOX_WINDOWS)
    phone = logged_in(app, SAFARI_IPHONE)
    tablet = logged_in(app, CHROME_ANDROID)
    on_the_tablet = login_tokens(tablet.client, tablet, portal_app)

    html = page(laptop, "/account/sessions")
    assert len(end_buttons(html)) == 2
    assert post(laptop, "/account/sessions/end-others", html) == 303

    after = page(laptop, "/account/sessions")
    assert "2 other browsers are logged out." in after
    assert "You are not logged in anywhere else." in after
    assert "Log out everywhere else" not in after
    assert is_asked_to_log_in(phone) and is_asked_to_log_in(tablet)
    assert not is_asked_to_log_in(laptop)
    answer = refresh(tablet.client, portal_app, on_the_tablet["refresh_token"])
    assert answer.get_json()["error"] == "invalid_grant"

    (event,) = events(db, "other_sessions_ended")
    assert event.details == {
        "sessions": 2,
        "devices": ["Chrome on Android", "Safari on iPhone"],
        "apps_logged_out": 1,
    }

    # Again, with no one else logged in: nothing to do, nothing recorded.
    assert post(laptop, "/account/sessions/end-others", after) == 303
    assert "You are not logged in anywhere else." in page(laptop, "/account/sessions")
    assert len(events(db, "other_sessions_ended")) == 1


def test_another_persons_session_or_a_made_up_one_is_not_found(
    app: Flask, db: Session, user: User
) -> None:
    create_user(
        db,
        app.extensions["idp.passwords"],
        email="anna@example.lv",
        name="Anna Liepa",
        password=PASSWORD,
    )
    db.commit()
    laptop = logged_in(app, FIREFOX_WINDOWS)
    anna = logged_in(app, SAFARI_IPHONE, email="anna@example.lv")
    annas_sid = session_of(db, SAFARI_IPHONE).sid
    own_sid = session_of(db, FIREFOX_WINDOWS).sid
    html = page(laptop, "/account/sessions")
    assert end_buttons(html) == []  # Anna's browser is not Jānis's

    for sid in (annas_sid, own_sid, "A" * 22, "not-a-sid!", "x" * 65, "%00" * 20):
        assert post(laptop, f"/account/sessions/{sid}/end", html) == 404, sid
    assert not is_asked_to_log_in(anna)
    assert not is_asked_to_log_in(laptop)
    assert events(db, "session_ended") == []


def test_logging_out_without_the_forms_token_is_refused(
    app: Flask, db: Session, user: User
) -> None:
    laptop = logged_in(app, FIREFOX_WINDOWS)
    phone = logged_in(app, SAFARI_IPHONE)
    sid = session_of(db, SAFARI_IPHONE).sid
    for path in (f"/account/sessions/{sid}/end", "/account/sessions/end-others"):
        response = laptop.client.post(path)
        assert response.status_code == 400
        assert "The form has expired" in response.get_data(as_text=True)
    assert not is_asked_to_log_in(phone)


def test_ending_is_a_post(app: Flask, db: Session, user: User) -> None:
    laptop = logged_in(app, FIREFOX_WINDOWS)
    logged_in(app, SAFARI_IPHONE)
    sid = session_of(db, SAFARI_IPHONE).sid
    assert laptop.client.get(f"/account/sessions/{sid}/end").status_code == 405
    assert laptop.client.get("/account/sessions/end-others").status_code == 405


# --- "last used" -----------------------------------------------------------------------------


def last_seen(db: Session, user_agent: str) -> dt.datetime:
    seen = session_of(db, user_agent).last_seen_at
    assert seen is not None
    return seen


def set_last_seen(db: Session, user_agent: str, ago: dt.timedelta) -> dt.datetime:
    moment = utcnow() - ago
    db.execute(
        update(BrowserSession)
        .where(BrowserSession.user_agent == user_agent)
        .values(last_seen_at=moment)
    )
    db.commit()
    return moment


def test_last_used_moves_when_the_browser_is_used_at_most_once_a_minute(
    app: Flask, db: Session, user: User, portal_app: RegisteredClient
) -> None:
    laptop = logged_in(app, FIREFOX_WINDOWS)
    long_ago = set_last_seen(db, FIREFOX_WINDOWS, dt.timedelta(minutes=5))

    page(laptop, "/account/sessions")
    moved = last_seen(db, FIREFOX_WINDOWS)
    assert moved > long_ago + dt.timedelta(minutes=4)
    page(laptop, "/account/sessions")
    page(laptop, "/account")
    assert last_seen(db, FIREFOX_WINDOWS) == moved  # within the minute: not written again

    half_a_minute = set_last_seen(db, FIREFOX_WINDOWS, dt.timedelta(seconds=30))
    page(laptop, "/account/sessions")
    assert last_seen(db, FIREFOX_WINDOWS) == half_a_minute

    # Logging in to an application without typing anything counts as using the browser.
    long_ago = set_last_seen(db, FIREFOX_WINDOWS, dt.timedelta(minutes=5))
    login_tokens(laptop.client, laptop, portal_app)
    assert last_seen(db, FIREFOX_WINDOWS) > long_ago + dt.timedelta(minutes=4)


def test_the_token_endpoint_does_not_touch_browser_sessions(
    app: Flask, db: Session, user: User, portal_app: RegisteredClient
) -> None:
    laptop = logged_in(app, FIREFOX_WINDOWS)
    tokens = login_tokens(laptop.client, laptop, portal_app)
    long_ago = set_last_seen(db, FIREFOX_WINDOWS, dt.timedelta(minutes=5))
    # The app's server refreshes with the browser's cookie jar, even: no browser counts.
    assert refresh(laptop.client, portal_app, tokens["refresh_token"]).status_code == 200
    assert last_seen(db, FIREFOX_WINDOWS) == long_ago


def test_a_last_used_that_cannot_be_written_at_once_is_skipped_and_logged(
    app: Flask, db: Session, user: User, caplog: pytest.LogCaptureFixture
) -> None:
    logged_in(app, FIREFOX_WINDOWS)
    long_ago = set_last_seen(db, FIREFOX_WINDOWS, dt.timedelta(minutes=5))
    row = session_of(db, FIREFOX_WINDOWS)
    # Another transaction holds the row (on SQLite: the one write lock) and does not end.
    db.execute(
        update(BrowserSession).where(BrowserSession.id_hash == row.id_hash).values(ip="10.0.0.1")
    )
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="idp.db"), app.app_context():
        after_session_closed(lambda conn: mark_seen(conn, row.id_hash, utcnow()))
    assert time.monotonic() - started < 5  # the lock wait is a second, not the busy timeout
    assert "a write after the request was skipped" in caplog.text
    assert row.id_hash not in caplog.text  # no hash in a log
    db.rollback()
    assert last_seen(db, FIREFOX_WINDOWS) == long_ago
