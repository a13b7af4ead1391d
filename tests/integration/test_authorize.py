"""Scenarios at the authorization endpoint: what is redirected back to the client, what is
shown as our own page, and when the person must log in or consent again."""

from __future__ import annotations

import datetime as dt
import html
import re
from urllib.parse import urlsplit

import pytest
from sqlalchemy import update

from idp.models import BrowserSession
from tests.conftest import ISSUER, auth_params, csrf_token, pkce_pair, query
from tests.integration.conftest import decode, get_code, redeem


@pytest.fixture
def third_party(make_client):
    """A client that is not pre-approved: the person must consent."""
    return make_client(name="Invoice service")


def client_home(rp) -> str:
    """The start address the expired page links to: the origin of the redirect URI."""
    parts = urlsplit(rp.redirect_uri)
    return f"{parts.scheme}://{parts.netloc}/"


def assert_error_page(response, error: str) -> None:
    """Our own HTML page, status 400, never a redirect."""
    assert response.status_code == 400, response.headers.get("Location")
    assert "Location" not in response.headers
    assert response.mimetype == "text/html"
    assert error in response.get_data(as_text=True)


def assert_error_redirect(response, rp, error: str, state: str | None) -> dict[str, str]:
    assert response.status_code == 302, response.get_data(as_text=True)
    location = response.headers["Location"]
    assert location.startswith(rp.redirect_uri + "?"), location
    answer = query(location)
    assert answer["error"] == error, answer
    assert answer["iss"] == ISSUER
    assert "code" not in answer
    if state is None:
        assert "state" not in answer
    else:
        assert answer["state"] == state
    return answer


def login_page_interaction(response) -> str:
    """The response sends the browser to the login page; returns the interaction id."""
    assert response.status_code == 302, response.get_data(as_text=True)
    location = response.headers["Location"]
    assert urlsplit(location).path == "/login", location
    return query(location)["interaction"]


def code_redirect(response, rp, state: str) -> str:
    assert response.status_code == 302, response.get_data(as_text=True)
    location = response.headers["Location"]
    assert location.startswith(rp.redirect_uri + "?"), location
    answer = query(location)
    assert answer["state"] == state
    assert answer["iss"] == ISSUER
    return answer["code"]


# --- errors sent back to the client ----------------------------------------------------------


@pytest.mark.parametrize("response_type", ["token", "id_token", "code id_token", "none"])
def test_other_response_types_are_refused_back_to_the_client(
    client, confidential_client, response_type
):
    params, _ = auth_params(confidential_client, response_type=response_type)
    response = client.get("/authorize", query_string=params)
    assert_error_redirect(
        response, confidential_client, "unsupported_response_type", params["state"]
    )


def test_request_object_is_not_supported(client, confidential_client):
    params, _ = auth_params(confidential_client, request="eyJhbGciOiJub25lIn0.e30.")
    response = client.get("/authorize", query_string=params)
    assert_error_redirect(response, confidential_client, "request_not_supported", params["state"])


def test_request_uri_is_not_supported(client, confidential_client):
    params, _ = auth_params(confidential_client, request_uri="https://rp.example.lv/req.jwt")
    response = client.get("/authorize", query_string=params)
    assert_error_redirect(
        response, confidential_client, "request_uri_not_supported", params["state"]
    )


@pytest.mark.parametrize(
    "extra",
    [
        {"response_mode": "fragment"},
        {"prompt": "none login"},
        {"prompt": "sometimes"},
        {"max_age": "-1"},
        {"max_age": "soon"},
    ],
)
def test_malformed_oidc_parameters_are_invalid_request(client, confidential_client, extra):
    params, _ = auth_params(confidential_client, **extra)
    response = client.get("/authorize", query_string=params)
    assert_error_redirect(response, confidential_client, "invalid_request", params["state"])


def test_error_redirect_without_state_has_no_state(client, confidential_client):
    params, _ = auth_params(confidential_client, response_type="token")
    del params["state"]
    response = client.get("/authorize", query_string=params)
    assert_error_redirect(response, confidential_client, "unsupported_response_type", None)


