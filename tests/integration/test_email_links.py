"""E-mail links: single use, one purpose, bound to the user's state, hashed, expiring, voided
by a newer link — and every unusable link gets the same page (docs/domain.md, "Every link…")."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from idp.accounts.links import PATHS, Purpose, check_link, consume_link, issue_link
from idp.db import session_factory
from idp.models import EmailLink, User

HOUR = dt.timedelta(hours=1)


def issue(db: Session, user: User, purpose: Purpose, lifetime: dt.timedelta = HOUR) -> str:
    token = issue_link(db, user, purpose, lifetime)
    db.commit()
    return token


def consume(app: Flask, token: str, purpose: Purpose) -> User | None:
    with session_factory(app)() as session:
        found = consume_link(session, token, purpose)
        session.commit()
        return found


def path(purpose: Purpose, token: str) -> str:
    return PATHS[purpose].replace("<token>", token)


def test_a_link_works_exactly_once(app: Flask, db: Session, user: User) -> None:
    token = issue(db, user, Purpose.RESET_PASSWORD)
    assert check_link(db, token, Purpose.RESET_PASSWORD) == user  # checking does not use it
    db.commit()
    first = consume(app, token, Purpose.RESET_PASSWORD)
    assert first is not None and first.id == user.id
    assert consume(app, token, Purpose.RESET_PASSWORD) is None
    assert check_link(db, token, Purpose.RESET_PASSWORD) is None


def test_only_a_hash_of_the_token_is_stored(db: Session, user: User) -> None:
    token = issue(db, user, Purpose.RESET_PASSWORD)
    row = db.scalar(select(EmailLink))
    assert row is not None and token not in (row.token_hash, row.state_hash)
    assert len(row.token_hash) == 64


@pytest.mark.parametrize("other", [Purpose.ACTIVATE, Purpose.CONFIRM_EMAIL])
def test_a_link_does_nothing_but_its_purpose(
    app: Flask, db: Session, user: User, other: Purpose
) -> None:
    token = issue(db, user, Purpose.RESET_PASSWORD)
    assert consume(app, token, other) is None
    # ... and trying it for the wrong purpose did not use it up.
    assert consume(app, token, Purpose.RESET_PASSWORD) is not None


def test_a_newer_link_of_the_same_purpose_voids_the_older(
    app: Flask, db: Session, user: User
) -> None:
    older = issue(db, user, Purpose.RESET_PASSWORD)
    other_purpose = issue(db, user, Purpose.CONFIRM_EMAIL)
    newer = issue(db, user, Purpose.RESET_PASSWORD)
    assert consume(app, older, Purpose.RESET_PASSWORD) is None
    assert consume(app, newer, Purpose.RESET_PASSWORD) is not None
    assert consume(app, other_purpose, Purpose.CONFIRM_EMAIL) is not None


def test_an_expired_link_is_dead(app: Flask, db: Session, user: User) -> None:
    token = issue(db, user, Purpose.RESET_PASSWORD)
    db.execute(
        update(EmailLink).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    )
    db.commit()
    assert consume(app, token, Purpose.RESET_PASSWORD) is None


def test_a_reset_link_dies_when_the_password_changes(app: Flask, db: Session, user: User) -> None:
    token = issue(db, user, Purpose.RESET_PASSWORD)
    user.password_hash = app.extensions["idp.passwords"].hash("another long passphrase")
    db.commit()
    assert check_link(db, token, Purpose.RESET_PASSWORD) is None
    db.commit()  # end the read (on SQLite it holds the write lock)
    assert consume(app, token, Purpose.RESET_PASSWORD) is None


def test_a_link_belongs_to_its_user_only(app: Flask, db: Session, user: User) -> None:
    other = User(email="other@example.lv", email_display="other@example.lv", name="Other")
    db.add(other)
    db.commit()
    token = issue(db, other, Purpose.RESET_PASSWORD)
    found = consume(app, token, Purpose.RESET_PASSWORD)
    assert found is not None and found.id == other.id != user.id


def test_two_concurrent_uses_of_one_link_give_one_winner(
    app: Flask, db: Session, user: User
) -> None:
    """Two app instances (here: two threads with their own connections) racing."""
    for _ in range(5):
        token = issue(db, user, Purpose.ACTIVATE)
        barrier = threading.Barrier(2)
        results: list[User | None] = []

        def use(
            token: str = token,
            barrier: threading.Barrier = barrier,
            results: list[User | None] = results,
        ) -> None:
            with session_factory(app)() as session:
                barrier.wait()
                found = consume_link(session, token, Purpose.ACTIVATE)
                session.commit()
                results.append(found)

        threads = [threading.Thread(target=use) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(r is not None for r in results) == [False, True]


# --- the page of an unusable link -------------------------------------------------------------


def _bad_tokens(token: str) -> dict[str, str]:
    return {
        "tampered": token[:-1] + ("A" if token[-1] != "A" else "B"),
        "truncated": token[:20],
        "unknown": "x" * 43,
        "oversized": "y" * 5000,
        "not ascii": "ā" * 43,
    }


@pytest.mark.parametrize("case", ["tampered", "truncated", "unknown", "oversized", "not ascii"])
@pytest.mark.parametrize("purpose", list(Purpose))
def test_a_bad_link_shows_one_friendly_page(
    client: FlaskClient, db: Session, user: User, purpose: Purpose, case: str
) -> None:
    token = issue(db, user, purpose)
    response = client.get(path(purpose, _bad_tokens(token)[case]))
    assert response.status_code == 404
    page = response.get_data(as_text=True)
    assert "This link cannot be used" in page and "Forgot password?" in page
    # The POST (the step that would use the link) answers the same.
    assert client.post(path(purpose, _bad_tokens(token)[case])).status_code in (400, 404)


def test_used_expired_and_unknown_links_look_the_same(
    app: Flask, client: FlaskClient, db: Session, user: User
) -> None:
    used = issue(db, user, Purpose.ACTIVATE)
    consume(app, used, Purpose.ACTIVATE)
    # (The language switcher links back to the page's own URL: that part is the token.)
    pages = {
        client.get(path(Purpose.ACTIVATE, t)).get_data(as_text=True).replace(t, "TOKEN")
        for t in (used, "u" * 43)
    }
    assert len(pages) == 1
