"""Scenarios at the revocation (RFC 7009) and introspection (RFC 7662) endpoints."""

from __future__ import annotations

import pytest

from tests.conftest import ISSUER
from tests.integration.conftest import (
    basic,
    bearer,
    decode,
    introspect,
    login_tokens,
    refresh,
)


def revoke(client, rp, token: str, **extra: str):
    data = {"token": token, **extra}
    if rp.secret is None:
        return client.post("/revoke", data={**data, "client_id": rp.client_id})
    return client.post("/revoke", data=data, auth=basic(rp))


def assert_revoked_ok(response) -> None:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"


@pytest.fixture
def resource_server(make_client):
    """An API that checks the portal's access tokens (same audience)."""
    return make_client(
        name="Portal API",
        grant_types=["client_credentials"],
        audience="https://api.example.lv",
        scopes=["profile"],
    )


# --- revocation --------------------------------------------------------------------------------


def test_revoking_a_refresh_token_kills_its_family(client, browser, user, confidential_client):
    tokens = login_tokens(client, browser, confidential_client)
    rotated = refresh(client, confidential_client, tokens["refresh_token"]).get_json()

    assert_revoked_ok(
        revoke(
            client, confidential_client, rotated["refresh_token"], token_type_hint="refresh_token"
        )
    )
    assert introspect(client, confidential_client, rotated["refresh_token"]) == {"active": False}
    for access_token in (tokens["access_token"], rotated["access_token"]):
        assert introspect(client, confidential_client, access_token) == {"active": False}
        assert client.get("/userinfo", headers=bearer(access_token)).status_code == 401
    response = refresh(client, confidential_client, rotated["refresh_token"])
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_grant"


def test_revoking_leaves_other_logins_alone(client, browser, user, confidential_client):
    first = login_tokens(client, browser, confidential_client)
    second = login_tokens(client, browser, confidential_client)
    assert_revoked_ok(revoke(client, confidential_client, first["refresh_token"]))
    assert introspect(client, confidential_client, second["refresh_token"])["active"] is True
    assert refresh(client, confidential_client, second["refresh_token"]).status_code == 200


def test_revoking_an_access_token(client, browser, user, confidential_client):
    tokens = login_tokens(client, browser, confidential_client)
    assert_revoked_ok(
        revoke(client, confidential_client, tokens["access_token"], token_type_hint="access_token")
    )
    assert introspect(client, confidential_client, tokens["access_token"]) == {"active": False}
    assert client.get("/userinfo", headers=bearer(tokens["access_token"])).status_code == 401
    # Only that access token: the refresh token still gets new ones.
    assert refresh(client, confidential_client, tokens["refresh_token"]).status_code == 200


def test_revoking_with_a_wrong_hint_still_finds_the_token(
    client, browser, user, confidential_client
):
    tokens = login_tokens(client, browser, confidential_client)
    assert_revoked_ok(
        revoke(client, confidential_client, tokens["refresh_token"], token_type_hint="access_token")
    )
    assert introspect(client, confidential_client, tokens["refresh_token"]) == {"active": False}


@pytest.mark.parametrize("token", ["unknown", "a.b.c", "x" * 9000, ""])
def test_revoking_an_unknown_token_is_200(client, confidential_client, token):
    assert_revoked_ok(revoke(client, confidential_client, token))


def test_revoking_twice_is_200(client, browser, user, confidential_client):
    tokens = login_tokens(client, browser, confidential_client)
    assert_revoked_ok(revoke(client, confidential_client, tokens["refresh_token"]))
    assert_revoked_ok(revoke(client, confidential_client, tokens["refresh_token"]))


def test_a_client_cannot_revoke_another_clients_tokens(
    client, browser, user, confidential_client, make_client
):
    other = make_client(name="Other")
    tokens = login_tokens(client, browser, confidential_client)
    for token in (tokens["refresh_token"], tokens["access_token"]):
        # Answered like an unknown token (RFC 7009 §2.2), and nothing is revoked.
        assert_revoked_ok(revoke(client, other, token))
        assert introspect(client, confidential_client, token)["active"] is True
    assert refresh(client, confidential_client, tokens["refresh_token"]).status_code == 200


def test_public_client_revokes_its_refresh_token(client, browser, user, public_client):
    tokens = login_tokens(client, browser, public_client)
    assert_revoked_ok(revoke(client, public_client, tokens["refresh_token"]))
    response = refresh(client, public_client, tokens["refresh_token"])
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_grant"


