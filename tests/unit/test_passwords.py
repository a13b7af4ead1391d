"""Passwords: argon2id with the parameters from settings (real argon2, no stubs)."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.accounts.services import authenticate_password, create_user
from idp.models import LoginFailure, LoginPairFailure
from idp.security import Passwords
from idp.settings import load_settings

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def passwords() -> Passwords:
    return Passwords(load_settings(environ={}))


def test_hashes_are_argon2id_with_the_default_parameters(passwords: Passwords) -> None:
    # OWASP minimum, from config/default.toml: m=19 MiB, t=2, p=1.
    assert passwords.hash(PASSWORD).startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_hashes_follow_the_configured_parameters() -> None:
    settings = load_settings(
        {"argon2_time_cost": 3, "argon2_memory_cost": 8192, "argon2_parallelism": 2}, environ={}
    )
    assert Passwords(settings).hash(PASSWORD).startswith("$argon2id$v=19$m=8192,t=3,p=2$")


def test_each_hash_is_salted(passwords: Passwords) -> None:
    assert passwords.hash(PASSWORD) != passwords.hash(PASSWORD)


def test_the_right_password_verifies(passwords: Passwords) -> None:
    assert passwords.verify(passwords.hash(PASSWORD), PASSWORD) is True


def test_a_wrong_password_does_not_verify(passwords: Passwords) -> None:
    stored = passwords.hash(PASSWORD)
    assert passwords.verify(stored, PASSWORD.upper()) is False
    assert passwords.verify(stored, "") is False


def test_an_unknown_user_never_verifies(passwords: Passwords) -> None:
    # No hash (no such account, or no password set): still False, whatever is typed.
    assert passwords.verify(None, PASSWORD) is False
    assert passwords.verify(None, "") is False


def test_a_corrupt_stored_hash_does_not_verify_nor_raise(passwords: Passwords) -> None:
    assert passwords.verify("not-a-hash", PASSWORD) is False
    assert passwords.verify("$argon2id$v=19$m=19456,t=2,p=1$broken", PASSWORD) is False


def test_a_hash_made_with_weaker_parameters_needs_a_rehash(passwords: Passwords) -> None:
    weaker = Passwords(load_settings({"argon2_memory_cost": 8192}, environ={}))
    old_hash = weaker.hash(PASSWORD)
    assert passwords.needs_rehash(old_hash) is True
    assert passwords.verify(old_hash, PASSWORD) is True  # still accepted, then upgraded
    assert passwords.needs_rehash(passwords.hash(PASSWORD)) is False


def test_a_login_upgrades_a_hash_made_with_older_parameters(app: Flask, db: Session) -> None:
    weaker = Passwords(load_settings({"argon2_memory_cost": 8192}, environ={}))
    user = create_user(db, weaker, email="anna@example.lv", name="Anna", password=PASSWORD)
    db.commit()
    assert user.password_hash is not None
    assert user.password_hash.startswith("$argon2id$v=19$m=8192,")

    settings = app.config["IDP_SETTINGS"]
    result = authenticate_password(
        db, settings, app.extensions["idp.passwords"], "anna@example.lv", PASSWORD, "192.0.2.1"
    )
    db.commit()
    assert result.user is not None
    assert result.user.password_hash is not None
    assert result.user.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_an_unknown_email_counts_as_a_failure_like_a_wrong_password(
    app: Flask, db: Session
) -> None:
    # Throttled the same way, so the throttle does not tell which addresses have accounts.
    result = authenticate_password(
        db,
        app.config["IDP_SETTINGS"],
        app.extensions["idp.passwords"],
        "Nobody@Example.lv",
        PASSWORD,
        "192.0.2.1",
    )
    db.commit()
    assert result.user is None
    assert result.retry_after == 0
    failures = {row.key: row.failures for row in db.scalars(select(LoginFailure))}
    pairs = {
        (row.address, row.account): row.failures for row in db.scalars(select(LoginPairFailure))
    }
    db.commit()
    assert failures == {"account:nobody@example.lv": 1}
    assert pairs == {("192.0.2.1", "nobody@example.lv"): 1}