# --- errors that must never redirect -----------------------------------------------------------


def test_unknown_client_gets_an_error_page(client, confidential_client):
    params, _ = auth_params(confidential_client, client_id="no-such-client")
    assert_error_page(client.get("/authorize", query_string=params), "invalid_client")


def test_missing_client_id_gets_an_error_page(client, confidential_client):
    params, _ = auth_params(confidential_client)
    del params["client_id"]
    assert_error_page(client.get("/authorize", query_string=params), "invalid_client")


def test_missing_redirect_uri_gets_an_error_page(client, confidential_client):
    params, _ = auth_params(confidential_client)
    del params["redirect_uri"]
    assert_error_page(client.get("/authorize", query_string=params), "invalid_request")


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://rp.example.lv/cb/",  # trailing slash
        "https://rp.example.lv/cb?x=1",  # extra query
        "https://RP.example.lv/cb",  # case of the host
        "https://rp.example.lv/cb#frag",
        "http://rp.example.lv/cb",  # scheme
        "https://rp.example.lv.evil.example/cb",
        "https://attacker.example/cb",
    ],
)
def test_unregistered_redirect_uri_gets_an_error_page(client, confidential_client, redirect_uri):
    params, _ = auth_params(confidential_client, redirect_uri=redirect_uri)
    assert_error_page(client.get("/authorize", query_string=params), "invalid_request")


def test_unregistered_redirect_uri_with_a_bad_response_type_still_never_redirects(
    client, confidential_client
):
    params, _ = auth_params(
        confidential_client, redirect_uri="https://attacker.example/cb", response_type="token"
    )
    assert_error_page(client.get("/authorize", query_string=params), "unsupported_response_type")


@pytest.mark.parametrize(
    "name",
    [
        "client_id",
        "redirect_uri",
        "state",
        "scope",
        "response_type",
        "code_challenge",
        "nonce",
        "prompt",
    ],
)
def test_duplicated_parameter_is_invalid_request(client, confidential_client, name):
    params, _ = auth_params(confidential_client, prompt="login")
    pairs = [*params.items(), (name, params[name])]
    assert_error_page(client.get("/authorize", query_string=pairs), "invalid_request")


def test_over_long_parameter_is_refused_not_a_server_error(client, confidential_client):
    params, _ = auth_params(confidential_client, state="s" * 5000)
    assert_error_page(client.get("/authorize", query_string=params), "invalid_request")


def test_too_many_parameters_are_refused(client, confidential_client):
    params, _ = auth_params(confidential_client)
    pairs = [*params.items(), *((f"x{i}", "1") for i in range(60))]
    assert_error_page(client.get("/authorize", query_string=pairs), "invalid_request")


# --- PKCE ------------------------------------------------------------------------------------


def test_public_client_without_pkce_is_invalid_request(client, public_client):
    params, _ = auth_params(public_client)
    del params["code_challenge"], params["code_challenge_method"]
    response = client.get("/authorize", query_string=params)
    assert_error_redirect(response, public_client, "invalid_request", params["state"])


def test_plain_code_challenge_method_is_refused(client, public_client, confidential_client):
    for rp in (public_client, confidential_client):
        verifier, _ = pkce_pair()
        params, _ = auth_params(rp, code_challenge=verifier, code_challenge_method="plain")
        response = client.get("/authorize", query_string=params)
        assert_error_redirect(response, rp, "invalid_request", params["state"])


def test_malformed_code_challenge_is_refused(client, public_client):
    params, _ = auth_params(public_client, code_challenge="short")
    response = client.get("/authorize", query_string=params)
    assert_error_redirect(response, public_client, "invalid_request", params["state"])


def test_public_client_with_pkce_gets_tokens(client, browser, user, public_client):
    code, verifier, _ = get_code(browser, public_client)
    response = redeem(client, public_client, code, verifier)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["token_type"] == "Bearer"


