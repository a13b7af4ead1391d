"""A relying party built on a real OIDC client library (Authlib's requests client) logs a
person in over real HTTP against the running IdP, and uses every endpoint it is given."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session

from tests.conftest import pkce_pair, query
from tests.e2e.conftest import (
    HTTP_TIMEOUT,
    SCOPE,
    Browser,
    LiveServer,
    Person,
    RegisteredApp,
    verify_id_token,
)

pytestmark = pytest.mark.e2e


class RelyingParty:
    """What a client application does: discovery, the authorization request (state, nonce,
    PKCE S256), the callback checks, the token call and ID-token verification."""

    def __init__(self, issuer: str, app: RegisteredApp) -> None:
        response = requests.get(issuer + "/.well-known/openid-configuration", timeout=HTTP_TIMEOUT)
        response.raise_for_status()
        self.meta: dict[str, Any] = response.json()
        assert self.meta["issuer"] == issuer
        self.app = app
        self.oauth = OAuth2Session(
            app.client_id,
            app.client_secret,
            scope=SCOPE,
            redirect_uri=app.redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic" if app.client_secret else "none",
            default_timeout=HTTP_TIMEOUT,
        )
        self.state = ""
        self.nonce = ""
        self.verifier = ""

    def close(self) -> None:
        self.oauth.close()

    def jwks(self) -> dict[str, Any]:
        response = requests.get(self.meta["jwks_uri"], timeout=HTTP_TIMEOUT)
        response.raise_for_status()
        return response.json()

    def authorization_url(self, **extra: str) -> str:
        self.nonce = secrets.token_urlsafe(16)
        self.verifier, challenge = pkce_pair()
        url, self.state = self.oauth.create_authorization_url(
            self.meta["authorization_endpoint"],
            nonce=self.nonce,
            code_verifier=self.verifier,
            **extra,
        )
        # The library computed the S256 challenge itself: it must match ours.
        sent = query(url)
        assert sent["code_challenge"] == challenge and sent["code_challenge_method"] == "S256"
        return url

    def check_callback(self, callback: str) -> dict[str, str]:
        """RFC 6749 §4.1.2 + RFC 9207: our redirect URI, our state, the expected issuer."""
        assert callback.startswith(self.app.redirect_uri + "?"), callback
        answer = query(callback)
        assert answer["state"] == self.state
        assert answer["iss"] == self.meta["issuer"]
        return answer

    def fetch_token(self, callback: str) -> dict[str, Any]:
        self.check_callback(callback)
        token = dict(
            self.oauth.fetch_token(
                self.meta["token_endpoint"],
                authorization_response=callback,
                state=self.state,
                code_verifier=self.verifier,
            )
        )
        assert token["token_type"].lower() == "bearer"
        return token

    def verify(self, token: dict[str, Any], nonce: str | None) -> dict[str, Any]:
        return verify_id_token(
            token["id_token"],
            self.jwks(),
            issuer=self.meta["issuer"],
            client_id=self.app.client_id,
            nonce=nonce,
            access_token=token["access_token"],
        )

    def login(self, browser: Browser, **extra: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """A whole login; returns the token response and the verified ID-token claims."""
        token = self.fetch_token(browser.visit(self.authorization_url(**extra)))
        return token, self.verify(token, self.nonce)

    def introspect(self, token: str, hint: str) -> dict[str, Any]:
        response = self.oauth.introspect_token(
            self.meta["introspection_endpoint"], token=token, token_type_hint=hint
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def userinfo(self, access_token: str) -> requests.Response:
        return requests.get(
            self.meta["userinfo_endpoint"],
            timeout=HTTP_TIMEOUT,
            headers={"Authorization": f"Bearer {access_token}"},
        )


@pytest.fixture
def relying_party(live_server: LiveServer) -> Iterator[Callable[[RegisteredApp], RelyingParty]]:
    made: list[RelyingParty] = []

    def factory(app: RegisteredApp) -> RelyingParty:
        made.append(RelyingParty(live_server.issuer, app))
        return made[-1]

    yield factory
    for rp in made:
        rp.close()


def _refresh_error(rp: RelyingParty, refresh_token: str) -> str:
    with pytest.raises(OAuthError) as caught:
        rp.oauth.refresh_token(rp.meta["token_endpoint"], refresh_token=refresh_token)
    return str(caught.value.error)


def test_login_refresh_revoke_and_logout_with_a_real_client(
    live_server: LiveServer,
    person: Person,
    browser_for: Callable[[Person], Browser],
    relying_party: Callable[[RegisteredApp], RelyingParty],
) -> None:
    rp = relying_party(live_server.confidential)
    browser = browser_for(person)

    # Login: the person sees the login page, then the consent page (not first party).
    token, claims = rp.login(browser)
    assert browser.pages == ["/login", "/consent"]
    assert claims["sub"] == person.sub
    assert claims["email"] == person.email
    assert claims["azp"] == live_server.confidential.client_id
    assert {"access_token", "refresh_token", "id_token", "expires_in"} <= token.keys()

    userinfo = rp.userinfo(token["access_token"])
    assert userinfo.status_code == 200, userinfo.text
    assert userinfo.json()["sub"] == person.sub
    assert userinfo.json()["email"] == person.email

    # Refresh rotates: a new refresh token, a new ID token for the same login.
    first_refresh = token["refresh_token"]
    rotated = dict(rp.oauth.refresh_token(rp.meta["token_endpoint"], refresh_token=first_refresh))
    assert rotated["refresh_token"] != first_refresh
    refreshed = verify_id_token(
        rotated["id_token"],
        rp.jwks(),
        issuer=live_server.issuer,
        client_id=live_server.confidential.client_id,
        nonce=None,
        access_token=rotated["access_token"],
    )
    assert refreshed["sub"] == claims["sub"] and refreshed["auth_time"] == claims["auth_time"]
    assert rp.userinfo(rotated["access_token"]).status_code == 200

    # The rotated-away token presented again means a stolen copy: the whole family dies,
    # including the newest token and its access token.
    assert _refresh_error(rp, first_refresh) == "invalid_grant"
    assert _refresh_error(rp, rotated["refresh_token"]) == "invalid_grant"
    assert rp.userinfo(rotated["access_token"]).status_code == 401
    assert rp.introspect(rotated["refresh_token"], "refresh_token") == {"active": False}

    # A new grant from the live session (no pages), then RFC 7009 revocation.
    browser.pages.clear()
    token, claims = rp.login(browser)
    assert browser.pages == []
    active_refresh = rp.introspect(token["refresh_token"], "refresh_token")
    assert active_refresh["active"] is True
    assert active_refresh["client_id"] == live_server.confidential.client_id
    assert active_refresh["sub"] == person.sub
    active_access = rp.introspect(token["access_token"], "access_token")
    assert active_access["active"] is True and active_access["sub"] == person.sub

    revoked = rp.oauth.revoke_token(
        rp.meta["revocation_endpoint"],
        token=token["refresh_token"],
        token_type_hint="refresh_token",
    )
    assert revoked.status_code == 200, revoked.text
    # Revoking the refresh token also revokes the access tokens of its grant (RFC 7009 §2.1).
    assert rp.introspect(token["refresh_token"], "refresh_token") == {"active": False}
    assert rp.introspect(token["access_token"], "access_token") == {"active": False}
    assert rp.userinfo(token["access_token"]).status_code == 401
    assert _refresh_error(rp, token["refresh_token"]) == "invalid_grant"

    # RP-initiated logout with id_token_hint and the registered post-logout URI.
    logout_state = secrets.token_urlsafe(8)
    bye = live_server.confidential.post_logout_redirect_uri
    assert bye is not None
    logout = browser.get(
        rp.meta["end_session_endpoint"]
        + "?"
        + urlencode(
            {
                "id_token_hint": token["id_token"],
                "post_logout_redirect_uri": bye,
                "state": logout_state,
            }
        )
    )
    assert logout.status_code == 302, logout.text[:2000]
    assert logout.headers["Location"] == f"{bye}?state={logout_state}"

    # Logged out: prompt=none cannot succeed silently any more.
    callback = browser.visit(rp.authorization_url(prompt="none"))
    answer = rp.check_callback(callback)
    assert answer["error"] == "login_required"
    assert "code" not in answer


def test_max_age_forces_a_new_login(
    live_server: LiveServer,
    person: Person,
    browser_for: Callable[[Person], Browser],
    relying_party: Callable[[RegisteredApp], RelyingParty],
) -> None:
    rp = relying_party(live_server.confidential)
    browser = browser_for(person)
    _first, first_claims = rp.login(browser)
    assert browser.pages == ["/login", "/consent"]

    # A generous max_age is satisfied by the live session.
    browser.pages.clear()
    rp.login(browser, max_age="600")
    assert browser.pages == []

    # auth_time has one-second resolution: after 2 s the login is older than max_age=1.
    time.sleep(2)
    browser.pages.clear()
    token, claims = rp.login(browser, max_age="1")
    assert browser.pages == ["/login"], "max_age must show the login page again (not consent)"
    assert claims["auth_time"] > first_claims["auth_time"]
    assert claims["auth_time"] >= int(time.time()) - 5
    assert claims["sub"] == person.sub
    assert token["refresh_token"]


def test_prompt_none_with_live_session_and_remembered_consent_returns_a_code(
    live_server: LiveServer,
    person: Person,
    browser_for: Callable[[Person], Browser],
    relying_party: Callable[[RegisteredApp], RelyingParty],
) -> None:
    rp = relying_party(live_server.confidential)
    browser = browser_for(person)
    _token, first_claims = rp.login(browser)

    # One request, one redirect straight to the client: no page at all.
    response = browser.get(rp.authorization_url(prompt="none"))
    assert response.status_code == 302
    callback = response.headers["Location"]
    assert "code" in rp.check_callback(callback)
    token = rp.fetch_token(callback)
    claims = rp.verify(token, rp.nonce)
    assert claims["sub"] == person.sub
    assert claims["sid"] == first_claims["sid"]
    assert claims["auth_time"] == first_claims["auth_time"]


def test_public_client_logs_in_with_pkce_only(
    live_server: LiveServer,
    person: Person,
    browser_for: Callable[[Person], Browser],
    relying_party: Callable[[RegisteredApp], RelyingParty],
) -> None:
    rp = relying_party(live_server.public)
    browser = browser_for(person)
    token, claims = rp.login(browser)
    assert browser.pages == ["/login", "/consent"]
    assert claims["aud"] == live_server.public.client_id
    rotated = dict(
        rp.oauth.refresh_token(rp.meta["token_endpoint"], refresh_token=token["refresh_token"])
    )
    assert rotated["refresh_token"] != token["refresh_token"]

    # Without the verifier the code is useless, even to the right client.
    callback = browser.visit(rp.authorization_url())
    code = rp.check_callback(callback)["code"]
    response = requests.post(
        rp.meta["token_endpoint"],
        timeout=HTTP_TIMEOUT,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": rp.app.client_id,
            "redirect_uri": rp.app.redirect_uri,
        },
    )
    assert response.status_code == 400
    assert response.json()["error"] in ("invalid_request", "invalid_grant")
