"""Signing keys: created on first start, encrypted at rest, rotated in two steps (publish,
then sign), and removed from JWKS only when every token they signed has expired.

Each test runs on a database of its own: rotation changes keys the shared app signs with.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from cryptography.fernet import Fernet, InvalidToken
from flask import Flask
from joserfc import jws, jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from idp.accounts.services import create_user
from idp.cli import alembic_config
from idp.db import session_factory, utcnow
from idp.keys import KeyDecryptionError
from idp.models import SigningKey
from idp.oidc import registry
from tests.conftest import PASSWORD, Browser, RegisteredClient, auth_params, fresh_database, query

EMAIL = "janis.berzins@example.lv"
# Every test app re-reads the keys at each request, so what a test sees is the database.
NO_CACHE = {"keys_refresh_interval": 0}


@pytest.fixture
def fresh_url(tmp_path: Path) -> Iterator[str]:
    with fresh_database(tmp_path) as url:
        command.upgrade(alembic_config(url), "head")
        yield url


@dataclass
class Installation:
    app: Flask
    rp: RegisteredClient

    def keys(self) -> list[SigningKey]:
        with session_factory(self.app)() as session:
            return list(session.scalars(select(SigningKey).order_by(SigningKey.created_at)))

    def kids(self, alg: str) -> list[str]:
        return [k.kid for k in self.keys() if k.alg == alg]

    def jwks_kids(self) -> set[str]:
        response = self.app.test_client().get("/jwks.json")
        assert response.status_code == 200
        return {key["kid"] for key in response.get_json()["keys"]}

    def travel(self, seconds: int) -> None:
        """Let `seconds` pass for the keys: every time on their rows moves back by as much
        (the clock itself is not faked)."""
        back = dt.timedelta(seconds=seconds)
        with session_factory(self.app)() as session:
            for key in session.scalars(select(SigningKey)):
                key.created_at -= back
                key.activates_at -= back
                if key.retired_at is not None:
                    key.retired_at -= back
                if key.expires_at is not None:
                    key.expires_at -= back
            session.commit()

    def tokens(self) -> dict[str, Any]:
        """A full code flow; the token response (ID token and access token)."""
        client = self.app.test_client()
        params, verifier = auth_params(self.rp)
        response = Browser(client).authorize(params)
        assert response.status_code == 302, response.get_data(as_text=True)
        token = client.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": query(response.headers["Location"])["code"],
                "redirect_uri": self.rp.redirect_uri,
                "code_verifier": verifier,
            },
            auth=(self.rp.client_id, self.rp.secret),
        )
        assert token.status_code == 200, token.get_data(as_text=True)
        body: dict[str, Any] = token.get_json()
        # Whatever signed them, relying apps can verify them with the published JWKS.
        jwks = KeySet.import_key_set(self.app.test_client().get("/jwks.json").get_json())
        jwt.decode(body["id_token"], jwks, algorithms=["RS256"])
        jwt.decode(body["access_token"], jwks, algorithms=["ES256"])
        return body


@pytest.fixture
def install(make_app: Callable[..., Flask], fresh_url: str) -> Callable[..., Installation]:
    """An app on a new database, with a person and a first-party client (no consent)."""

    def factory(**overrides: Any) -> Installation:
        app = make_app(database_url=fresh_url, **{**NO_CACHE, **overrides})
        with session_factory(app)() as session:
            create_user(
                session,
                app.extensions["idp.passwords"],
                email=EMAIL,
                name="Jānis",
                password=PASSWORD,
            )
            new = registry.add_client(
                session, name="Portal", first_party=True, redirect_uris=["https://rp.example.lv/cb"]
            )
            session.commit()
            rp = RegisteredClient(new.client.client_id, new.secret, "https://rp.example.lv/cb")
        return Installation(app, rp)

    return factory


def kid_of(token: str) -> str:
    return str(jws.extract_compact(token.encode()).headers()["kid"])


def cli_json(app: Flask, *args: str) -> Any:
    result = app.test_cli_runner().invoke(args=[*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def states(app: Flask) -> dict[str, str]:
    return {row["kid"]: row["state"] for row in cli_json(app, "keys", "list")}


# --- first start and storage -------------------------------------------------------------------


def test_the_first_start_creates_one_rs256_and_one_es256_key(
    install: Callable[..., Installation], make_app: Callable[..., Flask], fresh_url: str
) -> None:
    idp = install()
    assert idp.keys() == []  # nothing before the first request
    published = idp.jwks_kids()
    keys = idp.keys()
    assert sorted(k.alg for k in keys) == ["ES256", "RS256"]
    assert published == {k.kid for k in keys}

    # A restart (another instance) reuses them.
    again = make_app(database_url=fresh_url, **NO_CACHE)
    assert again.test_client().get("/jwks.json").status_code == 200
    assert {k.kid for k in idp.keys()} == published


def test_db_upgrade_creates_the_first_keys_once(
    make_app: Callable[..., Flask], fresh_url: str
) -> None:
    app = make_app(database_url=fresh_url)
    first = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert first.exit_code == 0, first.output
    assert first.output.count("created signing key") == 2
    second = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert second.exit_code == 0, second.output
    assert "created signing key" not in second.output


def test_private_keys_are_stored_encrypted_with_the_key_encryption_key(
    install: Callable[..., Installation], base_settings: dict[str, Any]
) -> None:
    idp = install()
    idp.jwks_kids()
    keys = idp.keys()
    assert len(keys) == 2
    right = Fernet(base_settings["key_encryption_key"])
    wrong = Fernet(Fernet.generate_key())
    for key in keys:
        assert b"PRIVATE KEY" not in key.private_key_encrypted
        assert b"-----BEGIN" not in key.private_key_encrypted
        assert b"PRIVATE KEY" in right.decrypt(key.private_key_encrypted)
        with pytest.raises(InvalidToken):
            wrong.decrypt(key.private_key_encrypted)
        assert "d" not in key.public_jwk  # the published half has no private part


def test_a_wrong_key_encryption_key_is_a_clear_error(
    install: Callable[..., Installation], make_app: Callable[..., Flask], fresh_url: str
) -> None:
    install().jwks_kids()  # keys exist, encrypted with the right key
    other_key = base64.urlsafe_b64encode(b"w" * 32).decode()
    wrong = make_app(database_url=fresh_url, key_encryption_key=other_key, **NO_CACHE)
    with pytest.raises(KeyDecryptionError, match="wrong key_encryption_key"):
        wrong.extensions["idp.keyring"].reload()


# --- rotation ---------------------------------------------------------------------------------


def test_a_rotated_key_is_published_at_once_but_signs_only_after_the_delay(
    install: Callable[..., Installation],
) -> None:
    idp = install(key_activation_delay=3600, jwks_max_age=300)
    before = idp.tokens()
    old_rs, old_es = kid_of(before["id_token"]), kid_of(before["access_token"])

    rotated = cli_json(idp.app, "keys", "rotate")
    new_kids = {row["kid"] for row in rotated}
    assert sorted(row["alg"] for row in rotated) == ["ES256", "RS256"]
    assert idp.jwks_kids() == {old_rs, old_es} | new_kids

    during = idp.tokens()
    assert kid_of(during["id_token"]) == old_rs
    assert kid_of(during["access_token"]) == old_es
    assert states(idp.app) == {
        old_rs: "active",
        old_es: "active",
        **{kid: "published" for kid in new_kids},
    }

    # The delay has passed: the new keys take over, the old ones are retired but published.
    idp.travel(3600 + 1)
    after = idp.tokens()
    assert {kid_of(after["id_token"]), kid_of(after["access_token"])} == new_kids
    assert states(idp.app) == {
        old_rs: "retired",
        old_es: "retired",
        **{kid: "active" for kid in new_kids},
    }
    assert idp.jwks_kids() == {old_rs, old_es} | new_kids


def test_without_delay_the_new_key_signs_and_the_old_stays_published_until_it_expires(
    install: Callable[..., Installation],
) -> None:
    idp = install(key_activation_delay=0, jwks_max_age=300)
    before = idp.tokens()
    old = [kid_of(before["id_token"]), kid_of(before["access_token"])]

    rotated = idp.app.test_cli_runner().invoke(args=["keys", "rotate"])
    assert rotated.exit_code == 0, rotated.output
    new_kids = set(idp.kids("RS256") + idp.kids("ES256")) - set(old)
    assert len(new_kids) == 2

    after = idp.tokens()
    assert {kid_of(after["id_token"]), kid_of(after["access_token"])} == new_kids
    assert idp.jwks_kids() == set(old) | new_kids
    assert states(idp.app) == {**dict.fromkeys(old, "retired"), **dict.fromkeys(new_kids, "active")}

    # Kept until the longest-lived token it signed has expired, plus one JWKS cache period.
    longest = max(600, 300) + 300  # id_token_lifetime, access_token_lifetime, jwks_max_age
    for key in idp.keys():
        if key.kid in old:
            assert key.expires_at is not None
            remaining = (key.expires_at - utcnow()).total_seconds()
            assert longest - 60 < remaining <= longest

    idp.travel(longest + 1)
    assert idp.jwks_kids() == new_kids
    assert states(idp.app) == {**dict.fromkeys(old, "expired"), **dict.fromkeys(new_kids, "active")}


def test_rotating_one_algorithm_leaves_the_other_alone(
    install: Callable[..., Installation],
) -> None:
    idp = install(key_activation_delay=0, jwks_max_age=0)
    idp.jwks_kids()
    es_before = idp.kids("ES256")
    rotated = cli_json(idp.app, "keys", "rotate", "--alg", "RS256")
    assert [row["alg"] for row in rotated] == ["RS256"]
    assert idp.kids("ES256") == es_before
    assert len(idp.kids("RS256")) == 2


# --- verification ---------------------------------------------------------------------------------


def test_a_token_verified_before_is_refused_once_its_key_is_no_longer_published(
    install: Callable[..., Installation],
) -> None:
    # KeyRing.verify remembers verified signatures; that must not outlive the key.
    idp = install(key_activation_delay=0, jwks_max_age=300)
    access = idp.tokens()["access_token"]
    client = idp.app.test_client()
    bearer = {"Authorization": f"Bearer {access}"}
    assert client.get("/userinfo", headers=bearer).status_code == 200
    assert client.get("/userinfo", headers=bearer).status_code == 200  # remembered

    assert idp.app.test_cli_runner().invoke(args=["keys", "rotate"]).exit_code == 0
    assert client.get("/userinfo", headers=bearer).status_code == 200  # retired, still published
    idp.travel(max(600, 300) + 300 + 1)
    assert kid_of(access) not in idp.jwks_kids()
    assert idp.app.extensions["idp.keyring"].verify(access) is None
    assert client.get("/userinfo", headers=bearer).status_code == 401


def test_a_changed_token_is_checked_again_after_the_genuine_one_was_verified(
    install: Callable[..., Installation],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from idp import keys

    monkeypatch.setattr(keys, "VERIFIED_CACHE_SIZE", 2)
    idp = install()
    keyring = idp.app.extensions["idp.keyring"]
    genuine = [idp.tokens()["access_token"] for _ in range(3)]
    for token in genuine:
        assert keyring.verify(token) is not None
    assert len(keyring._verified) == 2  # bounded: the oldest was dropped

    header, payload, signature = genuine[-1].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "someone-else"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert keyring.verify(f"{header}.{forged_payload}.{signature}") is None
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    assert keyring.verify(f"{header}.{payload}.{flipped}") is None
    # Characters outside base64url are refused, not skipped: no variants of one token.
    for junk in ("!!!!", "====", "%20", "+/"):
        assert keyring.verify(f"{header}.{payload}.{signature}{junk}") is None
        assert keyring.verify(f"{header}{junk}.{payload}.{signature}") is None
    assert keyring.verify(genuine[-1]) is not None
