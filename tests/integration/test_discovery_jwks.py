"""Scenarios: a relying app reads the discovery documents and the JWKS."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from joserfc.jwk import KeySet

from idp.consent.scopes import SUPPORTED_SCOPES
from idp.oidc.claims import SUPPORTED_CLAIMS
from tests.conftest import ISSUER

DOCUMENTS = ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"]
# Endpoint -> (method, status for an empty request): what "it exists" looks like.
ENDPOINTS = {
    "authorization_endpoint": ("GET", 400),
    "token_endpoint": ("POST", 400),
    "userinfo_endpoint": ("GET", 401),
    "jwks_uri": ("GET", 200),
    "revocation_endpoint": ("POST", 401),
    "introspection_endpoint": ("POST", 401),
    "end_session_endpoint": ("GET", 302),
}
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


@pytest.mark.parametrize("path", DOCUMENTS)
def test_discovery_document_names_this_issuer_and_is_cacheable(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert "max-age=" in response.headers["Cache-Control"]
    doc = response.get_json()
    assert doc["issuer"] == ISSUER
    assert doc["response_types_supported"] == ["code"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert doc["request_parameter_supported"] is False
    assert doc["request_uri_parameter_supported"] is False
    assert "none" not in doc["introspection_endpoint_auth_methods_supported"]
    assert set(doc["id_token_signing_alg_values_supported"]) == {"RS256", "ES256"}


def test_both_discovery_documents_are_the_same(client):
    first, second = (client.get(path).get_json() for path in DOCUMENTS)
    assert first == second


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_every_advertised_endpoint_exists_at_this_issuer(client, name):
    doc = client.get(DOCUMENTS[0]).get_json()
    url = doc[name]
    assert url.startswith(ISSUER + "/")
    method, status = ENDPOINTS[name]
    response = client.open(urlsplit(url).path, method=method)
    assert response.status_code == status, (url, response.get_data(as_text=True))


def test_advertised_scopes_and_claims_are_the_ones_the_idp_knows(client):
    doc = client.get(DOCUMENTS[0]).get_json()
    assert doc["scopes_supported"] == list(SUPPORTED_SCOPES)
    assert "openid" in doc["scopes_supported"]
    assert doc["claims_supported"] == list(SUPPORTED_CLAIMS)
    assert set(doc["grant_types_supported"]) == {
        "authorization_code",
        "refresh_token",
        "client_credentials",
    }
    assert set(doc["prompt_values_supported"]) == {"none", "login", "consent", "select_account"}


def test_jwks_publishes_only_public_members_with_unique_kids(client):
    response = client.get("/jwks.json")
    assert response.status_code == 200
    assert response.mimetype == "application/jwk-set+json"
    keys = response.get_json()["keys"]
    assert {key["alg"] for key in keys} >= {"RS256", "ES256"}
    kids = [key["kid"] for key in keys]
    assert len(kids) == len(set(kids))
    for key in keys:
        assert not PRIVATE_MEMBERS & set(key), key
        assert key["use"] == "sig"
        assert key["kty"] == ("RSA" if key["alg"] == "RS256" else "EC")
    # Importable as a key set (what a relying app does).
    assert len(KeySet.import_key_set({"keys": keys}).keys) == len(keys)


def test_jwks_cache_lifetime_is_the_configured_one(app, make_app):
    other = make_app(jwks_max_age=300).test_client()
    response = other.get("/jwks.json")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=300"
