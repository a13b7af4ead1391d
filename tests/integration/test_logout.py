"""Scenarios for RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import func, select

from idp.models import BrowserSession
from tests.conftest import ISSUER, Browser, auth_params, csrf_token, query
from tests.integration.conftest import decode, login_tokens

BYE = "https://rp.example.lv/bye"


def sessions(db) -> int:
    count = db.scalar(select(func.count()).select_from(BrowserSession))
    db.rollback()  # end the read: on SQLite every transaction holds the write lock
    return int(count or 0)


def assert_logged_out(client, rp) -> None:
    """The browser has no session any more: prompt=none answers login_required."""
    params, _ = auth_params(rp, prompt="none")
    answer = query(client.get("/authorize", query_string=params).headers["Location"])
    assert answer["error"] == "login_required"


def assert_still_logged_in(client, rp) -> None:
    params, _ = auth_params(rp, prompt="none")
    answer = query(client.get("/authorize", query_string=params).headers["Location"])
    assert "code" in answer, answer


def assert_logged_out_page(response) -> None:
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/logged-out"


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_logout_with_a_matching_hint_redirects_to_the_registered_uri(
    client, browser, db, user, confidential_client, method
):
    tokens = login_tokens(client, browser, confidential_client)
    assert sessions(db) == 1
    params = {
        "id_token_hint": tokens["id_token"],
        "post_logout_redirect_uri": BYE,
        "state": "bye-state",
    }
    if method == "GET":
        response = client.get("/logout", query_string=params)
    else:
        response = client.post("/logout", data=params)
    assert response.status_code == 302
    assert response.headers["Location"] == BYE + "?state=bye-state"
    assert any(
        cookie.startswith("idp_session=;") for cookie in response.headers.getlist("Set-Cookie")
    )
    assert sessions(db) == 0
    assert_logged_out(client, confidential_client)


def test_logout_without_state_redirects_without_state(client, browser, user, confidential_client):
    tokens = login_tokens(client, browser, confidential_client)
    response = client.get(
        "/logout",
        query_string={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": BYE},
    )
    assert response.headers["Location"] == BYE


def test_logout_with_a_hint_and_no_redirect_uri_shows_our_page(
    client, browser, user, confidential_client
):
    tokens = login_tokens(client, browser, confidential_client)
    response = client.get("/logout", query_string={"id_token_hint": tokens["id_token"]})
    assert_logged_out_page(response)
    page = client.get(response.headers["Location"])
    assert page.status_code == 200
    assert "You are logged out" in page.get_data(as_text=True)
    assert_logged_out(client, confidential_client)


@pytest.mark.parametrize(
    "target",
    [
        "https://attacker.example/bye",
        BYE + "/",
        BYE + "?x=1",
        "https://rp.example.lv/cb",  # a redirect_uri, not a post-logout one
    ],
)
def test_unregistered_post_logout_uri_is_never_followed(
    client, browser, user, confidential_client, target
):
    tokens = login_tokens(client, browser, confidential_client)
    response = client.get(
        "/logout",
        query_string={
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": target,
            "state": "s",
        },
    )
    assert_logged_out_page(response)
    assert_logged_out(client, confidential_client)


def test_another_clients_post_logout_uri_is_not_followed(
    client, browser, user, confidential_client, make_client
):
    make_client(name="Other", post_logout_redirect_uris=["https://other.example.lv/bye"])
    tokens = login_tokens(client, browser, confidential_client)
    response = client.get(
        "/logout",
        query_string={
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": "https://other.example.lv/bye",
        },
    )
    assert_logged_out_page(response)


def test_client_id_that_contradicts_the_hint_is_not_followed(
    client, browser, user, confidential_client, make_client
):
    other = make_client(name="Other", post_logout_redirect_uris=["https://other.example.lv/bye"])
    tokens = login_tokens(client, browser, confidential_client)
    response = client.get(
        "/logout",
        query_string={
            "id_token_hint": tokens["id_token"],
            "client_id": other.client_id,
            "post_logout_redirect_uri": "https://other.example.lv/bye",
        },
    )
    assert_logged_out_page(response)


def test_logout_without_a_hint_asks_for_confirmation(
    client, browser, db, user, confidential_client
):
    login_tokens(client, browser, confidential_client)
    page = client.get(
        "/logout",
        query_string={
            "client_id": confidential_client.client_id,
            "post_logout_redirect_uri": BYE,
            "state": "s1",
        },
    )
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert 'action="/logout/confirm"' in text
    assert "Portal asks to log you out." in text
    assert sessions(db) == 1
    assert_still_logged_in(client, confidential_client)

    response = client.post("/logout/confirm", data={"csrf_token": csrf_token(text)})
    assert response.status_code == 302
    assert response.headers["Location"] == BYE + "?state=s1"
    assert sessions(db) == 0
    assert_logged_out(client, confidential_client)


def test_confirmation_without_csrf_token_is_refused(client, browser, db, user, confidential_client):
    login_tokens(client, browser, confidential_client)
    client.get("/logout")
    response = client.post("/logout/confirm", data={})
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert sessions(db) == 1
    assert_still_logged_in(client, confidential_client)


def test_hint_of_another_session_asks_for_confirmation(
    app, client, browser, user, confidential_client
):
    tokens = login_tokens(client, browser, confidential_client)
    # The same person in another browser: another session, another sid.
    other = app.test_client()
    login_tokens(other, Browser(other), confidential_client)
    response = other.get(
        "/logout",
        query_string={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": BYE},
    )
    assert response.status_code == 200
    assert 'action="/logout/confirm"' in response.get_data(as_text=True)
    assert_still_logged_in(other, confidential_client)


def test_forged_hint_asks_for_confirmation(client, browser, user, confidential_client):
    tokens = login_tokens(client, browser, confidential_client)
    real = decode(client, tokens["id_token"], "RS256")
    forged = jwt.encode(real.header, real.claims, RSAKey.generate_key(2048), algorithms=["RS256"])
    response = client.get(
        "/logout", query_string={"id_token_hint": forged, "post_logout_redirect_uri": BYE}
    )
    assert response.status_code == 200
    assert 'action="/logout/confirm"' in response.get_data(as_text=True)
    assert_still_logged_in(client, confidential_client)


@pytest.mark.parametrize("hint", ["garbage", "a.b.c", "x" * 9000, "é"])
def test_garbage_hint_is_ignored(client, browser, user, confidential_client, hint):
    login_tokens(client, browser, confidential_client)
    response = client.get(
        "/logout", query_string={"id_token_hint": hint, "post_logout_redirect_uri": BYE}
    )
    assert response.status_code == 200
    assert 'action="/logout/confirm"' in response.get_data(as_text=True)


def test_logout_without_a_session_shows_our_page(client, confidential_client):
    assert_logged_out_page(client.get("/logout"))


def test_logout_without_a_session_may_still_return_to_the_client(
    client, browser, user, confidential_client
):
    tokens = login_tokens(client, browser, confidential_client)
    client.get("/logout", query_string={"id_token_hint": tokens["id_token"]})
    # Already logged out; the client's hint still names where to go back.
    response = client.get(
        "/logout",
        query_string={
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": BYE,
            "state": "again",
        },
    )
    assert response.headers["Location"] == BYE + "?state=again"


def test_after_logout_a_new_login_is_needed(client, browser, user, confidential_client):
    tokens = login_tokens(client, browser, confidential_client)
    client.get("/logout", query_string={"id_token_hint": tokens["id_token"]})
    params, _ = auth_params(confidential_client)
    response = client.get("/authorize", query_string=params)
    assert urlsplit(response.headers["Location"]).path == "/login"
    prompt_none, _ = auth_params(confidential_client, prompt="none")
    answer = query(client.get("/authorize", query_string=prompt_none).headers["Location"])
    assert answer["error"] == "login_required"
    assert answer["iss"] == ISSUER
    assert answer["state"] == prompt_none["state"]
