"""The DEMO bank (idp/demo/bank_sim.py): a small but correct OpenID provider mounted in demo
mode only, driven here like the IdP's OIDC connector drives it."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import KeySet

from idp.demo import bank_sim
from tests.conftest import ISSUER, csrf_token, pkce_pair, query

BANK = f"{ISSUER}/demo-bank"
CALLBACK = f"{ISSUER}/upstream/callback/demo-bank"
BASIC = (bank_sim.CLIENT_ID, bank_sim.CLIENT_SECRET)


@pytest.fixture
def bank(make_app: Callable[..., Flask]) -> FlaskClient:
    return make_app(mode="demo").test_client()


def authorization(**extra: str) -> tuple[dict[str, str], str]:
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": bank_sim.CLIENT_ID,
        "redirect_uri": CALLBACK,
        "scope": "openid profile",
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(extra)
    return params, verifier


def choose(bank: FlaskClient, params: dict[str, str], person: str | None) -> Any:
    """Open the bank's page and pick `person` (None: press Cancel)."""
    page = bank.get("/demo-bank/authorize", query_string=params)
    assert page.status_code == 200, page.get_data(as_text=True)
    html = page.get_data(as_text=True)
    form = {
        "csrf_token": csrf_token(html),
        "request": html.split('name="request" value="')[1].split('"')[0],
    }
    form.update({"person": person} if person else {"cancel": "Cancel"})
    return bank.post("/demo-bank/authorize", data=form)


def code_for(
    bank: FlaskClient, person: str = "32123456785", **extra: str
) -> tuple[str, str, dict[str, str]]:
    params, verifier = authorization(**extra)
    answer = choose(bank, params, person)
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith(CALLBACK + "?")
    got = query(answer.headers["Location"])
    assert got["state"] == params["state"] and got["iss"] == BANK
    return got["code"], verifier, params


def redeem(bank: FlaskClient, code: str, verifier: str, auth: tuple[str, str] = BASIC) -> Any:
    return bank.post(
        "/demo-bank/token",
        auth=auth,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CALLBACK,
            "code_verifier": verifier,
        },
    )


def test_discovery_describes_a_pkce_only_provider_with_iss_in_responses(bank: FlaskClient) -> None:
    doc = bank.get("/demo-bank/.well-known/openid-configuration").get_json()
    assert doc["issuer"] == BANK
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["token_endpoint_auth_methods_supported"] == ["client_secret_basic"]
    for endpoint in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        assert doc[endpoint].startswith(BANK + "/")
    keys = bank.get("/demo-bank/jwks.json").get_json()["keys"]
    assert len(keys) == 1 and "d" not in keys[0] and keys[0]["alg"] == "ES256"


def test_choosing_a_demo_person_yields_an_id_token_verified_by_the_jwks(bank: FlaskClient) -> None:
    page = bank.get("/demo-bank/authorize", query_string=authorization()[0])
    html = page.get_data(as_text=True)
    assert "DEMO bank — not a real bank" in html
    assert "Anna Liepa (010190-10001)" in html and "<script" not in html
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]

    code, verifier, params = code_for(bank, "01019010001")
    response = redeem(bank, code, verifier)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    keys = KeySet.import_key_set(bank.get("/demo-bank/jwks.json").get_json())
    token = jwt.decode(body["id_token"], keys, algorithms=["ES256"])
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": BANK},
        aud={"essential": True, "value": bank_sim.CLIENT_ID},
        azp={"essential": True, "value": bank_sim.CLIENT_ID},
        nonce={"essential": True, "value": params["nonce"]},
        exp={"essential": True},
        iat={"essential": True},
    ).validate(token.claims)
    claims = token.claims
    assert claims["acr"] == bank_sim.ACR
    assert (claims["personal_code"], claims["given_name"], claims["family_name"]) == (
        "01019010001",
        "Anna",
        "Liepa",
    )
    assert claims["sub"] == bank_sim.subject("01019010001") != bank_sim.subject("32123456785")
    info = bank.get(
        "/demo-bank/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}
    ).get_json()
    assert info["sub"] == claims["sub"] and info["personal_code"] == "01019010001"


@pytest.mark.parametrize(
    "pkce",
    [
        {"code_challenge": ""},
        {"code_challenge_method": "plain"},
        {"code_challenge_method": ""},
    ],
)
def test_pkce_s256_is_required_at_the_authorization_endpoint(
    bank: FlaskClient, pkce: dict[str, str]
) -> None:
    params, _verifier = authorization(**pkce)
    response = bank.get("/demo-bank/authorize", query_string=params)
    assert response.status_code == 302
    got = query(response.headers["Location"])
    assert got["error"] == "invalid_request" and got["state"] == params["state"]
    assert got["iss"] == BANK


