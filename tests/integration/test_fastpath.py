"""The fast paths answer exactly what Flask would, and only the plain happy path."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from joserfc import jwt
from sqlalchemy import select, update
from werkzeug.test import Client, EnvironBuilder

from idp.fastpath import FastPath, TokenFastPath, UserinfoFastPath
from idp.models import RefreshToken, TokenFamily, User
from idp.oidc import tokens as token_service
from idp.proxies import TrustedProxies
from tests.integration.conftest import basic, login_tokens, published_keys, refresh

TOKEN_FORM = "application/x-www-form-urlencoded"


def _layers(app):
    proxies = app.wsgi_app
    assert isinstance(proxies, TrustedProxies)  # outermost: every road sees the client
    replay = proxies.app
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
    _replay, _token_path, flask_wsgi = _layers(app)
    fast = app.test_client().get(path)
    fast = app.test_client().get(path)  # the second one is replayed
    slow = Client(flask_wsgi).get(path)
    assert fast.status_code == slow.status_code == 200
    assert fast.get_data() == slow.get_data()
    assert sorted(fast.headers.items()) == sorted(slow.headers.items())


def test_client_credentials_fast_answer_has_flasks_headers(app, confidential_client):
    _replay, _token_path, flask_wsgi = _layers(app)
    kwargs = {
        "data": {"grant_type": "client_credentials", "scope": "profile"},
        "headers": {
            "Authorization": _basic(confidential_client.client_id, confidential_client.secret)
        },
    }
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
    environ = EnvironBuilder(
        method="POST", path="/token", data=body, content_type=TOKEN_FORM, headers=headers
    ).get_environ()
    return token_path._answer(environ, body.encode())


def test_only_the_plain_happy_path_is_answered_before_flask(app, confidential_client, make_client):
    rp = confidential_client
    good = _basic(rp.client_id, rp.secret)
    assert _answer(app, "grant_type=client_credentials", good)["token_type"] == "Bearer"
    # Everything else is left to Flask (None), which answers it, errors included.
    assert _answer(app, "grant_type=client_credentials", _basic(rp.client_id, "wrong")) is None
    assert _answer(app, "grant_type=client_credentials", _basic("nobody", "x")) is None
    assert _answer(app, "grant_type=client_credentials", None) is None
    assert _answer(app, "grant_type=client_credentials&grant_type=client_credentials", good) is None
    assert _answer(app, "grant_type=client_credentials&scope=admin", good) is None
    assert _answer(app, "grant_type=client_credentials&extra=1", good) is None
    assert _answer(app, "grant_type=refresh_token&refresh_token=x", good) is None
    assert _answer(app, "grant_type=client_credentials&scope=%00", good) is None
    post_client = make_client(auth_method="client_secret_post", grant_types=["client_credentials"])
    assert (
        _answer(
            app, "grant_type=client_credentials", _basic(post_client.client_id, post_client.secret)
        )
        is None
    )


def test_userinfo_fast_answer_equals_flasks(
    app, client, browser, user, customer, confidential_client
):
    _replay, _token_path, flask_wsgi = _layers(app)
    tokens = login_tokens(client, browser, confidential_client, scope="openid email")
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    fast = client.get("/userinfo", headers=headers)
    slow = Client(flask_wsgi).get("/userinfo", headers=headers)
    assert fast.status_code == slow.status_code == 200
    assert fast.get_json() == slow.get_json()
    assert fast.get_json() == {
        "sub": user.subject,
        "email": "Janis.Berzins@Example.lv",
        "email_verified": True,
        "customer": {"id": customer.id, "number": customer.number, "name": customer.name},
        "role": "contractor",
        "rights": ["invoices.read", "meter_readings.submit", "users.manage"],
    }
    assert sorted(fast.headers.items()) == sorted(slow.headers.items())
    # Errors are Flask's: a bad token gets RFC 6750's answer through the full app.
    bad = client.get("/userinfo", headers={"Authorization": "Bearer x.y.z"})
    assert bad.status_code == 401
    assert bad.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


# --- refresh_token -------------------------------------------------------------------------


def _claims(client, token: str) -> dict:
    return dict(jwt.decode(token, published_keys(client), algorithms=["RS256", "ES256"]).claims)


def _refresh_form(refresh_token: str) -> str:
    return f"grant_type=refresh_token&refresh_token={refresh_token}"


def test_refresh_fast_answer_equals_flasks(
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
    assert sorted(fast.headers.keys()) == sorted(slow.headers.keys())
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


def _refresh_answer(app, body: str, authorization: str | None):
    """What the fast path answers (None: it leaves the request to Flask)."""
    return _answer(app, body, authorization)


@pytest.fixture
def issued(client, browser, user, confidential_client):
    return login_tokens(client, browser, confidential_client)


def test_refresh_happy_path_is_answered_before_flask(app, issued, confidential_client):
    body = _refresh_answer(
        app, _refresh_form(issued["refresh_token"]), _basic(*basic(confidential_client))
    )
    assert body is not None and body["refresh_token"] != issued["refresh_token"]


def test_refresh_requests_off_the_happy_path_fall_through_untouched(
    app, client, db, issued, confidential_client, make_client
):
    rp = confidential_client
    good, form = _basic(*basic(rp)), _refresh_form(issued["refresh_token"])
    other = make_client(name="Other", grant_types=["authorization_code", "refresh_token"])
    post_client = make_client(
        name="Post",
        auth_method="client_secret_post",
        grant_types=["authorization_code", "refresh_token"],
    )
    no_refresh = make_client(name="No refresh", grant_types=["authorization_code"])
    for body, authorization in [
        (form, _basic(rp.client_id, "wrong")),  # bad client authentication
        (form, None),  # no client authentication
        (form + f"&client_id={rp.client_id}", good),  # an extra parameter
        (form + "&scope=openid", good),  # scope (narrowing is Flask's)
        (form + "&refresh_token=x", good),  # a repeated parameter
        (_refresh_form("%00"), good),  # NUL
        (_refresh_form(""), good),  # empty token
        ("grant_type=refresh_token", good),  # no token
        (_refresh_form("x" * 43), good),  # unknown token
        (_refresh_form("x" * 600), good),  # absurdly long token
        (form, _basic(*basic(other))),  # another client's token
        (form, _basic(*basic(post_client))),  # client not registered for Basic
        (form, _basic(*basic(no_refresh))),  # client without the grant
    ]:
        assert _refresh_answer(app, body, authorization) is None, (body, authorization)
    # None of them consumed the token: it still rotates (through the fast path).
    assert _refresh_answer(app, form, good) is not None


def test_used_token_falls_through_and_flask_revokes_the_family(
    app, client, issued, confidential_client
):
    rp = confidential_client
    good = _basic(*basic(rp))
    newer = _refresh_answer(app, _refresh_form(issued["refresh_token"]), good)
    assert newer is not None
    assert _refresh_answer(app, _refresh_form(issued["refresh_token"]), good) is None
    reused = refresh(client, rp, issued["refresh_token"])
    assert reused.status_code == 400 and reused.get_json()["error"] == "invalid_grant"
    assert reused.headers["Cache-Control"] == "no-store"
    # The whole family is revoked: the newer token no longer takes the fast path, and
    # Flask refuses it too.
    assert _refresh_answer(app, _refresh_form(newer["refresh_token"]), good) is None
    assert refresh(client, rp, newer["refresh_token"]).status_code == 400


@pytest.mark.parametrize(
    "change", ["token_expired", "family_expired", "family_revoked", "user_inactive"]
)
def test_unusable_tokens_fall_through_to_flasks_invalid_grant(
    app, client, db, issued, confidential_client, change
):
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    statement = {
        "token_expired": update(RefreshToken).values(expires_at=past),
        "family_expired": update(TokenFamily).values(expires_at=past),
        "family_revoked": update(TokenFamily).values(revoked_at=past, revoked_reason="test"),
        "user_inactive": update(User).values(status="inactive"),
    }[change]
    db.execute(statement)
    db.commit()
    good = _basic(*basic(confidential_client))
    assert _refresh_answer(app, _refresh_form(issued["refresh_token"]), good) is None
    response = refresh(client, confidential_client, issued["refresh_token"])
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["error"] == "invalid_grant"
    assert response.headers["Cache-Control"] == "no-store"


def test_rotation_lost_to_a_concurrent_request_falls_through(
    app, client, db, issued, confidential_client, monkeypatch
):
    """Exactly once: the token is used by another request between the fast path's read and
    its rotation. The fast path issues nothing; Flask then finds the token used and revokes
    the family (as for any replay), so the concurrent request's tokens die too."""
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


