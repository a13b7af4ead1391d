"""A person logs in through /authorize and the client redeems the code."""

from __future__ import annotations

from joserfc import jwt
from joserfc.jwk import KeySet

from tests.conftest import ISSUER, auth_params, query


def test_confidential_client_gets_tokens_for_a_logged_in_person(
    client, browser, user, confidential_client
):
    params, verifier = auth_params(confidential_client)
    response = browser.authorize(params)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"].startswith(confidential_client.redirect_uri), (
        response.headers["Location"]
    )
    answer = query(response.headers["Location"])
    assert answer["state"] == params["state"]
    assert answer["iss"] == ISSUER

    token = client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": answer["code"],
            "redirect_uri": confidential_client.redirect_uri,
            "code_verifier": verifier,
        },
        auth=(confidential_client.client_id, confidential_client.secret),
    )
    assert token.status_code == 200, token.get_data(as_text=True)
    assert token.headers["Cache-Control"] == "no-store"
    body = token.get_json()
    jwks = KeySet.import_key_set(client.get("/jwks.json").get_json())
    id_token = jwt.decode(body["id_token"], jwks, algorithms=["RS256"])
    assert id_token.header["alg"] == "RS256"
    assert id_token.claims["nonce"] == params["nonce"]
    assert id_token.claims["aud"] == confidential_client.client_id
    assert id_token.claims["sub"] == user.subject
    assert id_token.claims["amr"] == ["pwd"]
    access = jwt.decode(body["access_token"], jwks, algorithms=["ES256"])
    assert access.header["typ"] == "at+jwt"
    assert access.claims["aud"] == "https://api.example.lv"
