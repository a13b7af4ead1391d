"""The fast paths answer exactly what Flask would, and only the plain happy path."""

from __future__ import annotations

import base64

import pytest
from werkzeug.test import Client, EnvironBuilder

from idp.fastpath import ClientCredentialsFastPath, FastPath, UserinfoFastPath
from tests.integration.conftest import login_tokens

TOKEN_FORM = "application/x-www-form-urlencoded"


def _layers(app):
    replay = app.wsgi_app
    assert isinstance(replay, FastPath)
    userinfo_path = replay.app
    assert isinstance(userinfo_path, UserinfoFastPath)
    token_path = userinfo_path.app
    assert isinstance(token_path, ClientCredentialsFastPath)
    return replay, token_path, token_path.app  # the last one is Flask's own wsgi_app


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@pytest.mark.parametrize("path", ["/.well-known/openid-configuration",
                                  "/.well-known/oauth-authorization-server", "/jwks.json"])
def test_replayed_documents_equal_flasks_answer(app, path):
    _replay, _token_path, flask_wsgi = _layers(app)
    fast = app.test_client().get(path)
    fast = app.test_client().get(path)  # the second one is replayed
    slow = Client(flask_wsgi).get(path)
    assert fast.status_code == slow.status_code == 200
    assert fast.get_data() == slow.get_data()
    assert sorted(fast.headers.items()) == sorted(slow.headers.items())


def test_client_credentials_fast_answer_has_flasks_headers(app, confidential_client):
    _replay, _token_path, flask_wsgi = _layers(app)
    kwargs = {"data": {"grant_type": "client_credentials", "scope": "profile"},
              "headers": {"Authorization": _basic(confidential_client.client_id,
                                                  confidential_client.secret)}}
    fast = app.test_client().post("/token", **kwargs)
    slow = Client(flask_wsgi).post("/token", **kwargs)
    assert fast.status_code == slow.status_code == 200
    assert fast.get_json().keys() == slow.get_json().keys()
    assert fast.get_json()["scope"] == slow.get_json()["scope"] == "profile"
    assert sorted(k for k in fast.headers.keys()) == sorted(k for k in slow.headers.keys())
    for name in ("Content-Type", "Cache-Control", "Pragma", "X-Content-Type-Options"):
        assert fast.headers[name] == slow.headers[name]


def _answer(app, body: str, authorization: str | None):
    _replay, token_path, _flask = _layers(app)
    headers = {"Authorization": authorization} if authorization else {}
    environ = EnvironBuilder(method="POST", path="/token", data=body, content_type=TOKEN_FORM,
                             headers=headers).get_environ()
    return token_path._answer(environ, body.encode())


def test_only_the_plain_happy_path_is_answered_before_flask(app, confidential_client,
                                                            make_client):
    rp = confidential_client
    good = _basic(rp.client_id, rp.secret)
    assert _answer(app, "grant_type=client_credentials", good)["token_type"] == "Bearer"
    # Everything else is left to Flask (None), which answers it, errors included.
    assert _answer(app, "grant_type=client_credentials", _basic(rp.client_id, "wrong")) is None
    assert _answer(app, "grant_type=client_credentials", _basic("nobody", "x")) is None
    assert _answer(app, "grant_type=client_credentials", None) is None
    assert _answer(app, "grant_type=client_credentials&grant_type=client_credentials",
                   good) is None
    assert _answer(app, "grant_type=client_credentials&scope=admin", good) is None
    assert _answer(app, "grant_type=client_credentials&extra=1", good) is None
    assert _answer(app, "grant_type=refresh_token&refresh_token=x", good) is None
    assert _answer(app, "grant_type=client_credentials&scope=%00", good) is None
    post_client = make_client(auth_method="client_secret_post",
                              grant_types=["client_credentials"])
    assert _answer(app, "grant_type=client_credentials",
                   _basic(post_client.client_id, post_client.secret)) is None


def test_userinfo_fast_answer_equals_flasks(app, client, browser, user, confidential_client):
    _replay, _token_path, flask_wsgi = _layers(app)
    tokens = login_tokens(client, browser, confidential_client, scope="openid email")
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    fast = client.get("/userinfo", headers=headers)
    slow = Client(flask_wsgi).get("/userinfo", headers=headers)
    assert fast.status_code == slow.status_code == 200
    assert fast.get_json() == slow.get_json() == {
        "sub": user.subject, "email": "Janis.Berzins@Example.lv", "email_verified": True}
    assert sorted(fast.headers.items()) == sorted(slow.headers.items())
    # Errors are Flask's: a bad token gets RFC 6750's answer through the full app.
    bad = client.get("/userinfo", headers={"Authorization": "Bearer x.y.z"})
    assert bad.status_code == 401
    assert bad.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
