"""Client registration rules (idp.oidc.registry): redirect URIs and secret handling."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from idp.clients import find_client
from idp.models import Client
from idp.oidc import registry
from idp.security import hash_secret, secret_matches

# --- redirect URIs (RFC 9700 §4.1; RFC 8252 §7.3 for loopback) ----------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "https://rp.example.lv/cb",
        "https://rp.example.lv:8443/cb?tenant=1",
        "http://127.0.0.1:8765/cb",
        "http://localhost/cb",
        "http://[::1]:8080/cb",
    ],
)
def test_acceptable_redirect_uris(uri: str) -> None:
    assert registry.validate_redirect_uri(uri) == uri


@pytest.mark.parametrize(
    "uri",
    [
        "http://rp.example.lv/cb",  # plain http off loopback
        "http://localhost.evil.example/cb",  # looks like loopback, is not
        "http://127.0.0.1@evil.example/cb",  # userinfo trick: the host is evil.example
        "https://rp.example.lv/cb#frag",  # fragment (RFC 6749 §3.1.2)
        "https://rp.example.lv/cb#",  # empty fragment is still a fragment
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "/cb",  # relative
        "rp.example.lv/cb",  # no scheme
        "https:///cb",  # no host
        "https://rp.example.lv/c b",  # whitespace
        "http://[::1/cb",  # unparsable
    ],
)
def test_refused_redirect_uris(uri: str) -> None:
    with pytest.raises(registry.RegistrationError) as caught:
        registry.validate_redirect_uri(uri)
    assert "redirect URI" in str(caught.value)


def test_add_client_refuses_a_bad_redirect_uri_and_stores_nothing(db: Session) -> None:
    with pytest.raises(registry.RegistrationError):
        registry.add_client(db, name="Bad", redirect_uris=["http://rp.example.lv/cb"])
    db.rollback()
    assert db.scalar(select(Client)) is None


def test_a_post_logout_redirect_uri_follows_the_same_rules(db: Session) -> None:
    with pytest.raises(registry.RegistrationError):
        registry.add_client(
            db,
            name="Bad",
            redirect_uris=["https://rp.example.lv/cb"],
            post_logout_redirect_uris=["javascript:alert(1)"],
        )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("client_id", "x" * 65),  # longer than the column: a DataError on PostgreSQL
        ("client_id", "two words"),
        ("client_id", "id:with:colons"),  # would be ambiguous in HTTP Basic credentials
        ("client_id", ""),
        ("name", "N" * 256),
        ("audience", "https://api.example.lv/" + "a" * 240),
    ],
)
def test_add_client_refuses_values_that_do_not_fit(db: Session, field: str, value: str) -> None:
    arguments: dict[str, Any] = {
        "name": "Portal",
        "redirect_uris": ["https://rp.example.lv/cb"],
        field: value,
    }
    with pytest.raises(registry.RegistrationError):
        registry.add_client(db, **arguments)


def test_a_chosen_client_id_within_the_rules_is_kept(db: Session) -> None:
    new = registry.add_client(
        db,
        name="Portal",
        redirect_uris=["https://rp.example.lv/cb"],
        client_id="demo-portal_2.v1~x",
    )
    assert new.client.client_id == "demo-portal_2.v1~x"


# --- secrets ----------------------------------------------------------------------------------


def test_the_secret_is_stored_only_as_its_hash(db: Session) -> None:
    new = registry.add_client(db, name="Portal", redirect_uris=["https://rp.example.lv/cb"])
    db.commit()
    assert new.secret
    db.expire_all()
    row = db.scalar(select(Client).where(Client.client_id == new.client.client_id))
    assert row is not None
    assert row.secret_hash == hash_secret(new.secret)
    stored = [str(getattr(row, attr.key)) for attr in inspect(Client).column_attrs]
    assert not any(new.secret in value for value in stored)
    assert "secret_hash" not in registry.describe(row)


def test_a_public_client_has_no_secret(db: Session) -> None:
    new = registry.add_client(
        db, name="Mobile", redirect_uris=["http://127.0.0.1:8765/cb"], auth_method="none"
    )
    assert new.secret is None
    assert new.client.secret_hash is None


def test_rotating_the_secret_invalidates_the_old_one(db: Session) -> None:
    new = registry.add_client(db, name="Portal", redirect_uris=["https://rp.example.lv/cb"])
    db.commit()
    assert new.secret is not None
    rotated = registry.rotate_secret(db, new.client.client_id)
    db.commit()
    assert rotated != new.secret

    # As the token endpoint sees the client (idp.clients).
    seen = find_client(db, new.client.client_id)
    assert seen is not None
    assert seen.check_client_secret(rotated) is True
    assert seen.check_client_secret(new.secret) is False
    assert not secret_matches(new.secret, seen.secret_hash)


def test_a_client_without_a_secret_cannot_rotate_one(db: Session) -> None:
    new = registry.add_client(
        db, name="Mobile", redirect_uris=["http://127.0.0.1:8765/cb"], auth_method="none"
    )
    db.commit()
    with pytest.raises(registry.RegistrationError):
        registry.rotate_secret(db, new.client.client_id)