def test_a_wrong_or_missing_code_verifier_is_refused(bank: FlaskClient) -> None:
    code, _verifier, _params = code_for(bank)
    assert redeem(bank, code, pkce_pair()[0]).get_json()["error"] == "invalid_grant"
    code, _verifier, _params = code_for(bank)
    response = bank.post(
        "/demo-bank/token",
        auth=BASIC,
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK},
    )
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def test_a_code_is_redeemed_once(bank: FlaskClient) -> None:
    code, verifier, _params = code_for(bank)
    assert redeem(bank, code, verifier).status_code == 200
    again = redeem(bank, code, verifier)
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"


def test_the_client_must_authenticate_with_its_secret(bank: FlaskClient) -> None:
    code, verifier, _params = code_for(bank)
    response = redeem(bank, code, verifier, auth=(bank_sim.CLIENT_ID, "wrong"))
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"
    assert "Basic" in response.headers["WWW-Authenticate"]


def test_cancel_returns_access_denied_with_state_and_iss(bank: FlaskClient) -> None:
    params, _verifier = authorization()
    answer = choose(bank, params, None)
    assert answer.status_code == 302 and answer.headers["Location"].startswith(CALLBACK)
    got = query(answer.headers["Location"])
    assert (got["error"], got["state"], got["iss"]) == ("access_denied", params["state"], BANK)
    assert "code" not in got


def test_a_decision_counts_once(bank: FlaskClient) -> None:
    params, _verifier = authorization()
    html = bank.get("/demo-bank/authorize", query_string=params).get_data(as_text=True)
    form = {
        "csrf_token": csrf_token(html),
        "person": "32123456785",
        "request": html.split('name="request" value="')[1].split('"')[0],
    }
    assert bank.post("/demo-bank/authorize", data=form).status_code == 302
    replay = bank.post("/demo-bank/authorize", data=form)
    assert replay.status_code == 400 and "Location" not in replay.headers


@pytest.mark.parametrize(
    "bad",
    [
        {"client_id": "someone-else"},
        {"redirect_uri": "https://attacker.example/cb"},
        {"redirect_uri": CALLBACK + "#fragment"},
    ],
)
def test_an_unknown_client_or_redirect_uri_is_never_redirected_to(
    bank: FlaskClient, bad: dict[str, str]
) -> None:
    response = bank.get("/demo-bank/authorize", query_string=authorization(**bad)[0])
    assert response.status_code == 400 and "Location" not in response.headers


def test_the_person_choice_needs_the_csrf_token(bank: FlaskClient) -> None:
    params, _verifier = authorization()
    html = bank.get("/demo-bank/authorize", query_string=params).get_data(as_text=True)
    request_id = html.split('name="request" value="')[1].split('"')[0]
    response = bank.post(
        "/demo-bank/authorize", data={"request": request_id, "person": "32123456785"}
    )
    assert response.status_code == 400 and "Location" not in response.headers


def test_the_demo_bank_exists_only_in_demo_mode(client: FlaskClient) -> None:
    assert client.get("/demo-bank/.well-known/openid-configuration").status_code == 404


def test_the_oidc_connector_logs_in_at_the_demo_bank_over_http(
    make_app: Callable[..., Flask],
) -> None:
    """The seeded demo-bank configuration, the real connector, the bank served for real."""
    pytest.importorskip("providers.oidc")
    import requests

    from idp.db import session_factory
    from idp.upstream_providers.services import enabled_providers
    from providers.registry import build_connector
    from tests.conftest import free_loopback_port
    from tests.integration.test_providers_cli import served

    issuer = f"http://127.0.0.1:{free_loopback_port()}"
    demo = make_app(mode="demo", issuer=issuer)
    assert demo.test_cli_runner().invoke(args=["demo", "seed"]).exit_code == 0
    settings = demo.config["IDP_SETTINGS"]
    session = session_factory(demo)()
    configs = {c.name: c for c in enabled_providers(session, settings)}
    session.close()
    assert [configs[n].method for n in ("demo-bank", "demo-eparaksts")] == ["bank", "esignature"]
    connector = build_connector(configs["demo-bank"], 5)
    with served(demo):
        start = connector.start_login(f"{issuer}/upstream/callback/demo-bank")
        browser = requests.Session()
        html = browser.get(start.redirect_url, timeout=5).text
        answer = browser.post(
            f"{issuer}/demo-bank/authorize",
            timeout=5,
            allow_redirects=False,
            data={
                "csrf_token": csrf_token(html),
                "person": "32098765438",
                "request": html.split('name="request" value="')[1].split('"')[0],
            },
        )
        identity = connector.finish_login(query(answer.headers["Location"]), start.pending)
    assert (identity.provider, identity.personal_code, identity.assurance) == (
        "demo-bank",
        "32098765438",
        "substantial",
    )
    assert (identity.given_name, identity.family_name) == ("Pēteris", "Ozols")
