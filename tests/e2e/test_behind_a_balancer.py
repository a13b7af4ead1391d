"""Over real HTTP, through granian: an instance configured to trust the balancer's network
takes the scheme from X-Forwarded-Proto on every road (the fast paths too), so HSTS is sent
exactly when the client spoke https to the balancer (issue 11, points 3 and 4)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.e2e.conftest import HTTP_TIMEOUT, LiveServer, ServerProcess, start_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def balanced(live_server: LiveServer) -> Iterator[ServerProcess]:
    """A second instance on the same database whose balancer is the loopback network."""
    server = start_server(
        {**live_server.env, "IDP_TRUSTED_PROXIES": "127.0.0.0/8"},
        live_server.workdir / "granian-balanced.log",
        issuer=live_server.issuer,
    )
    try:
        yield server
    finally:
        server.stop()


def _token(base_url: str, live_server: LiveServer, **headers: str) -> requests.Response:
    app = live_server.confidential
    return requests.post(
        base_url + "/token",
        data={"grant_type": "client_credentials"},
        auth=app.auth,
        headers=headers,
        timeout=HTTP_TIMEOUT,
    )


@pytest.mark.parametrize("path", ["/token", "/jwks.json", "/login"])
def test_https_at_the_balancer_gets_hsts_on_every_road(balanced, live_server, path):
    def fetch(**headers: str) -> requests.Response:
        if path == "/token":
            return _token(balanced.base_url, live_server, **headers)
        return requests.get(balanced.base_url + path, headers=headers, timeout=HTTP_TIMEOUT)

    over_https = fetch(**{"X-Forwarded-Proto": "https"})
    assert over_https.status_code == 200
    assert over_https.headers["Strict-Transport-Security"].startswith("max-age=")
    over_http = fetch()
    assert over_http.status_code == 200
    assert "Strict-Transport-Security" not in over_http.headers


def test_an_instance_that_trusts_no_balancer_ignores_the_header(live_server):
    answer = _token(live_server.base_url, live_server, **{"X-Forwarded-Proto": "https"})
    assert answer.status_code == 200
    assert "Strict-Transport-Security" not in answer.headers
