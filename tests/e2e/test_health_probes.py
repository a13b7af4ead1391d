"""The probes as a load balancer calls them: over HTTP, on a running granian server."""

from __future__ import annotations

import requests

from tests.e2e.conftest import HTTP_TIMEOUT, LiveServer


def test_a_running_server_is_alive_and_ready(live_server: LiveServer) -> None:
    alive = requests.get(live_server.base_url + "/healthz", timeout=HTTP_TIMEOUT)
    assert alive.status_code == 200 and alive.json() == {"status": "ok"}

    ready = requests.get(live_server.base_url + "/readyz", timeout=HTTP_TIMEOUT)
    assert ready.status_code == 200, ready.text
    assert ready.json() == {
        "status": "ok",
        "checks": {"database": "ok", "migrations": "ok", "keys": "ok"},
    }
    head = requests.head(live_server.base_url + "/readyz", timeout=HTTP_TIMEOUT)
    assert head.status_code == 200 and head.content == b""
    for answer in (alive, ready, head):
        assert answer.headers["Cache-Control"] == "no-store"
        assert "Set-Cookie" not in answer.headers
