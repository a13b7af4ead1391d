"""SQLite has one writer at a time: concurrent token requests must queue (BEGIN IMMEDIATE +
busy_timeout), never fail with "database is locked" or a 500."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import requests

from tests.conftest import postgres_server_url
from tests.e2e.conftest import (
    HTTP_TIMEOUT,
    Browser,
    LiveServer,
    Person,
    redeem_code,
    refresh,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(postgres_server_url() is not None, reason="SQLite only"),
]

REFRESH_THREADS = 8
REFRESHES_PER_THREAD = 25
CLIENT_CREDENTIALS_THREADS = 2
CLIENT_CREDENTIALS_PER_THREAD = 25


def test_concurrent_token_requests_never_fail_on_sqlite(
    live_server: LiveServer,
    person: Person,
    browser_for: Callable[[Person], Browser],
) -> None:
    app = live_server.confidential
    browser = browser_for(person)
    # One refresh-token family per thread, so no two threads ever present the same token.
    families = []
    for _ in range(REFRESH_THREADS):
        code, verifier = browser.obtain_code(app)
        response = redeem_code(live_server.base_url, app, code, verifier)
        assert response.status_code == 200, response.text
        families.append(response.json()["refresh_token"])

    start = threading.Barrier(REFRESH_THREADS + CLIENT_CREDENTIALS_THREADS)
    failures: list[str] = []
    latest: dict[int, str] = {}
    lock = threading.Lock()

    def note(text: str) -> None:
        with lock:
            failures.append(text)

    def refresher(index: int) -> None:
        token = families[index]
        with requests.Session() as http:
            start.wait(timeout=HTTP_TIMEOUT)
            for step in range(REFRESHES_PER_THREAD):
                response = refresh(live_server.base_url, app, token, http)
                if response.status_code != 200:
                    note(f"refresh {index}/{step}: {response.status_code} {response.text[:300]}")
                    return
                token = response.json()["refresh_token"]
        latest[index] = token

    def machine_client() -> None:
        with requests.Session() as http:
            start.wait(timeout=HTTP_TIMEOUT)
            for step in range(CLIENT_CREDENTIALS_PER_THREAD):
                response = http.post(
                    f"{live_server.base_url}/token",
                    data={"grant_type": "client_credentials"},
                    auth=app.auth,
                    timeout=HTTP_TIMEOUT,
                )
                if response.status_code != 200 or "access_token" not in response.json():
                    note(f"client_credentials {step}: {response.status_code} {response.text[:300]}")
                    return

    threads = [threading.Thread(target=refresher, args=(i,)) for i in range(REFRESH_THREADS)]
    threads += [threading.Thread(target=machine_client) for _ in range(CLIENT_CREDENTIALS_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        # Bounded: 250 small requests finish in seconds; a hang fails instead of blocking.
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "token requests hung"
    assert failures == [], "\n".join(failures) + "\n" + live_server.server.log_tail()

    # Every family ends with exactly one live refresh token: the newest.
    assert len(latest) == REFRESH_THREADS
    for token in latest.values():
        response = requests.post(
            f"{live_server.base_url}/introspect",
            auth=app.auth,
            data={"token": token, "token_type_hint": "refresh_token"},
            timeout=HTTP_TIMEOUT,
        )
        assert response.json()["active"] is True, response.text