def test_confidential_client_without_pkce_works(client, browser, user, confidential_client):
    params, _ = auth_params(confidential_client)
    del params["code_challenge"], params["code_challenge_method"]
    code = code_redirect(browser.authorize(params), confidential_client, params["state"])
    response = redeem(client, confidential_client, code, None)
    assert response.status_code == 200, response.get_data(as_text=True)


def test_confidential_client_without_pkce_cannot_send_a_verifier(
    client, browser, user, confidential_client
):
    params, _ = auth_params(confidential_client)
    del params["code_challenge"], params["code_challenge_method"]
    code = code_redirect(browser.authorize(params), confidential_client, params["state"])
    response = redeem(client, confidential_client, code, pkce_pair()[0])
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_confidential_client_with_pkce_must_present_the_verifier(
    client, browser, user, confidential_client
):
    code, verifier, _ = get_code(browser, confidential_client)
    missing = redeem(client, confidential_client, code, None)
    assert missing.status_code == 400
    assert missing.get_json()["error"] == "invalid_request"
    wrong = redeem(client, confidential_client, code, pkce_pair()[0])
    assert wrong.status_code == 400
    assert wrong.get_json()["error"] == "invalid_grant"
    # The failed attempts did not burn the code for its rightful holder.
    assert redeem(client, confidential_client, code, verifier).status_code == 200


# --- prompt, max_age, sessions -----------------------------------------------------------------


def test_prompt_none_without_a_session_is_login_required(client, confidential_client):
    params, _ = auth_params(confidential_client, prompt="none")
    response = client.get("/authorize", query_string=params)
    assert_error_redirect(response, confidential_client, "login_required", params["state"])


def test_prompt_none_with_a_session_returns_a_code(client, browser, user, confidential_client):
    get_code(browser, confidential_client)
    params, _ = auth_params(confidential_client, prompt="none")
    code_redirect(
        client.get("/authorize", query_string=params), confidential_client, params["state"]
    )


def test_prompt_none_when_consent_is_needed_is_consent_required(
    client, browser, user, confidential_client, third_party
):
    get_code(browser, confidential_client)  # a session, but no consent for third_party
    params, _ = auth_params(third_party, prompt="none")
    response = client.get("/authorize", query_string=params)
    assert_error_redirect(response, third_party, "consent_required", params["state"])


def test_prompt_none_when_more_scopes_are_asked_is_consent_required(
    client, browser, user, third_party
):
    get_code(browser, third_party, scope="openid")
    params, _ = auth_params(third_party, prompt="none", scope="openid email")
    response = client.get("/authorize", query_string=params)
    assert_error_redirect(response, third_party, "consent_required", params["state"])


def test_with_a_session_no_login_page_is_shown(client, browser, user, confidential_client):
    get_code(browser, confidential_client)
    params, _ = auth_params(confidential_client)
    code_redirect(
        client.get("/authorize", query_string=params), confidential_client, params["state"]
    )


@pytest.mark.parametrize("prompt", ["login", "select_account"])
def test_prompt_login_shows_the_login_page_despite_a_session(
    client, browser, user, confidential_client, prompt
):
    get_code(browser, confidential_client)
    params, verifier = auth_params(confidential_client, prompt=prompt)
    response = client.get("/authorize", query_string=params)
    interaction = login_page_interaction(response)
    # Logging in again completes the same request (no login loop).
    response = browser.login(interaction=interaction)
    response = client.get(response.headers["Location"])
    code = code_redirect(response, confidential_client, params["state"])
    assert redeem(client, confidential_client, code, verifier).status_code == 200


def test_max_age_zero_forces_a_new_login(client, browser, user, confidential_client):
    get_code(browser, confidential_client)
    params, _ = auth_params(confidential_client, max_age="0")
    login_page_interaction(client.get("/authorize", query_string=params))


