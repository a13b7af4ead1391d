"""Step-up (docs/domain.md, "Ways to log in"): a client asking `acr_values=substantial` (or
`high`) of a person whose session is `low` gets the bank/eSignature choice, never a silent
low-assurance token; `acr` in the ID token tells the truth."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.conftest import Browser, RegisteredClient, auth_params, csrf_token, query
from tests.integration.conftest import decode, redeem


def test_a_low_session_is_sent_to_the_login_page_without_a_password_form(
    client: FlaskClient, browser: Browser, user: object, confidential_client: RegisteredClient
) -> None:
    assert browser.login().status_code == 302  # a password session: acr "low"
    params, _ = auth_params(confidential_client, acr_values="substantial")
    response = client.get("/authorize", query_string=params)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith("/login?"), location  # not a code for the client
    page = client.get(location)
    text = page.get_data(as_text=True)
    assert "asks for a login with your internet bank or eSignature" in text
    assert 'name="password"' not in text
    assert "Continue as" not in text
    # Posting the password anyway (a hand-made form) is refused as well.
    token = csrf_token(client.get("/forgot-password").get_data(as_text=True))
    refused = client.post(
        "/login",
        data={
            "csrf_token": token,
            "interaction": query(location)["interaction"],
            "email": "janis.berzins@example.lv",
            "password": "correct horse battery staple",
        },
    )
    assert refused.status_code == 403


def test_prompt_none_cannot_step_up_silently(
    client: FlaskClient, browser: Browser, user: object, confidential_client: RegisteredClient
) -> None:
    browser.login()
    params, _ = auth_params(confidential_client, acr_values="high substantial", prompt="none")
    response = client.get("/authorize", query_string=params)
    assert query(response.headers["Location"])["error"] == "login_required"


def test_a_request_the_session_satisfies_gets_its_code_and_the_true_acr(
    client: FlaskClient, browser: Browser, user: object, confidential_client: RegisteredClient
) -> None:
    browser.login()
    for acr_values in ("low", "low substantial", "urn:unknown:level"):
        params, verifier = auth_params(confidential_client, acr_values=acr_values)
        response = client.get("/authorize", query_string=params)
        answer = query(response.headers["Location"])
        assert "code" in answer, (acr_values, answer)
        tokens = redeem(client, confidential_client, answer["code"], verifier).json
        assert decode(client, tokens["id_token"], "RS256").claims["acr"] == "low"


def test_discovery_lists_the_assurance_levels(client: FlaskClient) -> None:
    meta = client.get("/.well-known/openid-configuration").json
    assert meta["acr_values_supported"] == ["low", "substantial", "high"]
