"""Password-login throttling (issue 11): per account, per (address, account), and per
address only by the number of distinct accounts that failed from it — so the many people
behind one address (mobile carriers' CGNAT, offices) are not slowed down by each other."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

import idp.accounts.services as services
from idp.accounts.services import LoginResult, authenticate_password, create_user
from idp.db import session_factory, utcnow
from idp.models import LoginFailure, LoginPairFailure
from idp.security import Passwords
from idp.settings import Settings, load_settings

PASSWORD = "correct horse battery staple"
WRONG = "not the password at all"
EMAIL = "janis.berzins@example.lv"
SHARED = "100.64.0.1"  # a carrier-grade NAT address, many people behind it


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(services, "utcnow", clock)
    return clock


@pytest.fixture(scope="module")
def cheap_passwords() -> Passwords:
    # Real argon2id, cheap parameters: these tests make hundreds of attempts.
    return Passwords(load_settings({"argon2_memory_cost": 64, "argon2_time_cost": 1}, environ={}))


@pytest.fixture
def person(db: Session, cheap_passwords: Passwords) -> str:
    create_user(db, cheap_passwords, email=EMAIL, name="Jānis", password=PASSWORD)
    db.commit()
    return EMAIL


Attempt = Callable[..., LoginResult]


@pytest.fixture
def attempt(app: Flask, db: Session, cheap_passwords: Passwords) -> Iterator[Attempt]:
    """attempt(email, password, ip, **setting_overrides) -> LoginResult, committed."""
    defaults: Settings = app.config["IDP_SETTINGS"]

    def run(email: str, password: str, ip: str, **overrides: Any) -> LoginResult:
        settings = dataclasses.replace(defaults, **overrides)
        result = authenticate_password(db, settings, cheap_passwords, email, password, ip)
        db.commit()
        return result

    yield run


def pair_rows(db: Session, address: str) -> dict[str, int]:
    rows = db.execute(
        select(LoginPairFailure.account, LoginPairFailure.failures).where(
            LoginPairFailure.address == address
        )
    ).all()
    db.commit()
    return {account: failures for account, failures in rows}


# --- the shared address (the case) ----------------------------------------------------


def test_twenty_strangers_failing_from_one_address_do_not_refuse_a_right_password(
    attempt: Attempt, person: str, clock: Clock
) -> None:
    for n in range(20):
        result = attempt(f"nobody{n}@example.lv", WRONG, SHARED)
        assert result.user is None and result.retry_after == 0
    result = attempt(person, PASSWORD, SHARED)
    assert result.user is not None
    assert result.user.email == EMAIL


def test_credential_stuffing_from_one_address_is_slowed_past_the_distinct_account_budget(
    attempt: Attempt, person: str, clock: Clock, app: Flask
) -> None:
    budget = app.config["IDP_SETTINGS"].login_address_free_accounts
    assert budget == 100  # the default, config/default.toml
    for n in range(budget):
        assert attempt(f"victim{n}@example.lv", WRONG, SHARED).retry_after == 0
    # Every attempt from the address now waits, whatever the account, before any check.
    refused = attempt(person, PASSWORD, SHARED)
    assert refused.user is None
    assert refused.retry_after == 2
    assert attempt(f"victim{budget}@example.lv", WRONG, SHARED).retry_after == 2
    # The delay grows with each further account that is let through and fails.
    clock.advance(2)
    assert attempt(f"victim{budget}@example.lv", WRONG, SHARED).retry_after == 0
    assert attempt(f"victim{budget + 1}@example.lv", WRONG, SHARED).retry_after == 4
    # Other addresses are not affected.
    assert attempt(person, PASSWORD, "192.0.2.50").user is not None


def test_repeated_failures_on_one_account_do_not_count_against_the_address(
    attempt: Attempt, person: str, clock: Clock
) -> None:
    budgets = {
        "login_address_free_accounts": 2,
        "login_pair_free_attempts": 10,
        "login_free_attempts": 10,
    }
    for _ in range(6):
        assert attempt("someone@example.lv", WRONG, SHARED, **budgets).retry_after == 0
    assert attempt(person, PASSWORD, SHARED, **budgets).user is not None


# --- per account and per (address, account) ------------------------------------------------


def test_failures_on_one_account_from_many_addresses_slow_that_account_down(
    attempt: Attempt, person: str, clock: Clock
) -> None:
    for n in range(5):  # login_free_attempts
        assert attempt(person, WRONG, f"192.0.2.{n + 1}").retry_after == 0
    refused = attempt(person, PASSWORD, "198.51.100.1")
    assert refused.user is None
    assert refused.retry_after == 2
    # Other accounts from those addresses are not affected.
    assert attempt("anyone@example.lv", WRONG, "192.0.2.1").retry_after == 0
    # Never locked for good: after the wait the right password is checked again.
    clock.advance(2)
    assert attempt(person, PASSWORD, "198.51.100.1").user is not None


def test_one_address_hammering_one_account_waits_after_the_pair_budget(
    attempt: Attempt, person: str, clock: Clock
) -> None:
    for _ in range(3):  # login_pair_free_attempts
        assert attempt(person, WRONG, "203.0.113.9").retry_after == 0
    assert attempt(person, PASSWORD, "203.0.113.9").retry_after == 2
    # The account's own budget (5) is not spent: its owner elsewhere logs in at once.
    assert attempt(person, PASSWORD, "192.0.2.1").user is not None


def test_unknown_and_existing_accounts_are_counted_alike(
    attempt: Attempt, person: str, clock: Clock, db: Session
) -> None:
    for email in (person, "nobody@example.lv"):
        for _ in range(3):
            assert attempt(email, WRONG, SHARED).retry_after == 0
        assert attempt(email, PASSWORD, SHARED).retry_after == 2
    assert pair_rows(db, SHARED) == {EMAIL: 3, "nobody@example.lv": 3}


# --- the window and resets --------------------------------------------------------------------


def test_failures_older_than_the_window_are_forgotten(
    attempt: Attempt, person: str, clock: Clock, app: Flask, db: Session
) -> None:
    window = app.config["IDP_SETTINGS"].login_failure_window
    few = {"login_address_free_accounts": 3}
    for n in range(3):
        attempt(f"stranger{n}@example.lv", WRONG, SHARED, **few)
    for n in range(5):
        attempt(person, WRONG, f"192.0.2.{n + 1}", **few)
    assert attempt(person, PASSWORD, SHARED, **few).retry_after > 0

    clock.advance(window + 1)
    # A failure now starts the counts again from one.
    assert attempt(person, WRONG, "192.0.2.1", **few).retry_after == 0
    failures = db.scalar(
        select(LoginFailure.failures).where(LoginFailure.key == f"account:{EMAIL}")
    )
    db.commit()
    assert failures == 1
    assert pair_rows(db, "192.0.2.1")[EMAIL] == 1
    assert attempt(person, PASSWORD, SHARED, **few).user is not None


def test_a_login_resets_the_account_and_the_pair_but_not_the_addresss_other_accounts(
    attempt: Attempt, person: str, clock: Clock, db: Session
) -> None:
    budgets = {"login_address_free_accounts": 4}
    for other in ("a@example.lv", "b@example.lv"):
        attempt(other, WRONG, SHARED, **budgets)
    for _ in range(2):
        attempt(person, WRONG, SHARED, **budgets)
    assert attempt(person, PASSWORD, SHARED, **budgets).user is not None
    assert pair_rows(db, SHARED) == {"a@example.lv": 1, "b@example.lv": 1}
    assert db.scalar(select(LoginFailure).where(LoginFailure.key == f"account:{EMAIL}")) is None
    db.commit()
    # The pair starts afresh: two more failures stay within its budget of three.
    for _ in range(2):
        assert attempt(person, WRONG, SHARED, **budgets).retry_after == 0
    assert attempt(person, PASSWORD, SHARED, **budgets).user is not None
    # The two other accounts still count for the address: two more and it waits.
    attempt("c@example.lv", WRONG, SHARED, **budgets)
    attempt("d@example.lv", WRONG, SHARED, **budgets)
    assert attempt(person, PASSWORD, SHARED, **budgets).retry_after == 2


def test_odd_input_is_throttled_without_an_error(attempt: Attempt, clock: Clock) -> None:
    long_ip = "f" * 500
    for _ in range(3):
        assert attempt("x" * 1000, WRONG, long_ip).retry_after == 0
    assert attempt("x" * 1000, WRONG, long_ip).retry_after == 2
    assert attempt("not an address", WRONG, "").retry_after == 0


# --- concurrency ----------------------------------------------------------------------------------


def test_two_failures_for_the_same_new_key_at_once_both_count_without_an_error(
    app: Flask, db: Session
) -> None:
    settings = app.config["IDP_SETTINGS"]
    passwords = app.extensions["idp.passwords"]
    first = session_factory(app)()
    authenticate_password(first, settings, passwords, "new@example.lv", WRONG, SHARED)
    # The second request starts before the first commits: it saw no row either, and must
    # not fail on the primary key (PostgreSQL) nor fail to wait its turn (SQLite).
    errors: list[BaseException] = []

    def second() -> None:
        session = session_factory(app)()
        try:
            authenticate_password(session, settings, passwords, "new@example.lv", WRONG, SHARED)
            session.commit()
        except BaseException as exc:  # noqa: BLE001  (reported by the assertion below)
            errors.append(exc)
        finally:
            session.close()

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(1.0)  # let it block on the first transaction
    first.commit()
    first.close()
    thread.join(60)
    assert not thread.is_alive()
    assert errors == []
    assert db.scalars(select(LoginFailure.failures)).all() == [2]
    assert pair_rows(db, SHARED) == {"new@example.lv": 2}
