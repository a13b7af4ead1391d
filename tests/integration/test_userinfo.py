"""Scenarios at the userinfo endpoint: who may read what, and what is refused."""

from __future__ import annotations

import time

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy import update

from idp.models import User
from tests.conftest import Browser
from tests.integration.conftest import basic, bearer, decode, login_tokens


def assert_invalid_token(response) -> None:
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.get_json()["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_userinfo_with_a_bearer_token(client, browser, user, customer, confidential_client, method):
    tokens = login_tokens(client, browser, confidential_client)
    response = client.open("/userinfo", method=method, headers=bearer(tokens["access_token"]))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_json() == {
        "sub": user.subject,
        "name": "Jānis Bērziņš",
        "email": "Janis.Berzins@Example.lv",
        "email_verified": True,
        # The acting context (docs/domain.md): the user is the customer's contractor.
        "customer": {"id": customer.id, "number": customer.number, "name": customer.name},
        "role": "contractor",
        "rights": ["invoices.read", "meter_readings.submit", "users.manage"],
    }


def test_userinfo_sub_matches_the_id_token(client, browser, user, confidential_client):
    tokens = login_tokens(client, browser, confidential_client)
    info = client.get("/userinfo", headers=bearer(tokens["access_token"])).get_json()
    assert info["sub"] == decode(client, tokens["id_token"], "RS256").claims["sub"]


def test_bearer_scheme_is_case_insensitive(client, browser, user, confidential_client):
    tokens = login_tokens(client, browser, confidential_client)
    response = client.get(
        "/userinfo", headers={"Authorization": f"bearer {tokens['access_token']}"}
    )
    assert response.status_code == 200


ACTING_CLAIMS = {"customer", "role", "rights"}


@pytest.mark.parametrize(
    "scope, expected",
    [
        ("openid", {"sub"}),
        ("openid email", {"sub", "email", "email_verified"}),
        ("openid profile", {"sub", "name"}),
        ("openid phone", {"sub", "phone_number", "phone_number_verified"}),
        (
            "openid profile email phone",
            {"sub", "name", "email", "email_verified", "phone_number", "phone_number_verified"},
        ),
    ],
)
def test_scopes_limit_the_claims(client, browser, user, confidential_client, scope, expected):
    tokens = login_tokens(client, browser, confidential_client, scope=scope)
    info = client.get("/userinfo", headers=bearer(tokens["access_token"])).get_json()
    # The acting context comes whatever the scope (the user is a contractor).
    assert set(info) == expected | ACTING_CLAIMS


def test_scopes_the_client_may_not_have_are_not_released(client, browser, user, make_client):
    rp = make_client(first_party=True, scopes=["openid", "profile"])
    tokens = login_tokens(client, browser, rp, scope="openid profile email phone")
    assert tokens["scope"] == "openid profile"
    info = client.get("/userinfo", headers=bearer(tokens["access_token"])).get_json()
    assert set(info) == {"sub", "name"} | ACTING_CLAIMS


def test_missing_token_is_401_with_a_challenge(client):
    for method in ("GET", "POST"):
        response = client.open("/userinfo", method=method)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        # RFC 6750 §3.1: no credentials at all -> no error code in the challenge.
        assert "error=" not in response.headers["WWW-Authenticate"]
        assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer ",
        "Token abc",
    ],
)
def test_other_authorization_schemes_are_401(client, authorization):
    response = client.get("/userinfo", headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "a.b.c",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
        "x" * 9000,
        "é" * 10,
    ],
)
def test_garbage_token_is_invalid_token(client, token):
    assert_invalid_token(client.get("/userinfo", headers=bearer(token)))


def test_token_in_the_query_string_is_not_accepted(client, browser, user, confidential_client):
    tokens = login_tokens(client, browser, confidential_client)
    response = client.get("/userinfo", query_string={"access_token": tokens["access_token"]})
    assert response.status_code == 401


def test_id_token_is_not_an_access_token(client, browser, user, confidential_client):
    tokens = login_tokens(client, browser, confidential_client)
    assert_invalid_token(client.get("/userinfo", headers=bearer(tokens["id_token"])))


def test_forged_token_with_our_kid_is_invalid_token(client, browser, user, confidential_client):
    tokens = login_tokens(client, browser, confidential_client)
    real = decode(client, tokens["access_token"], "ES256")
    forged = jwt.encode(
        real.header,
        {**real.claims, "sub": "someone-else"},
        ECKey.generate_key("P-256"),
        algorithms=["ES256"],
    )
    assert_invalid_token(client.get("/userinfo", headers=bearer(forged)))


def test_tampered_token_is_invalid_token(client, browser, user, confidential_client):
    tokens = login_tokens(client, browser, confidential_client)
    header, payload, signature = tokens["access_token"].split(".")
    tampered = f"{header}.{payload}.{signature[:-4]}AAAA"
    assert_invalid_token(client.get("/userinfo", headers=bearer(tampered)))


def test_expired_token_is_invalid_token(app, make_app, user, confidential_client):
    # exp is counted from a whole second, so a 2 s token lives between 1 and 2 s.
    short = make_app(access_token_lifetime=2).test_client()
    tokens = login_tokens(short, Browser(short), confidential_client)
    assert short.get("/userinfo", headers=bearer(tokens["access_token"])).status_code == 200
    time.sleep(2.1)
    assert_invalid_token(short.get("/userinfo", headers=bearer(tokens["access_token"])))


def test_revoked_token_is_invalid_token(client, browser, user, confidential_client):
    tokens = login_tokens(client, browser, confidential_client)
    response = client.post(
        "/revoke", data={"token": tokens["access_token"]}, auth=basic(confidential_client)
    )
    assert response.status_code == 200
    assert_invalid_token(client.get("/userinfo", headers=bearer(tokens["access_token"])))


def test_token_of_a_revoked_family_is_invalid_token(client, browser, user, confidential_client):
    tokens = login_tokens(client, browser, confidential_client)
    client.post("/revoke", data={"token": tokens["refresh_token"]}, auth=basic(confidential_client))
    assert_invalid_token(client.get("/userinfo", headers=bearer(tokens["access_token"])))


def test_token_of_a_disabled_user_is_invalid_token(client, browser, db, user, confidential_client):
    tokens = login_tokens(client, browser, confidential_client)
    db.execute(update(User).values(status="disabled"))
    db.commit()
    assert_invalid_token(client.get("/userinfo", headers=bearer(tokens["access_token"])))


def test_client_credentials_token_gets_no_user_info(client, confidential_client):
    issued = client.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "openid profile"},
        auth=basic(confidential_client),
    )
    assert issued.status_code == 200, issued.get_data(as_text=True)
    response = client.get("/userinfo", headers=bearer(issued.get_json()["access_token"]))
    assert_invalid_token(response)
    assert "sub" not in response.get_json()


def test_token_without_openid_scope_is_insufficient_scope(
    client, browser, user, confidential_client
):
    tokens = login_tokens(client, browser, confidential_client, scope="profile email")
    response = client.get("/userinfo", headers=bearer(tokens["access_token"]))
    assert response.status_code == 403
    assert response.get_json()["error"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    assert response.headers["Cache-Control"] == "no-store"
