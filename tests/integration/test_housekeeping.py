"""`idp db purge` deletes only what has expired."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import func, select

from idp import access_history
from idp.access_history import Kind, Origin
from idp.db import utcnow
from idp.models import (
    AccountEvent,
    BrowserSession,
    EmailLink,
    Interaction,
    LoginFailure,
    LoginPairFailure,
)


def test_purge_deletes_expired_rows_and_keeps_live_ones(runner, db, user):
    now = utcnow()
    past, future = now - dt.timedelta(hours=2), now + dt.timedelta(hours=2)
    db.add_all(
        [
            Interaction(id="old", client_id="c", params={}, expires_at=past),
            Interaction(id="live", client_id="c", params={}, expires_at=future),
            BrowserSession(
                id_hash="a" * 64,
                sid="s1",
                user_id=user.id,
                auth_time=past,
                acr="low",
                amr=["pwd"],
                expires_at=past,
            ),
            BrowserSession(
                id_hash="b" * 64,
                sid="s2",
                user_id=user.id,
                auth_time=now,
                acr="low",
                amr=["pwd"],
                expires_at=future,
            ),
            LoginFailure(
                key="account:a@example.lv", failures=3, last_failure_at=now - dt.timedelta(days=2)
            ),
            LoginPairFailure(
                address="192.0.2.1",
                account="a@example.lv",
                failures=3,
                last_failure_at=now - dt.timedelta(days=2),
            ),
            LoginPairFailure(
                address="192.0.2.1", account="b@example.lv", failures=1, last_failure_at=now
            ),
        ]
    )
    db.commit()

    result = runner.invoke(args=["db", "purge", "--json"])
    assert result.exit_code == 0, result.output
    counts = json.loads(result.output)
    assert counts["interactions"] == 1
    assert counts["browser_sessions"] == 1
    assert counts["login_failures"] == 1
    assert counts["login_pair_failures"] == 1
    db.expire_all()
    assert db.scalars(select(Interaction.id)).all() == ["live"]
    assert db.scalars(select(BrowserSession.sid)).all() == ["s2"]
    assert db.scalar(select(func.count()).select_from(LoginFailure)) == 0
    assert db.scalars(select(LoginPairFailure.account)).all() == ["b@example.lv"]
    db.commit()


def test_purge_deletes_long_dead_links_and_keeps_live_ones(runner, db, user):
    now = utcnow()
    db.add_all(
        [
            EmailLink(
                token_hash="a" * 64,
                purpose="reset_password",
                user_id=user.id,
                state_hash="s",
                expires_at=now - dt.timedelta(days=2),
            ),
            EmailLink(
                token_hash="b" * 64,
                purpose="reset_password",
                user_id=user.id,
                state_hash="s",
                expires_at=now + dt.timedelta(minutes=30),
            ),
        ]
    )
    db.commit()
    result = runner.invoke(args=["db", "purge", "--json"])
    assert json.loads(result.output)["email_links"] == 1
    db.expire_all()
    assert db.scalars(select(EmailLink.token_hash)).all() == ["b" * 64]
    db.commit()


def test_purge_deletes_the_access_history_past_its_retention_and_keeps_changes(
    app, runner, db, user
):
    days = app.config["IDP_SETTINGS"].access_history_days
    now = utcnow()
    old, recent = now - dt.timedelta(days=days, hours=1), now - dt.timedelta(days=days - 1)
    for kind, at in (
        (Kind.LOGIN, old),
        (Kind.LOGIN_FAILED, old),
        (Kind.TOKENS_ISSUED, old),
        (Kind.PASSWORD_CHANGED, old),  # a change the person made: kept
        (Kind.EMAIL_CHANGED, old),
        (Kind.LOGIN, recent),
    ):
        access_history.record(db, kind, user.id, Origin("192.0.2.1")).at = at
    db.commit()

    result = runner.invoke(args=["db", "purge", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["account_events"] == 3
    db.expire_all()
    kept = sorted(db.scalars(select(AccountEvent.kind)))
    assert kept == ["email_changed", "login", "password_changed"]
    db.commit()
