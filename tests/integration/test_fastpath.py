"""The fast paths: the replayed documents, and what the token and userinfo fast paths do
beyond one answer (tests/integration/test_one_road.py compares every answer with Flask's):
tokens of either road work on the other, a rotation lost to a concurrent request, a
revocation seen at once, HSTS behind a trusted balancer."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from joserfc import jwt
from sqlalchemy import select, update
from werkzeug.test import Client, EnvironBuilder

from idp.fastpath import FastPath, TokenFastPath, UserinfoFastPath
from idp.models import RefreshToken, TokenFamily
from idp.observability import RequestLog
from idp.oidc import tokens as token_service
from idp.proxies import TrustedProxies
from tests.integration.conftest import login_tokens, published_keys, refresh


def _layers(app):
    proxies = app.wsgi_app
    assert isinstance(proxies, TrustedProxies)  # outermost: every road sees the client
    request_log = proxies.app
    assert isinstance(request_log, RequestLog)  # then the request id and access line
    replay = request_log.app
    assert isinstance(replay, FastPath)
    userinfo_path = replay.app
    assert isinstance(userinfo_path, UserinfoFastPath)
    token_path = userinfo_path.app
    assert isinstance(token_path, TokenFastPath)
    return replay, token_path, token_path.app  # the last one is Flask's own wsgi_app


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@pytest.mark.parametrize(
    "path",
    ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server", "/jwks.json"],
)
def test_replayed_documents_equal_flasks_answer(app, path):
    replay, _token_path, flask_wsgi = _layers(app)
    # Below the request log, whose X-Request-ID differs on every answer.
    fast = Client(replay).get(path)
    fast = Client(replay).get(path)  # the second one is replayed
    slow = Client(flask_wsgi).get(path)
    assert fast.status_code == slow.status_code == 200
    assert fast.get_data() == slow.get_data()
    assert sorted(fast.headers.items()) == sorted(slow.headers.items())


# --- refresh_token -------------------------------------------------------------------------


def _claims(client, token: str) -> dict:
    return dict(jwt.decode(token, published_keys(client), algorithms=["RS256", "ES256"]).claims)


def test_refresh_tokens_of_either_road_rotate_on_the_other(
    app, client, browser, user, confidential_client, monkeypatch
):
    _replay, token_path, flask_wsgi = _layers(app)
    issued = login_tokens(client, browser, confidential_client)

    def not_flask(environ, start_response):
        pytest.fail("the happy path fell through to Flask")

    monkeypatch.setattr(token_path, "app", not_flask)
    fast = refresh(client, confidential_client, issued["refresh_token"])
    monkeypatch.undo()
    # The token the fast path issued works in Flask (and vice versa, below).
    slow = refresh(Client(flask_wsgi), confidential_client, fast.get_json()["refresh_token"])
    assert fast.status_code == slow.status_code == 200, slow.get_data(as_text=True)
    # The request log (outside both roads) adds X-Request-ID; Flask alone has none.
    assert sorted(fast.headers.keys()) == sorted([*slow.headers.keys(), "X-Request-ID"])
    for name in ("Content-Type", "Cache-Control", "Pragma", "X-Content-Type-Options"):
        assert fast.headers[name] == slow.headers[name]
    assert fast.headers["Cache-Control"] == "no-store"
    f, s = fast.get_json(), slow.get_json()
    assert (
        list(f)
        == list(s)
        == ["access_token", "token_type", "expires_in", "scope", "refresh_token", "id_token"]
    )
    for name in ("token_type", "expires_in", "scope"):
        assert f[name] == s[name]
    assert f["scope"] == issued["scope"]
    fast_id, slow_id = _claims(client, f["id_token"]), _claims(client, s["id_token"])
    assert fast_id.keys() == slow_id.keys()
    assert "nonce" not in fast_id
    for name in ("sub", "aud", "azp", "iss", "auth_time", "acr", "amr", "sid", "email", "name"):
        assert fast_id.get(name) == slow_id.get(name)
    fast_at, slow_at = _claims(client, f["access_token"]), _claims(client, s["access_token"])
    assert fast_at.keys() == slow_at.keys()
    for name in ("sub", "aud", "client_id", "scope", "gid", "auth_time", "acr", "amr"):
        assert fast_at.get(name) == slow_at.get(name)
    assert refresh(client, confidential_client, s["refresh_token"]).status_code == 200


@pytest.fixture
def issued(client, browser, user, confidential_client):
    return login_tokens(client, browser, confidential_client)


def test_rotation_lost_to_a_concurrent_request_is_a_replay(
    app, client, db, issued, confidential_client, monkeypatch
):
    """Exactly once: the token is used by another request between the fast path's read and
    its rotation. The fast path issues nothing and revokes the family, as for any replay,
    so the concurrent request's tokens die too."""
    rp = confidential_client
    _replay, token_path, flask_wsgi = _layers(app)
    mint = token_service.user_token_response
    concurrent = {}

    def mint_while_another_request_rotates(*args, **kwargs):
        if not concurrent:
            concurrent["answer"] = None  # the inner request mints normally
            concurrent["answer"] = refresh(Client(flask_wsgi), rp, issued["refresh_token"])
        return mint(*args, **kwargs)

    monkeypatch.setattr(token_service, "user_token_response", mint_while_another_request_rotates)
    response = refresh(client, rp, issued["refresh_token"])
    monkeypatch.undo()
    assert concurrent["answer"].status_code == 200
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"
    assert db.scalar(select(TokenFamily.revoked_reason)) == "refresh_token_reused"
    # Two tokens in the family (the presented one, its one successor): never two successors.
    assert db.scalar(select(RefreshToken.id).order_by(RefreshToken.id.desc()).offset(2)) is None
    db.rollback()
    later = refresh(client, rp, concurrent["answer"].get_json()["refresh_token"])
    assert later.status_code == 400


def test_userinfo_fast_path_sees_a_revocation_at_once(app, db, issued):
    _replay, _token_path, _flask = _layers(app)
    userinfo_path = app.wsgi_app.app.app.app
    assert isinstance(userinfo_path, UserinfoFastPath)
    environ = EnvironBuilder(
        path="/userinfo", headers={"Authorization": f"Bearer {issued['access_token']}"}
    ).get_environ()
    assert userinfo_path.answer(dict(environ)).status == 200
    db.execute(update(TokenFamily).values(revoked_at=dt.datetime.now(dt.UTC)))
    db.commit()
    answer = userinfo_path.answer(dict(environ))
    assert answer.status == 401 and answer.body["error"] == "invalid_token"


def test_https_seen_through_a_trusted_balancer_gets_hsts_on_the_fast_path(
    make_app, confidential_client
):
    # Behind a balancer that ends TLS, the scheme comes from X-Forwarded-Proto: the fast
    # paths, in front of Flask, must see it too.
    balanced = make_app(trusted_proxies=["127.0.0.0/8"])
    auth = {"Authorization": _basic(confidential_client.client_id, confidential_client.secret)}
    data = {"grant_type": "client_credentials"}
    forwarded = balanced.test_client().post(
        "/token", data=data, headers={**auth, "X-Forwarded-Proto": "https"}
    )
    assert forwarded.status_code == 200
    assert forwarded.headers["Strict-Transport-Security"].startswith("max-age=")
    # The same header from a client that is not a balancer changes nothing.
    spoofed = balanced.test_client().post(
        "/token",
        data=data,
        headers={**auth, "X-Forwarded-Proto": "https"},
        environ_base={"REMOTE_ADDR": "203.0.113.9"},
    )
    assert spoofed.status_code == 200
    assert "Strict-Transport-Security" not in spoofed.headers