def test_revocation_requires_client_authentication(client, browser, user, confidential_client):
    tokens = login_tokens(client, browser, confidential_client)
    for kwargs in (
        {},
        {"auth": (confidential_client.client_id, "wrong")},
        {"auth": ("no-such-client", "secret")},
    ):
        response = client.post("/revoke", data={"token": tokens["refresh_token"]}, **kwargs)
        assert response.status_code == 401, response.get_data(as_text=True)
        assert response.get_json()["error"] == "invalid_client"
    assert introspect(client, confidential_client, tokens["refresh_token"])["active"] is True


def test_revocation_without_token_is_invalid_request(client, confidential_client):
    response = client.post("/revoke", data={}, auth=basic(confidential_client))
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


@pytest.mark.parametrize("path", ["/revoke", "/introspect"])
def test_an_unknown_hint_is_unsupported_token_type(client, confidential_client, path):
    response = client.post(
        path, data={"token": "x", "token_type_hint": "id_token"}, auth=basic(confidential_client)
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == "unsupported_token_type"
    assert response.headers["Cache-Control"] == "no-store"


# --- introspection -------------------------------------------------------------------------------


def test_introspection_requires_client_authentication(
    client, browser, user, confidential_client, public_client
):
    tokens = login_tokens(client, browser, confidential_client)
    for kwargs in (
        {},
        {"auth": (confidential_client.client_id, "wrong")},
        {"auth": ("no-such-client", "secret")},
    ):
        response = client.post("/introspect", data={"token": tokens["access_token"]}, **kwargs)
        assert response.status_code == 401, response.get_data(as_text=True)
        assert response.get_json()["error"] == "invalid_client"
        assert "active" not in response.get_json()
    # A public client has no credentials to introspect with.
    response = client.post(
        "/introspect", data={"token": tokens["access_token"], "client_id": public_client.client_id}
    )
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"


def test_introspection_of_an_active_access_token(client, browser, user, confidential_client):
    tokens = login_tokens(client, browser, confidential_client)
    claims = decode(client, tokens["access_token"], "ES256").claims
    response = client.post(
        "/introspect", data={"token": tokens["access_token"]}, auth=basic(confidential_client)
    )
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["active"] is True
    assert body["token_type"] == "access_token"
    assert body["scope"] == "openid profile email"
    assert body["client_id"] == confidential_client.client_id
    assert body["sub"] == user.subject
    assert body["aud"] == "https://api.example.lv"
    assert body["iss"] == ISSUER
    for name in ("exp", "iat", "jti", "auth_time", "acr"):
        assert body[name] == claims[name], name


def test_introspection_of_an_active_refresh_token(client, browser, user, confidential_client):
    tokens = login_tokens(client, browser, confidential_client)
    body = introspect(client, confidential_client, tokens["refresh_token"])
    assert body["active"] is True
    assert body["token_type"] == "refresh_token"
    assert body["scope"] == "openid profile email"
    assert body["client_id"] == confidential_client.client_id
    assert body["sub"] == user.subject
    assert body["iss"] == ISSUER
    assert body["exp"] > body["iat"]


def test_a_rotated_refresh_token_is_inactive(client, browser, user, confidential_client):
    tokens = login_tokens(client, browser, confidential_client)
    rotated = refresh(client, confidential_client, tokens["refresh_token"]).get_json()
    assert introspect(client, confidential_client, tokens["refresh_token"]) == {"active": False}
    assert introspect(client, confidential_client, rotated["refresh_token"])["active"] is True


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "x" * 9000, ""])
def test_introspection_of_garbage_is_inactive(client, confidential_client, token):
    assert introspect(client, confidential_client, token) == {"active": False}


def test_resource_server_of_the_same_audience_may_introspect(
    client, browser, user, confidential_client, resource_server
):
    tokens = login_tokens(client, browser, confidential_client)
    body = introspect(client, resource_server, tokens["access_token"])
    assert body["active"] is True
    assert body["sub"] == user.subject
    # But not the portal's refresh tokens.
    assert introspect(client, resource_server, tokens["refresh_token"]) == {"active": False}


def test_unrelated_client_sees_other_tokens_as_inactive(
    client, browser, user, confidential_client, make_client
):
    other = make_client(name="Other", audience="https://other.example.lv")
    tokens = login_tokens(client, browser, confidential_client)
    assert introspect(client, other, tokens["access_token"]) == {"active": False}
    assert introspect(client, other, tokens["refresh_token"]) == {"active": False}


def test_introspection_without_token_is_invalid_request(client, confidential_client):
    response = client.post("/introspect", data={}, auth=basic(confidential_client))
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"