def test_refresh_with_scope_narrowing_is_flasks(app, client, issued, confidential_client):
    response = client.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "scope": "openid",
            "refresh_token": issued["refresh_token"],
        },
        auth=basic(confidential_client),
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["scope"] == "openid"


def test_userinfo_fast_path_sees_a_revocation_at_once(app, client, db, issued):
    _replay, _token_path, _flask = _layers(app)
    userinfo_path = app.wsgi_app.app.app
    assert userinfo_path._claims(f"Bearer {issued['access_token']}") is not None
    db.execute(update(TokenFamily).values(revoked_at=dt.datetime.now(dt.UTC)))
    db.commit()
    assert userinfo_path._claims(f"Bearer {issued['access_token']}") is None
    response = client.get(
        "/userinfo", headers={"Authorization": f"Bearer {issued['access_token']}"}
    )
    assert response.status_code == 401


# --- one header policy on both roads, over http and https (issue 11, point 4) ------------


def _comparable(response) -> list[tuple[str, str]]:
    return sorted((k, v) for k, v in response.headers.items() if k != "Content-Length")


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_both_roads_send_the_same_headers(
    app, client, browser, user, confidential_client, scheme, monkeypatch
):
    _replay, token_path, flask_wsgi = _layers(app)
    base = f"{scheme}://localhost"
    issued = login_tokens(client, browser, confidential_client)
    auth = {"Authorization": _basic(confidential_client.client_id, confidential_client.secret)}
    bearer = {"Authorization": f"Bearer {issued['access_token']}"}

    def fast_only(environ, start_response):
        pytest.fail(f"{environ['PATH_INFO']} fell through to Flask")

    requests = [
        ("POST", "/token", {"data": {"grant_type": "client_credentials"}, "headers": auth}),
        ("GET", "/userinfo", {"headers": bearer}),
    ]
    for method, path, kwargs in requests:
        monkeypatch.setattr(token_path, "app", fast_only)
        fast = app.test_client().open(path, method=method, base_url=base, **kwargs)
        monkeypatch.undo()
        slow = Client(flask_wsgi).open(path, method=method, base_url=base, **kwargs)
        assert fast.status_code == slow.status_code == 200, slow.get_data(as_text=True)
        assert _comparable(fast) == _comparable(slow), path
        assert ("Strict-Transport-Security" in fast.headers) is (scheme == "https")

    monkeypatch.setattr(token_path, "app", fast_only)
    fast = app.test_client().post(
        "/token",
        base_url=base,
        headers=auth,
        data={"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]},
    )
    monkeypatch.undo()
    slow = Client(flask_wsgi).post(
        "/token",
        base_url=base,
        headers=auth,
        data={"grant_type": "refresh_token", "refresh_token": fast.get_json()["refresh_token"]},
    )
    assert fast.status_code == slow.status_code == 200, slow.get_data(as_text=True)
    assert _comparable(fast) == _comparable(slow)
    assert ("Strict-Transport-Security" in fast.headers) is (scheme == "https")
    # Error answers are Flask's on both schemes, with the same policy.
    bad = app.test_client().get(
        "/userinfo", base_url=base, headers={"Authorization": "Bearer x.y.z"}
    )
    assert bad.status_code == 401
    assert ("Strict-Transport-Security" in bad.headers) is (scheme == "https")


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
