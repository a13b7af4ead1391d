"""One road: every refresh_token, client_credentials and userinfo request gets the same
answer - status, headers, body, and what it writes - from the app with its fast paths as
from Flask alone, over http, over https, and over https as a trusted balancer reports it.

Each case is prepared twice, once per road (a rotation spends its token), and states
whether the fast path takes it: a request it declines goes to Flask on both roads, so
the case list also pins down which requests the fast paths answer themselves."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple
from urllib.parse import urlencode

import pytest
from flask import Flask
from joserfc import jwt
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session
from werkzeug.test import Client, TestResponse

from idp.clients import find_client
from idp.fastpath import FastPath, TokenFastPath, UserinfoFastPath
from idp.models import Customer, Membership, RefreshToken, TokenFamily, User
from idp.observability import RequestLog
from idp.oidc import tokens
from idp.proxies import TrustedProxies, parse_networks
from tests.conftest import RegisteredClient, pkce_pair
from tests.integration.conftest import published_keys

TOKEN_FORM = "application/x-www-form-urlencoded"
SCOPE = "openid profile email"
# Claims that differ between two tokens issued alike (time, random id, family, hashes).
VARYING_CLAIMS = {"iat", "exp", "jti", "gid", "at_hash"}


# --- the two roads -------------------------------------------------------------------------


@dataclass
class Roads:
    fast: Any  # the app as served: trusted proxies, the fast paths, then Flask
    flask: Any  # the same app without the fast paths: Flask alone
    reached_flask: list[str]  # requests the fast road handed to Flask


def _roads(app: Flask, monkeypatch: pytest.MonkeyPatch, balancer: bool) -> Roads:
    """The app's WSGI layers, and Flask alone: Flask.wsgi_app of the same app (one engine,
    one key ring) behind the same trusted proxies."""
    proxies = app.wsgi_app
    assert isinstance(proxies, TrustedProxies)
    request_log = proxies.app
    assert isinstance(request_log, RequestLog)
    # Compared without the request log: its X-Request-ID differs on every answer.
    replay = request_log.app
    assert isinstance(replay, FastPath)
    userinfo_path = replay.app
    assert isinstance(userinfo_path, UserinfoFastPath)
    token_path = userinfo_path.app
    assert isinstance(token_path, TokenFastPath)
    reached: list[str] = []
    flask_wsgi = token_path.app

    def recording_flask(environ: dict[str, Any], start_response: Any) -> Any:
        reached.append(environ["PATH_INFO"])
        return flask_wsgi(environ, start_response)

    monkeypatch.setattr(token_path, "app", recording_flask)
    flask_alone = partial(Flask.wsgi_app, app)
    if not balancer:
        return Roads(
            TrustedProxies(replay, proxies.networks),
            TrustedProxies(flask_alone, proxies.networks),
            reached,
        )
    # As create_app builds it for `trusted_proxies = ["127.0.0.0/8"]`.
    networks = parse_networks(["127.0.0.0/8"])
    return Roads(TrustedProxies(replay, networks), TrustedProxies(flask_alone, networks), reached)


class Scheme(NamedTuple):
    base_url: str
    headers: dict[str, str]
    balancer: bool  # the peer is a trusted balancer
    secure: bool  # so the answer is sent over https (HSTS)


FORWARDED_HTTPS = {"X-Forwarded-Proto": "https"}
SCHEMES = {
    "http": Scheme("http://localhost", {}, balancer=False, secure=False),
    "https": Scheme("https://localhost", {}, balancer=False, secure=True),
    "https-balancer": Scheme("http://localhost", FORWARDED_HTTPS, balancer=True, secure=True),
    # Anyone else's X-Forwarded-Proto is dropped unread.
    "untrusted-forwarded": Scheme(
        "http://localhost", FORWARDED_HTTPS, balancer=False, secure=False
    ),
}


# --- what a case prepares ------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    content_type: str | None = None
    query: str = ""
    family: str | None = None  # the token family the request is about (its state is compared)


@dataclass(frozen=True)
class Later:
    """A call sent once every road's data is prepared and `change` made (to all of it: a
    user made inactive could not log in for the second road)."""

    change: Any
    call: Call


def basic_auth(client_id: str, secret: str | None) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _past() -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)


@dataclass
class World:
    """The data of one test: a user acting for a customer, and clients of every kind."""

    app: Flask
    db: Session
    user: User
    customer: Customer
    clients: dict[str, tuple[RegisteredClient, str]]  # name -> (client, its auth method)
    auth_time: int = field(default_factory=lambda: int(dt.datetime.now(dt.UTC).timestamp()))

    def client_id(self, name: str) -> str:
        return self.clients[name][0].client_id

    def credentials(self, name: str, secret: str | None = None) -> tuple[dict, dict]:
        """(headers, form parameters) authenticating `name` as it is registered to."""
        rp, method = self.clients[name]
        secret = secret or rp.secret
        if method == "client_secret_basic":
            return basic_auth(rp.client_id, secret), {}
        if method == "client_secret_post":
            return {}, {"client_id": rp.client_id, "client_secret": secret}
        return {}, {"client_id": rp.client_id}

    def token(
        self,
        form: dict[str, str] | str,
        client: str | None = "portal",
        *,
        secret: str | None = None,
        headers: dict[str, str] | None = None,
        content_type: str = TOKEN_FORM,
        query: str = "",
        family: str | None = None,
    ) -> Call:
        auth, extra = self.credentials(client, secret) if client else ({}, {})
        body = form if isinstance(form, str) else urlencode({**form, **extra})
        return Call("POST", "/token", headers or auth, body, content_type, query, family)

    def refresh(self, issued: dict[str, Any], client: str = "portal", **form: str) -> Call:
        data = {"grant_type": "refresh_token", "refresh_token": issued["refresh_token"], **form}
        return self.token(data, client, family=issued["family"])

    def login(self, name: str = "portal", scope: str = SCOPE) -> dict[str, Any]:
        """The token response of a code redeemed by `name` (the code stored as the
        authorization endpoint stores it: no browser, no password hashing)."""
        rp, _method = self.clients[name]
        client = find_client(self.db, rp.client_id)
        assert client is not None
        verifier, challenge = pkce_pair()
        code = tokens.store_authorization_code(
            self.db,
            self.app.config["IDP_SETTINGS"],
            client=client,
            user_id=self.user.id,
            customer_id=self.customer.id,
            redirect_uri=rp.redirect_uri,
            scope=scope,
            nonce="n-1",
            code_challenge=challenge,
            code_challenge_method="S256",
            sid="sid-1",
            auth_time=self.auth_time,
            acr="low",
            amr=["pwd"],
        )
        self.db.commit()
        headers, extra = self.credentials(name)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": rp.redirect_uri,
            "code_verifier": verifier,
            **extra,
        }
        response = self.app.test_client().post("/token", data=form, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        body: dict[str, Any] = response.get_json()
        found = tokens.find_refresh_token(self.db, body.get("refresh_token"))
        body["family"] = found.family.id if found else None
        self.db.rollback()
        return body

    def claims(self, token: str) -> dict[str, Any]:
        keys = published_keys(self.app.test_client())
        return dict(jwt.decode(token, keys, algorithms=["RS256", "ES256"]).claims)

    def change(self, statement: Any) -> None:
        self.db.execute(statement)
        self.db.commit()

    def family_state(self, family: str) -> tuple[Any, ...]:
        revoked = self.db.scalar(select(TokenFamily.revoked_reason).where(TokenFamily.id == family))
        used = self.db.scalars(
            select(RefreshToken.used_at.is_not(None))
            .where(RefreshToken.family_id == family)
            .order_by(RefreshToken.id)
        ).all()
        self.db.rollback()
        return revoked, list(used)


@pytest.fixture
def world(app, db, user, customer, make_client) -> World:
    user_grants = ["authorization_code", "refresh_token"]
    registered = {
        "portal": (
            {
                "audience": "https://api.example.lv",
                "grant_types": [*user_grants, "client_credentials"],
            },
            "client_secret_basic",
        ),
        "other": ({"grant_types": user_grants}, "client_secret_basic"),
        "post": ({"grant_types": user_grants}, "client_secret_post"),
        "public": ({"grant_types": user_grants}, "none"),
        "no_refresh": ({"grant_types": ["authorization_code"]}, "client_secret_basic"),
        "service": (
            {"grant_types": ["client_credentials"], "scopes": ["profile", "email"]},
            "client_secret_post",
        ),
    }
    clients = {
        name: (make_client(name=name, auth_method=method, **kwargs), method)
        for name, (kwargs, method) in registered.items()
    }
    return World(app, db, user, customer, clients)


# --- the cases: how each is prepared, whether the fast path takes it, Flask's status ------

Prepare = Callable[[World], "Call | Later"]


def _used_refresh_token(w: World) -> Call:
    issued = w.login()
    rotated = w.app.test_client().post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]},
        headers=w.credentials("portal")[0],
    )
    assert rotated.status_code == 200
    return w.refresh(issued)


def _refresh_after(change: Callable[[], Any]) -> Prepare:
    return lambda w: Later(change(), w.refresh(w.login()))


def _userinfo_after(change: Callable[[], Any]) -> Prepare:
    return lambda w: Later(change(), Call("GET", "/userinfo", bearer(w.login()["access_token"])))


def _expired_access_token(w: World) -> Call:
    claims = w.claims(w.login()["access_token"])
    claims["exp"] = claims["iat"] - 1
    alg = w.app.config["IDP_SETTINGS"].access_token_signing_alg
    token = w.app.extensions["idp.keyring"].sign(claims, alg, typ=tokens.ACCESS_TOKEN_TYPE)
    return Call("GET", "/userinfo", bearer(token))


def _revoked_access_token(w: World) -> Call:
    access_token = w.login()["access_token"]
    tokens.revoke_access_token(w.db, w.claims(access_token))
    w.db.commit()
    return Call("GET", "/userinfo", bearer(access_token))


def _client_credentials_token(w: World) -> Call:
    response = w.app.test_client().post(
        "/token", data={"grant_type": "client_credentials"}, headers=w.credentials("portal")[0]
    )
    assert response.status_code == 200
    return Call("GET", "/userinfo", bearer(response.get_json()["access_token"]))


def _userinfo(w: World, scope: str = SCOPE, scheme: str = "Bearer", **call: Any) -> Call:
    token = w.login("portal", scope)["access_token"]
    return Call("GET", "/userinfo", {"Authorization": f"{scheme} {token}"}, **call)


ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
REFRESH = {"grant_type": "refresh_token", "refresh_token": "x" * 43}

REFRESH_CASES: dict[str, tuple[Prepare, bool, int]] = {
    "basic": (lambda w: w.refresh(w.login()), True, 200),
    "post": (lambda w: w.refresh(w.login("post"), "post"), True, 200),
    "public client": (lambda w: w.refresh(w.login("public"), "public"), True, 200),
    "narrowed scope": (lambda w: w.refresh(w.login(), scope="openid email"), True, 200),
    "empty scope": (lambda w: w.refresh(w.login(), scope=""), True, 200),
    "widened scope": (lambda w: w.refresh(w.login(), scope="openid phone"), True, 400),
    "unknown scope": (lambda w: w.refresh(w.login(), scope="admin"), True, 400),
    "form with a charset": (
        lambda w: w.token(
            {"grant_type": "refresh_token", "refresh_token": w.login()["refresh_token"]},
            content_type=TOKEN_FORM + "; charset=UTF-8",
        ),
        True,
        200,
    ),
    "missing refresh_token": (lambda w: w.token({"grant_type": "refresh_token"}), True, 400),
    "empty refresh_token": (lambda w: w.token({**REFRESH, "refresh_token": ""}), True, 400),
    "unknown refresh_token": (lambda w: w.token(REFRESH), True, 400),
    "absurd refresh_token": (lambda w: w.token({**REFRESH, "refresh_token": "x" * 600}), True, 400),
    "used refresh_token (reuse revokes the family)": (_used_refresh_token, True, 400),
    "token expired": (
        _refresh_after(lambda: update(RefreshToken).values(expires_at=_past())),
        True,
        400,
    ),
    "family expired": (
        _refresh_after(lambda: update(TokenFamily).values(expires_at=_past())),
        True,
        400,
    ),
    "family revoked": (
        _refresh_after(lambda: update(TokenFamily).values(revoked_at=_past(), revoked_reason="x")),
        True,
        400,
    ),
    "user inactive": (_refresh_after(lambda: update(User).values(status="inactive")), True, 400),
    "membership removed": (_refresh_after(lambda: delete(Membership)), True, 400),
    "another client's token": (lambda w: w.refresh(w.login(), "other"), True, 400),
    "wrong secret": (lambda w: w.token(REFRESH, secret="wrong"), True, 401),
    "unknown client": (lambda w: w.token(REFRESH, headers=basic_auth("nobody", "x")), True, 401),
    "no client authentication": (lambda w: w.token(REFRESH, None), True, 401),
    "basic credentials that are not UTF-8": (
        lambda w: w.token(
            REFRESH, headers={"Authorization": "Basic " + base64.b64encode(b"\xff:\xfe").decode()}
        ),
        True,
        401,
    ),
    "basic credentials but the word": (
        lambda w: w.token(REFRESH, headers={"Authorization": "Basic "}),
        True,
        401,
    ),
    "basic credentials that are not base64": (
        lambda w: w.token(REFRESH, headers={"Authorization": "Basic !!!"}),
        True,
        401,
    ),
    "post client using basic": (
        lambda w: w.token(REFRESH, headers=basic_auth(w.client_id("post"), "x")),
        True,
        401,
    ),
    "post client with a wrong secret": (lambda w: w.token(REFRESH, "post", secret="x"), True, 401),
    "public client sending a secret": (
        lambda w: w.token(
            {**REFRESH, "client_id": w.client_id("public"), "client_secret": "x"}, None
        ),
        True,
        401,
    ),
    "client without the grant": (lambda w: w.token(REFRESH, "no_refresh"), True, 400),
    # Declined: Flask answers on both roads.
    "client assertion": (
        lambda w: w.token(
            {**REFRESH, "client_assertion_type": ASSERTION_TYPE, "client_assertion": "x.y.z"}, None
        ),
        False,
        401,
    ),
    "repeated parameter": (lambda w: w.token(urlencode(REFRESH) + "&refresh_token=y"), False, 400),
    "extension parameter": (
        lambda w: w.refresh(w.login(), resource="https://api.example.lv"),
        False,
        200,
    ),
    "query string": (
        lambda w: w.token(
            {"grant_type": "refresh_token", "refresh_token": w.login()["refresh_token"]},
            query="scope=openid",
        ),
        False,
        200,
    ),
    "NUL": (lambda w: w.token("grant_type=refresh_token&refresh_token=%00"), False, 400),
    "not UTF-8": (lambda w: w.token("grant_type=refresh_token&refresh_token=%ff"), False, 400),
    "JSON body": (
        lambda w: w.token('{"grant_type": "refresh_token"}', content_type="application/json"),
        False,
        400,
    ),
    "a content type that only begins like a form": (
        lambda w: w.token(REFRESH, content_type=TOKEN_FORM + "-not"),
        False,
        400,
    ),
    "GET": (lambda w: Call("GET", "/token", w.credentials("portal")[0]), False, 405),
    "missing grant_type": (lambda w: w.token({"refresh_token": "x"}), False, 400),
    "unsupported grant_type": (lambda w: w.token({"grant_type": "password"}), False, 400),
}

CLIENT_CREDENTIALS = {"grant_type": "client_credentials"}
CLIENT_CREDENTIALS_CASES: dict[str, tuple[Prepare, bool, int]] = {
    "basic": (lambda w: w.token(CLIENT_CREDENTIALS), True, 200),
    "basic, a scope": (lambda w: w.token({**CLIENT_CREDENTIALS, "scope": "profile"}), True, 200),
    "post": (lambda w: w.token(CLIENT_CREDENTIALS, "service"), True, 200),
    "a scope it may not have": (
        lambda w: w.token({**CLIENT_CREDENTIALS, "scope": "profile admin"}),
        True,
        400,
    ),
    "public client": (lambda w: w.token(CLIENT_CREDENTIALS, "public"), True, 401),
    "client without the grant": (lambda w: w.token(CLIENT_CREDENTIALS, "other"), True, 400),
    "wrong secret": (lambda w: w.token(CLIENT_CREDENTIALS, secret="wrong"), True, 401),
    "query string": (lambda w: w.token(CLIENT_CREDENTIALS, query="scope=admin"), False, 200),
}

USERINFO_CASES: dict[str, tuple[Prepare, bool, int]] = {
    "bearer token": (_userinfo, True, 200),
    "scheme in lower case, scope openid only": (
        lambda w: _userinfo(w, "openid", scheme="bearer"),
        True,
        200,
    ),
    "no token": (lambda w: Call("GET", "/userinfo"), True, 401),
    "another scheme": (lambda w: Call("GET", "/userinfo", w.credentials("portal")[0]), True, 401),
    "empty bearer": (lambda w: Call("GET", "/userinfo", {"Authorization": "Bearer "}), True, 401),
    "not a token": (lambda w: Call("GET", "/userinfo", bearer("x.y.z")), True, 401),
    "expired token": (_expired_access_token, True, 401),
    "revoked token": (_revoked_access_token, True, 401),
    "revoked family": (
        _userinfo_after(lambda: update(TokenFamily).values(revoked_at=_past())),
        True,
        401,
    ),
    "user inactive": (_userinfo_after(lambda: update(User).values(status="inactive")), True, 401),
    "membership removed": (_userinfo_after(lambda: delete(Membership)), True, 401),
    "a client's own token": (_client_credentials_token, True, 401),
    "no openid scope": (lambda w: _userinfo(w, "profile email"), True, 403),
    # Declined: Flask answers on both roads.
    "token in the query": (
        lambda w: Call("GET", "/userinfo", query="access_token=" + w.login()["access_token"]),
        False,
        401,
    ),
    "token in the header and a query": (lambda w: _userinfo(w, query="x=1"), False, 200),
    "POST": (lambda w: Call("POST", "/userinfo", bearer(w.login()["access_token"])), False, 200),
    "POST, token in the form": (
        lambda w: Call(
            "POST",
            "/userinfo",
            body=urlencode({"access_token": w.login()["access_token"]}),
            content_type=TOKEN_FORM,
        ),
        False,
        401,
    ),
    "GET with a body": (
        lambda w: _userinfo(w, body="x=%00", content_type=TOKEN_FORM),
        False,
        200,
    ),
    "HEAD": (lambda w: Call("HEAD", "/userinfo", bearer(w.login()["access_token"])), False, 200),
    "PUT": (lambda w: Call("PUT", "/userinfo", bearer(w.login()["access_token"])), False, 405),
}

CASES = {
    **{f"refresh_token: {name}": case for name, case in REFRESH_CASES.items()},
    **{f"client_credentials: {name}": case for name, case in CLIENT_CREDENTIALS_CASES.items()},
    **{f"userinfo: {name}": case for name, case in USERINFO_CASES.items()},
}


# --- the comparison ------------------------------------------------------------------------


def _send(road: Any, call: Call, scheme: Scheme) -> TestResponse:
    return Client(road).open(
        call.path,
        method=call.method,
        base_url=scheme.base_url,
        headers={**call.headers, **scheme.headers},
        data=call.body,
        content_type=call.content_type,
        query_string=call.query,
        environ_base={"REMOTE_ADDR": "127.0.0.1"},
    )


def _assert_same_token_response(w: World, fast: dict[str, Any], slow: dict[str, Any]) -> None:
    """Same keys, types and values but for the random and per-family ones."""
    assert list(fast) == list(slow)
    assert {k: type(v) for k, v in fast.items()} == {k: type(v) for k, v in slow.items()}
    for name in ("token_type", "expires_in", "scope"):
        assert fast.get(name) == slow.get(name), name
    if "refresh_token" in fast:
        assert len(fast["refresh_token"]) == len(slow["refresh_token"])
    for name in ("access_token", "id_token"):
        if name in fast:
            f, s = w.claims(fast[name]), w.claims(slow[name])
            assert f.keys() == s.keys(), name
            assert f["exp"] - f["iat"] == s["exp"] - s["iat"]
            assert {k: f[k] for k in f.keys() - VARYING_CLAIMS} == {
                k: s[k] for k in s.keys() - VARYING_CLAIMS
            }, name


def _headers(response: TestResponse, tokens_issued: bool) -> list[tuple[str, str]]:
    """The headers in order; the length only where the body holds random tokens."""
    return [
        (k, "(varies)" if tokens_issued and k == "Content-Length" else v)
        for k, v in response.headers.items()
    ]


@pytest.mark.parametrize("scheme_name", list(SCHEMES))
@pytest.mark.parametrize("case", list(CASES))
def test_both_roads_give_the_same_answer(world, monkeypatch, case, scheme_name):
    prepare, taken, status = CASES[case]
    scheme = SCHEMES[scheme_name]
    roads = _roads(world.app, monkeypatch, scheme.balancer)
    prepared = [prepare(world), prepare(world)]  # one for each road
    for one in prepared:
        if isinstance(one, Later):
            world.change(one.change)
    calls = [one.call if isinstance(one, Later) else one for one in prepared]
    roads.reached_flask.clear()
    fast = _send(roads.fast, calls[0], scheme)
    assert (roads.reached_flask == []) is taken, roads.reached_flask
    slow = _send(roads.flask, calls[1], scheme)

    assert slow.status_code == status, slow.get_data(as_text=True)
    assert fast.status == slow.status, (fast.get_data(as_text=True), slow.get_data(as_text=True))
    tokens_issued = status == 200 and "access_token" in (slow.get_json(silent=True) or {})
    assert _headers(fast, tokens_issued) == _headers(slow, tokens_issued)
    assert ("Strict-Transport-Security" in fast.headers) is scheme.secure
    if tokens_issued:
        _assert_same_token_response(world, fast.get_json(), slow.get_json())
        assert fast.headers["Content-Length"] == str(len(fast.get_data()))
    else:
        assert fast.get_data() == slow.get_data()
    # What the request wrote: a rotation, or the family revoked when a used token came back.
    states = [world.family_state(call.family) if call.family else None for call in calls]
    assert states[0] == states[1]