def test_small_max_age_with_an_old_login_forces_a_new_login(
    client, browser, db, user, confidential_client
):
    get_code(browser, confidential_client)
    an_hour_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    db.execute(update(BrowserSession).values(auth_time=an_hour_ago))
    db.commit()
    params, verifier = auth_params(confidential_client, max_age="60")
    interaction = login_page_interaction(client.get("/authorize", query_string=params))
    response = client.get(browser.login(interaction=interaction).headers["Location"])
    code = code_redirect(response, confidential_client, params["state"])
    tokens = redeem(client, confidential_client, code, verifier).get_json()
    auth_time = decode(client, tokens["id_token"], "RS256").claims["auth_time"]
    assert auth_time > an_hour_ago.timestamp() + 3000  # the new login, not the old one


def test_max_age_zero_with_prompt_none_is_login_required(
    client, browser, user, confidential_client
):
    get_code(browser, confidential_client)
    params, _ = auth_params(confidential_client, max_age="0", prompt="none")
    response = client.get("/authorize", query_string=params)
    assert_error_redirect(response, confidential_client, "login_required", params["state"])


def test_large_max_age_with_a_recent_login_needs_no_login(
    client, browser, user, confidential_client
):
    get_code(browser, confidential_client)
    params, _ = auth_params(confidential_client, max_age="3600")
    code_redirect(
        client.get("/authorize", query_string=params), confidential_client, params["state"]
    )


# --- consent ---------------------------------------------------------------------------------


def test_first_party_client_skips_consent(client, user, confidential_client, browser):
    params, _ = auth_params(confidential_client)
    response = client.get("/authorize", query_string=params)
    interaction = login_page_interaction(response)
    response = browser.login(interaction=interaction)
    assert urlsplit(response.headers["Location"]).path == "/authorize/resume"
    code_redirect(client.get(response.headers["Location"]), confidential_client, params["state"])


def test_third_party_client_asks_for_consent_once(client, browser, user, third_party):
    params, _ = auth_params(third_party)
    stopped = browser.authorize(params, consent=None)
    assert urlsplit(stopped.headers["Location"]).path == "/consent"
    page = client.get(stopped.headers["Location"])
    assert page.status_code == 200
    assert "Invoice service" in page.get_data(as_text=True)

    get_code(browser, third_party)  # allow
    params, _ = auth_params(third_party)
    # Remembered: the next request gets a code without any page.
    code_redirect(client.get("/authorize", query_string=params), third_party, params["state"])


def test_prompt_consent_asks_again_despite_remembered_consent(client, browser, user, third_party):
    get_code(browser, third_party)
    params, _ = auth_params(third_party, prompt="consent")
    response = client.get("/authorize", query_string=params)
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/consent"


def test_deny_sends_access_denied_with_state_and_iss(client, browser, user, third_party):
    params, _ = auth_params(third_party)
    response = browser.authorize(params, consent="deny")
    assert_error_redirect(response, third_party, "access_denied", params["state"])
    # Nothing was remembered: the next request asks again.
    params, _ = auth_params(third_party, prompt="none")
    assert_error_redirect(
        client.get("/authorize", query_string=params),
        third_party,
        "consent_required",
        params["state"],
    )


def test_a_finished_request_cannot_be_resumed_again(client, browser, user, confidential_client):
    params, _ = auth_params(confidential_client)
    interaction = login_page_interaction(client.get("/authorize", query_string=params))
    resume = browser.login(interaction=interaction).headers["Location"]
    code_redirect(client.get(resume), confidential_client, params["state"])
    again = client.get(resume)
    # In plain words, never a bare error code, and a way to start again at the app.
    assert_error_page(again, "This sign-in has expired")
    html = again.get_data(as_text=True)
    assert "invalid_request" not in html
    assert f'<a href="{client_home(confidential_client)}">Start again at ' in html


def test_resume_from_another_browser_is_refused(app, client, browser, user, confidential_client):
    params, _ = auth_params(confidential_client)
    interaction = login_page_interaction(client.get("/authorize", query_string=params))
    other = app.test_client()
    refused = other.get("/authorize/resume", query_string={"interaction": interaction})
    assert_error_page(refused, "This sign-in has expired")
    # That browser never sent a request: it cannot name an application, only the start page.
    assert '<a href="/">Go to the start page</a>' in refused.get_data(as_text=True)


