"""Helpers shared by the protocol-surface scenarios: get a code through the browser, redeem
it, and read the signed tokens with the published keys."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import KeySet
from werkzeug.test import TestResponse

from tests.conftest import (
    ISSUER,
    Browser,
    RegisteredClient,
    auth_params,
    free_loopback_port,
    query,
)

TOKEN_URL = ISSUER + "/token"


def basic(rp: RegisteredClient) -> tuple[str, str]:
    assert rp.secret, "a client with a secret"
    return rp.client_id, rp.secret


def get_code(
    browser: Browser, rp: RegisteredClient, **extra: str
) -> tuple[str, str, dict[str, str]]:
    """Log in and consent for `rp`; returns (code, verifier, request params)."""
    params, verifier = auth_params(rp, **extra)
    response = browser.authorize(params)
    assert response.status_code == 302, response.get_data(as_text=True)
    location = response.headers["Location"]
    assert location.startswith(rp.redirect_uri + "?"), location
    answer = query(location)
    assert "code" in answer, answer
    return answer["code"], verifier, params


def redeem(
    client: FlaskClient, rp: RegisteredClient, code: str, verifier: str | None, **extra: str
) -> TestResponse:
    """The token request for `code`, authenticated as the client is registered to."""
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": rp.redirect_uri}
    if verifier is not None:
        data["code_verifier"] = verifier
    data.update(extra)
    if rp.secret is None:
        data.setdefault("client_id", rp.client_id)
        return client.post("/token", data=data)
    return client.post("/token", data=data, auth=basic(rp))


def login_tokens(
    client: FlaskClient, browser: Browser, rp: RegisteredClient, **extra: str
) -> dict[str, Any]:
    """A whole login: the token response body for `rp`."""
    code, verifier, params = get_code(browser, rp, **extra)
    response = redeem(client, rp, code, verifier)
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    body["_params"] = params
    return body


def refresh(client: FlaskClient, rp: RegisteredClient, refresh_token: str) -> TestResponse:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if rp.secret is None:
        return client.post("/token", data={**data, "client_id": rp.client_id})
    return client.post("/token", data=data, auth=basic(rp))


def introspect(client: FlaskClient, rp: RegisteredClient, token: str) -> dict[str, Any]:
    response = client.post("/introspect", data={"token": token}, auth=basic(rp))
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


def published_keys(client: FlaskClient) -> KeySet:
    return KeySet.import_key_set(client.get("/jwks.json").get_json())


def decode(client: FlaskClient, token: str, alg: str) -> jwt.Token:
    """Verify `token` with the published JWKS, allowing only `alg`."""
    return jwt.decode(token, published_keys(client), algorithms=[alg])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def demo(app: Flask, make_app: Callable[..., Flask]) -> Iterator[Flask]:
    """A demo-mode IdP served over HTTP (its connector redeems the bank's code there),
    seeded with the demo customers, the contractor Jānis and the DEMO bank. (Depends on
    `app`, which empties the shared database before and after.)"""
    demo_app = make_app(mode="demo", issuer=f"http://127.0.0.1:{free_loopback_port()}")
    seeded = demo_app.test_cli_runner().invoke(args=["demo", "seed"])
    assert seeded.exit_code == 0, seeded.output
    from tests.integration.test_providers_cli import served

    with served(demo_app):
        yield demo_app
