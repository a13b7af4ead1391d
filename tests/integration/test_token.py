"""Scenarios at the token endpoint: codes, client authentication, client credentials,
refresh-token rotation, and what the issued tokens say."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
import time

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey
from sqlalchemy import select, update
from werkzeug.datastructures import MultiDict

from idp.models import AuthorizationCode, BrowserSession, RefreshToken, TokenFamily
from tests.conftest import ISSUER, Browser, pkce_pair
from tests.integration.conftest import (
    TOKEN_URL,
    basic,
    decode,
    get_code,
    introspect,
    login_tokens,
    redeem,
    refresh,
)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def assert_token_error(response, status: int, error: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.get_json()["error"] == error
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --- the authorization code ----------------------------------------------------------------


def test_code_is_single_use_and_reuse_revokes_what_it_issued(
    client, browser, user, confidential_client
):
    code, verifier, _ = get_code(browser, confidential_client)
    first = redeem(client, confidential_client, code, verifier)
    assert first.status_code == 200
    tokens = first.get_json()
    assert introspect(client, confidential_client, tokens["access_token"])["active"] is True

    second = redeem(client, confidential_client, code, verifier)
    assert_token_error(second, 400, "invalid_grant")
    assert introspect(client, confidential_client, tokens["access_token"]) == {"active": False}
    assert introspect(client, confidential_client, tokens["refresh_token"]) == {"active": False}
    assert_token_error(
        refresh(client, confidential_client, tokens["refresh_token"]), 400, "invalid_grant"
    )


def test_expired_code_is_invalid_grant(client, browser, db, user, confidential_client):
    code, verifier, _ = get_code(browser, confidential_client)
    db.execute(
        update(AuthorizationCode).values(
            expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        )
    )
    db.commit()
    assert_token_error(redeem(client, confidential_client, code, verifier), 400, "invalid_grant")


def test_code_expires_after_its_configured_lifetime(app, make_app, user, confidential_client):
    short = make_app(authorization_code_lifetime=1).test_client()
    code, verifier, _ = get_code(Browser(short), confidential_client)
    time.sleep(1.2)
    assert_token_error(redeem(short, confidential_client, code, verifier), 400, "invalid_grant")


def test_wrong_redirect_uri_is_invalid_grant(client, browser, user, make_client):
    rp = make_client(
        first_party=True, redirect_uris=["https://rp.example.lv/cb", "https://rp.example.lv/cb2"]
    )
    code, verifier, _ = get_code(browser, rp)
    for wrong in ("https://rp.example.lv/cb2", "https://rp.example.lv/cb/"):
        assert_token_error(
            redeem(client, rp, code, verifier, redirect_uri=wrong), 400, "invalid_grant"
        )
    response = client.post(
        "/token",
        data={"grant_type": "authorization_code", "code": code, "code_verifier": verifier},
        auth=basic(rp),
    )
    assert_token_error(response, 400, "invalid_grant")


def test_wrong_code_verifier_is_invalid_grant(client, browser, user, public_client):
    code, _, _ = get_code(browser, public_client)
    assert_token_error(redeem(client, public_client, code, pkce_pair()[0]), 400, "invalid_grant")


def test_public_client_must_send_the_verifier(client, browser, user, public_client):
    code, _, _ = get_code(browser, public_client)
    assert_token_error(redeem(client, public_client, code, None), 400, "invalid_request")


def test_unknown_code_is_invalid_grant(client, confidential_client):
    assert_token_error(
        redeem(client, confidential_client, "no-such-code", pkce_pair()[0]), 400, "invalid_grant"
    )


def test_code_of_another_client_is_invalid_grant(
    client, browser, user, confidential_client, make_client
):
    other = make_client(name="Other", first_party=True)
    code, verifier, _ = get_code(browser, confidential_client)
    assert_token_error(redeem(client, other, code, verifier), 400, "invalid_grant")
    # The failed attempt neither used nor revoked the code.
    assert redeem(client, confidential_client, code, verifier).status_code == 200


def test_missing_code_is_invalid_request(client, confidential_client):
    response = client.post(
        "/token",
        data={"grant_type": "authorization_code", "redirect_uri": confidential_client.redirect_uri},
        auth=basic(confidential_client),
    )
    assert_token_error(response, 400, "invalid_request")


# --- grant types -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "grant_type",
    [
        "password",
        "implicit",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "urn:ietf:params:oauth:grant-type:device_code",
    ],
)
def test_unsupported_grant_type(client, confidential_client, grant_type):
    response = client.post(
        "/token",
        data={"grant_type": grant_type, "username": "x", "password": "y"},
        auth=basic(confidential_client),
    )
    assert_token_error(response, 400, "unsupported_grant_type")


def test_missing_grant_type_is_invalid_request(client, confidential_client):
    response = client.post("/token", data={"code": "x"}, auth=basic(confidential_client))
    assert_token_error(response, 400, "invalid_request")


def test_repeated_parameter_is_invalid_request(client, browser, user, confidential_client):
    code, verifier, _ = get_code(browser, confidential_client)
    response = client.post(
        "/token",
        data=MultiDict(
            [
                ("grant_type", "authorization_code"),
                ("code", code),
                ("code", "other"),
                ("code_verifier", verifier),
                ("redirect_uri", confidential_client.redirect_uri),
            ]
        ),
        auth=basic(confidential_client),
    )
    assert_token_error(response, 400, "invalid_request")
    # The refused request did not use the code.
    assert redeem(client, confidential_client, code, verifier).status_code == 200


def test_client_not_registered_for_a_grant_is_unauthorized_client(client, make_client):
    rp = make_client(grant_types=["authorization_code"])
    response = client.post("/token", data={"grant_type": "client_credentials"}, auth=basic(rp))
    assert_token_error(response, 400, "unauthorized_client")


# --- client authentication ---------------------------------------------------------------------


def test_client_secret_basic(client, browser, user, confidential_client):
    code, verifier, _ = get_code(browser, confidential_client)
    response = client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": confidential_client.redirect_uri,
        },
        auth=basic(confidential_client),
    )
    assert response.status_code == 200, response.get_data(as_text=True)


def test_client_secret_post(client, browser, user, make_client):
    rp = make_client(first_party=True, auth_method="client_secret_post")
    code, verifier, _ = get_code(browser, rp)
    response = client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": rp.redirect_uri,
            "client_id": rp.client_id,
            "client_secret": rp.secret,
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)


def test_a_client_must_use_its_registered_auth_method(client, browser, user, confidential_client):
    code, verifier, _ = get_code(browser, confidential_client)
    response = client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": confidential_client.redirect_uri,
            "client_id": confidential_client.client_id,
            "client_secret": confidential_client.secret,
        },
    )
    assert_token_error(response, 401, "invalid_client")


def test_wrong_secret_is_invalid_client(client, confidential_client, make_client):
    response = client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        auth=(confidential_client.client_id, "wrong-secret"),
    )
    assert_token_error(response, 401, "invalid_client")
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    post = make_client(auth_method="client_secret_post", grant_types=["client_credentials"])
    response = client.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_id": post.client_id,
            "client_secret": "wrong-secret",
        },
    )
    assert_token_error(response, 401, "invalid_client")


def test_unknown_client_is_invalid_client(client, confidential_client):
    response = client.post(
        "/token", data={"grant_type": "client_credentials"}, auth=("no-such-client", "secret")
    )
    assert_token_error(response, 401, "invalid_client")
    response = client.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "no-such-client",
            "client_secret": "secret",
        },
    )
    assert_token_error(response, 401, "invalid_client")


def test_no_client_authentication_is_invalid_client(client, confidential_client):
    response = client.post("/token", data={"grant_type": "client_credentials"})
    assert_token_error(response, 401, "invalid_client")
    # A confidential client cannot pass itself off as public by omitting the secret.
    response = client.post(
        "/token",
        data={"grant_type": "client_credentials", "client_id": confidential_client.client_id},
    )
    assert_token_error(response, 401, "invalid_client")


def test_public_client_authenticates_with_none(client, browser, user, public_client):
    code, verifier, _ = get_code(browser, public_client)
    response = client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": public_client.redirect_uri,
            "client_id": public_client.client_id,
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "refresh_token" in response.get_json()


# --- private_key_jwt ---------------------------------------------------------------------------


@pytest.fixture
def client_key() -> RSAKey:
    return RSAKey.generate_key(2048)


@pytest.fixture
def jwt_client(make_client, client_key):
    public = {**client_key.as_dict(private=False), "kid": "rp-1", "alg": "RS256"}
    return make_client(
        name="Meter service",
        auth_method="private_key_jwt",
        first_party=True,
        jwks={"keys": [public]},
        grant_types=["authorization_code", "client_credentials"],
    )


def assertion(client_id: str, key, alg: str = "RS256", **claims) -> str:
    now = int(time.time())
    body = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(12),
        **claims,
    }
    return jwt.encode({"alg": alg, "kid": "rp-1"}, body, key, algorithms=[alg])


def with_assertion(value: str, **data: str) -> dict[str, str]:
    return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": value, **data}


def test_private_key_jwt_client_credentials(client, jwt_client, client_key):
    response = client.post(
        "/token",
        data=with_assertion(
            assertion(jwt_client.client_id, client_key), grant_type="client_credentials"
        ),
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    claims = decode(client, response.get_json()["access_token"], "ES256").claims
    assert claims["client_id"] == jwt_client.client_id


def test_private_key_jwt_redeems_a_code(client, browser, user, jwt_client, client_key):
    code, verifier, _ = get_code(browser, jwt_client)
    response = client.post(
        "/token",
        data=with_assertion(
            assertion(jwt_client.client_id, client_key),
            grant_type="authorization_code",
            code=code,
            code_verifier=verifier,
            redirect_uri=jwt_client.redirect_uri,
        ),
    )
    assert response.status_code == 200, response.get_data(as_text=True)


@pytest.mark.parametrize("aud", [ISSUER, ISSUER + "/token"])
def test_private_key_jwt_accepts_the_issuer_or_token_url_as_audience(
    client, jwt_client, client_key, aud
):
    response = client.post(
        "/token",
        data=with_assertion(
            assertion(jwt_client.client_id, client_key, aud=aud), grant_type="client_credentials"
        ),
    )
    assert response.status_code == 200, response.get_data(as_text=True)


def test_replayed_client_assertion_is_invalid_client(client, jwt_client, client_key):
    value = assertion(jwt_client.client_id, client_key)
    first = client.post("/token", data=with_assertion(value, grant_type="client_credentials"))
    assert first.status_code == 200, first.get_data(as_text=True)
    again = client.post("/token", data=with_assertion(value, grant_type="client_credentials"))
    assert_token_error(again, 401, "invalid_client")


def test_replayed_assertion_fails_even_if_the_first_request_failed(client, jwt_client, client_key):
    value = assertion(jwt_client.client_id, client_key)
    first = client.post(
        "/token",
        data=with_assertion(
            value,
            grant_type="authorization_code",
            code="no-such-code",
            redirect_uri=jwt_client.redirect_uri,
        ),
    )
    assert_token_error(first, 400, "invalid_grant")
    again = client.post("/token", data=with_assertion(value, grant_type="client_credentials"))
    assert_token_error(again, 401, "invalid_client")


def test_client_assertion_with_alg_none_is_invalid_client(client, jwt_client):
    now = int(time.time())
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64url(
        json.dumps(
            {
                "iss": jwt_client.client_id,
                "sub": jwt_client.client_id,
                "aud": TOKEN_URL,
                "exp": now + 60,
                "jti": secrets.token_urlsafe(8),
            }
        ).encode()
    )
    response = client.post(
        "/token", data=with_assertion(f"{header}.{payload}.", grant_type="client_credentials")
    )
    assert_token_error(response, 401, "invalid_client")


def test_client_assertion_signed_with_hs256_is_invalid_client(client, jwt_client, client_key):
    # The classic confusion: HMAC keyed with the client's *public* key.
    public_json = json.dumps(client_key.as_dict(private=False)).encode()
    forged = assertion(jwt_client.client_id, OctKey.import_key(public_json), alg="HS256")
    response = client.post("/token", data=with_assertion(forged, grant_type="client_credentials"))
    assert_token_error(response, 401, "invalid_client")


def test_client_assertion_signed_by_another_key_is_invalid_client(client, jwt_client):
    forged = assertion(jwt_client.client_id, RSAKey.generate_key(2048))
    response = client.post("/token", data=with_assertion(forged, grant_type="client_credentials"))
    assert_token_error(response, 401, "invalid_client")


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "https://other.example/token"},
        {"exp": int(time.time()) - 3600},
        {"iss": "someone-else"},
        {"jti": None},
    ],
)
def test_client_assertion_with_bad_claims_is_invalid_client(client, jwt_client, client_key, claims):
    value = assertion(jwt_client.client_id, client_key, **claims)
    if claims.get("jti", "") is None:
        # Rebuild without the jti member at all.
        now = int(time.time())
        value = jwt.encode(
            {"alg": "RS256", "kid": "rp-1"},
            {
                "iss": jwt_client.client_id,
                "sub": jwt_client.client_id,
                "aud": TOKEN_URL,
                "exp": now + 60,
            },
            client_key,
            algorithms=["RS256"],
        )
    response = client.post("/token", data=with_assertion(value, grant_type="client_credentials"))
    assert_token_error(response, 401, "invalid_client")


def test_secret_client_cannot_switch_to_an_assertion(client, confidential_client, client_key):
    value = assertion(confidential_client.client_id, client_key)
    response = client.post("/token", data=with_assertion(value, grant_type="client_credentials"))
    assert_token_error(response, 401, "invalid_client")


# --- client credentials ----------------------------------------------------------------------


def test_client_credentials_with_a_subset_of_its_scopes(client, make_client):
    rp = make_client(
        grant_types=["client_credentials"],
        audience="https://api.example.lv",
        scopes=["profile", "email"],
    )
    response = client.post(
        "/token", data={"grant_type": "client_credentials", "scope": "email"}, auth=basic(rp)
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["scope"] == "email"
    assert "refresh_token" not in body and "id_token" not in body
    claims = decode(client, body["access_token"], "ES256").claims
    assert claims["sub"] == rp.client_id
    assert claims["scope"] == "email"
    assert claims["aud"] == "https://api.example.lv"


def test_client_credentials_without_scope_gets_its_allowed_scopes(client, make_client):
    rp = make_client(grant_types=["client_credentials"], scopes=["openid", "profile", "email"])
    response = client.post("/token", data={"grant_type": "client_credentials"}, auth=basic(rp))
    assert response.status_code == 200
    assert response.get_json()["scope"] == "profile email"


@pytest.mark.parametrize("scope", ["phone", "email phone", "admin"])
def test_client_credentials_out_of_range_scope_is_invalid_scope(client, make_client, scope):
    rp = make_client(grant_types=["client_credentials"], scopes=["profile", "email"])
    response = client.post(
        "/token", data={"grant_type": "client_credentials", "scope": scope}, auth=basic(rp)
    )
    assert_token_error(response, 400, "invalid_scope")


def test_public_client_cannot_use_client_credentials(client, public_client):
    response = client.post(
        "/token", data={"grant_type": "client_credentials", "client_id": public_client.client_id}
    )
    assert_token_error(response, 401, "invalid_client")


# --- refresh tokens ---------------------------------------------------------------------------


def test_refresh_rotates_the_refresh_token(client, browser, user, confidential_client):
    tokens = login_tokens(client, browser, confidential_client)
    seen = {tokens["refresh_token"]}
    current = tokens["refresh_token"]
    for _ in range(3):
        response = refresh(client, confidential_client, current)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.headers["Cache-Control"] == "no-store"
        body = response.get_json()
        assert body["refresh_token"] not in seen
        assert body["scope"] == tokens["scope"]
        seen.add(body["refresh_token"])
        current = body["refresh_token"]


def test_reused_refresh_token_revokes_the_whole_family(client, browser, user, confidential_client):
    tokens = login_tokens(client, browser, confidential_client)
    old = tokens["refresh_token"]
    newer = refresh(client, confidential_client, old).get_json()
    newest = refresh(client, confidential_client, newer["refresh_token"]).get_json()

    assert_token_error(refresh(client, confidential_client, old), 400, "invalid_grant")
    assert_token_error(
        refresh(client, confidential_client, newest["refresh_token"]), 400, "invalid_grant"
    )
    assert introspect(client, confidential_client, newest["access_token"]) == {"active": False}


def test_refresh_token_of_another_client_is_invalid_grant(
    client, browser, user, confidential_client, make_client
):
    other = make_client(name="Other")
    tokens = login_tokens(client, browser, confidential_client)
    assert_token_error(refresh(client, other, tokens["refresh_token"]), 400, "invalid_grant")
    # Still usable by its own client.
    assert refresh(client, confidential_client, tokens["refresh_token"]).status_code == 200


def test_refresh_may_narrow_the_scope_but_not_widen_it(client, browser, user, confidential_client):
    tokens = login_tokens(client, browser, confidential_client)
    response = client.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "scope": "openid phone",
            "refresh_token": tokens["refresh_token"],
        },
        auth=basic(confidential_client),
    )
    assert_token_error(response, 400, "invalid_scope")
    response = client.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "scope": "openid",
            "refresh_token": tokens["refresh_token"],
        },
        auth=basic(confidential_client),
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["scope"] == "openid"


def test_refresh_token_dies_at_the_absolute_lifetime(app, make_app, db, user, confidential_client):
    short = make_app(refresh_token_absolute_lifetime=2).test_client()
    tokens = login_tokens(short, Browser(short), confidential_client)
    rotated = refresh(short, confidential_client, tokens["refresh_token"])
    assert rotated.status_code == 200, rotated.get_data(as_text=True)
    family_end = db.scalar(select(TokenFamily.expires_at))
    newest_end = db.scalar(select(RefreshToken.expires_at).order_by(RefreshToken.id.desc()))
    db.rollback()  # end the read: on SQLite every transaction holds the write lock
    assert newest_end <= family_end  # rotation never extends the cap
    time.sleep(max(0.0, family_end.timestamp() - time.time()) + 0.2)
    assert_token_error(
        refresh(short, confidential_client, rotated.get_json()["refresh_token"]),
        400,
        "invalid_grant",
    )


def test_missing_refresh_token_is_invalid_request(client, confidential_client):
    response = client.post(
        "/token", data={"grant_type": "refresh_token"}, auth=basic(confidential_client)
    )
    assert_token_error(response, 400, "invalid_request")


def test_unknown_refresh_token_is_invalid_grant(client, confidential_client):
    assert_token_error(refresh(client, confidential_client, "x" * 43), 400, "invalid_grant")


# --- response headers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, status, unauthenticated_status",
    [
        ({"grant_type": "client_credentials"}, 200, 401),
        ({"grant_type": "password"}, 400, 400),
        ({}, 400, 400),
        ({"grant_type": "authorization_code"}, 400, 401),
        ({"grant_type": "refresh_token", "refresh_token": "nope"}, 400, 401),
    ],
)
def test_every_token_response_is_no_store(
    client, confidential_client, data, status, unauthenticated_status
):
    for response, expected in (
        (client.post("/token", data=data, auth=basic(confidential_client)), status),
        (client.post("/token", data=data), unauthenticated_status),
    ):
        assert response.status_code == expected, response.get_data(as_text=True)
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Pragma"] == "no-cache"
        assert response.mimetype == "application/json"


# --- what the tokens say -----------------------------------------------------------------


def test_id_token_claims(client, browser, db, user, confidential_client):
    tokens = login_tokens(client, browser, confidential_client)
    params = tokens["_params"]
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 300
    id_token = decode(client, tokens["id_token"], "RS256")
    claims = id_token.claims
    assert id_token.header["alg"] == "RS256"
    assert claims["iss"] == ISSUER
    assert claims["aud"] == confidential_client.client_id
    assert claims["sub"] == user.subject
    assert claims["nonce"] == params["nonce"]
    now = time.time()
    assert now - 60 <= claims["iat"] <= now + 1
    assert claims["exp"] - claims["iat"] == 600
    browser_session = db.scalar(select(BrowserSession))
    assert claims["auth_time"] == int(browser_session.auth_time.timestamp())
    assert claims["sid"] == browser_session.sid
    assert claims["acr"] == "low"
    assert claims["amr"] == ["pwd"]
    digest = hashlib.sha256(tokens["access_token"].encode("ascii")).digest()
    assert claims["at_hash"] == b64url(digest[:16])
    # Claims for the granted scopes (openid profile email), none for phone.
    assert claims["email"] == "Janis.Berzins@Example.lv"
    assert claims["name"] == "Jānis Bērziņš"
    assert "phone_number" not in claims


def test_id_token_after_refresh_keeps_the_login_facts_but_no_nonce(
    client, browser, user, confidential_client
):
    tokens = login_tokens(client, browser, confidential_client)
    first = decode(client, tokens["id_token"], "RS256").claims
    again = refresh(client, confidential_client, tokens["refresh_token"]).get_json()
    claims = decode(client, again["id_token"], "RS256").claims
    assert "nonce" not in claims
    for name in ("sub", "auth_time", "sid", "acr", "amr", "aud"):
        assert claims[name] == first[name], name
    digest = hashlib.sha256(again["access_token"].encode("ascii")).digest()
    assert claims["at_hash"] == b64url(digest[:16])


def test_es256_id_token_for_a_client_registered_for_it(client, browser, user, make_client):
    rp = make_client(first_party=True, id_token_alg="ES256")
    tokens = login_tokens(client, browser, rp)
    id_token = decode(client, tokens["id_token"], "ES256")
    assert id_token.header["alg"] == "ES256"
    digest = hashlib.sha256(tokens["access_token"].encode("ascii")).digest()
    assert id_token.claims["at_hash"] == b64url(digest[:16])


def test_no_id_token_without_openid(client, browser, user, confidential_client):
    tokens = login_tokens(client, browser, confidential_client, scope="profile email")
    assert "id_token" not in tokens
    assert tokens["scope"] == "profile email"


def test_access_token_is_an_rfc9068_jwt(client, browser, user, confidential_client):
    tokens = login_tokens(client, browser, confidential_client)
    access = decode(client, tokens["access_token"], "ES256")
    assert access.header["typ"] == "at+jwt"
    assert access.header["alg"] == "ES256"
    claims = access.claims
    assert claims["iss"] == ISSUER
    assert claims["sub"] == user.subject
    assert claims["aud"] == "https://api.example.lv"
    assert claims["client_id"] == confidential_client.client_id
    assert claims["scope"] == "openid profile email"
    assert claims["exp"] - claims["iat"] == 300
    again = login_tokens(client, browser, confidential_client)
    assert decode(client, again["access_token"], "ES256").claims["jti"] != claims["jti"]
    rotated = refresh(client, confidential_client, tokens["refresh_token"]).get_json()
    assert decode(client, rotated["access_token"], "ES256").claims["jti"] != claims["jti"]


def test_access_token_audience_defaults_to_the_client_id(client, browser, user, make_client):
    rp = make_client(first_party=True)
    tokens = login_tokens(client, browser, rp)
    assert decode(client, tokens["access_token"], "ES256").claims["aud"] == rp.client_id