# --- other request shapes ----------------------------------------------------------------------


def test_post_authorize_works_like_get(client, browser, user, confidential_client):
    params, verifier = auth_params(confidential_client)
    response = client.post("/authorize", data=params)
    interaction = login_page_interaction(response)
    response = client.get(browser.login(interaction=interaction).headers["Location"])
    code = code_redirect(response, confidential_client, params["state"])
    assert redeem(client, confidential_client, code, verifier).status_code == 200


def test_post_authorize_errors_like_get(client, confidential_client):
    params, _ = auth_params(confidential_client, response_type="token")
    response = client.post("/authorize", data=params)
    assert_error_redirect(
        response, confidential_client, "unsupported_response_type", params["state"]
    )
    params, _ = auth_params(confidential_client, redirect_uri="https://attacker.example/cb")
    assert_error_page(client.post("/authorize", data=params), "invalid_request")


def test_login_hint_prefills_the_email_field(client, confidential_client):
    params, _ = auth_params(confidential_client, login_hint='anna"<b>@example.lv')
    interaction = login_page_interaction(client.get("/authorize", query_string=params))
    page = client.get("/login", query_string={"interaction": interaction})
    text = page.get_data(as_text=True)
    field = re.search(r'<input[^>]*name="email"[^>]*>', text)
    assert field, text
    value = re.search(r'value="([^"]*)"', field.group(0))
    assert value and html.unescape(value.group(1)) == params["login_hint"]
    assert "<b>@example.lv" not in text  # escaped, not markup


def test_state_is_echoed_exactly(client, browser, user, confidential_client):
    state = "a b+c/=&é?"
    params, _ = auth_params(confidential_client, state=state)
    code_redirect(browser.authorize(params), confidential_client, state)


def test_code_response_carries_iss_and_state(client, browser, user, confidential_client):
    code, _, params = get_code(browser, confidential_client)
    assert code
    params2, _ = auth_params(confidential_client)
    answer = query(client.get("/authorize", query_string=params2).headers["Location"])
    assert set(answer) == {"code", "state", "iss"}
    assert answer["iss"] == ISSUER and answer["state"] == params2["state"]


def test_select_account_offers_to_continue_with_the_current_session(
    client, browser, user, confidential_client
):
    first = decode(
        client,
        redeem(client, confidential_client, *get_code(browser, confidential_client)[:2]).get_json()[
            "id_token"
        ],
        "RS256",
    )
    params, verifier = auth_params(confidential_client, prompt="select_account")
    response = client.get("/authorize", query_string=params)
    login_page = client.get(response.headers["Location"])
    page = login_page.get_data(as_text=True)
    assert "Continue as Jānis Bērziņš" in html.unescape(page)
    response = client.post(
        "/login",
        data={
            "csrf_token": csrf_token(page),
            "continue": "1",
            "interaction": query(response.headers["Location"])["interaction"],
        },
    )
    response = client.get(response.headers["Location"])
    answer = query(response.headers["Location"])
    assert answer["state"] == params["state"]
    second = decode(
        client,
        redeem(client, confidential_client, answer["code"], verifier).get_json()["id_token"],
        "RS256",
    )
    # The same session: no new login happened.
    assert second.claims["sid"] == first.claims["sid"]
    assert second.claims["auth_time"] == first.claims["auth_time"]


def test_prompt_login_never_offers_to_continue(client, browser, user, confidential_client):
    get_code(browser, confidential_client)
    params, _verifier = auth_params(confidential_client, prompt="login select_account")
    response = client.get("/authorize", query_string=params)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Continue as" not in page
    response = client.post(
        "/login",
        data={
            "csrf_token": csrf_token(page),
            "continue": "1",
            "interaction": query(response.headers["Location"])["interaction"],
        },
    )
    # Without a password nothing happens: the login form answers again.
    assert response.status_code == 400
