"""Exactly once, even when two app instances race: two granian processes on the SAME
database receive the same authorization code (or refresh token) at the same moment.
Exactly one wins; the other gets invalid_grant, and a code presented twice revokes what the
winner got (RFC 6749 §4.1.2), as a replayed refresh token revokes its family."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

import pytest
import requests

from tests.e2e.conftest import (
    HTTP_TIMEOUT,
    Browser,
    LiveServer,
    Person,
    ServerProcess,
    race,
    redeem_code,
    refresh,
)

pytestmark = pytest.mark.e2e

CODE_RACES = 20
REFRESH_RACES = 10


@pytest.fixture(scope="module")
def second_server(live_server: LiveServer) -> Iterator[ServerProcess]:
    with live_server.another_instance() as server:
        yield server


@pytest.fixture
def connections(
    live_server: LiveServer, second_server: ServerProcess
) -> Iterator[list[tuple[str, requests.Session]]]:
    """One kept-alive connection per server, opened in advance, so that the barrier
    releases two requests that are already on their way rather than two TCP handshakes."""
    pairs = []
    for base_url in (live_server.base_url, second_server.base_url):
        http = requests.Session()
        http.get(base_url + "/.well-known/openid-configuration", timeout=HTTP_TIMEOUT)
        pairs.append((base_url, http))
    yield pairs
    for _url, http in pairs:
        http.close()


def _one_winner(responses: list[requests.Response]) -> requests.Response:
    statuses = sorted(r.status_code for r in responses)
    bodies = [r.text[:300] for r in responses]
    assert statuses == [200, 400], f"expected exactly one success: {statuses} {bodies}"
    loser = next(r for r in responses if r.status_code == 400)
    assert loser.json()["error"] == "invalid_grant", loser.text
    return next(r for r in responses if r.status_code == 200)


def test_two_instances_share_one_database(
    live_server: LiveServer,
    second_server: ServerProcess,
    person: Person,
    browser_for: Callable[[Person], Browser],
) -> None:
    # A code issued through one instance is redeemable at the other.
    assert second_server.process.pid != live_server.server.process.pid
    assert second_server.base_url != live_server.base_url
    app = live_server.confidential
    code, verifier = browser_for(person).obtain_code(app)
    response = redeem_code(second_server.base_url, app, code, verifier)
    assert response.status_code == 200, response.text
    again = refresh(live_server.base_url, app, response.json()["refresh_token"])
    assert again.status_code == 200, again.text


def test_each_code_is_redeemed_exactly_once_when_two_instances_race(
    live_server: LiveServer,
    person: Person,
    browser_for: Callable[[Person], Browser],
    connections: list[tuple[str, requests.Session]],
) -> None:
    app = live_server.confidential
    browser = browser_for(person)
    codes = [browser.obtain_code(app) for _ in range(CODE_RACES)]

    winners: list[dict[str, str]] = []
    for index, (code, verifier) in enumerate(codes):
        # Alternate the thread order so neither instance always starts first.
        pairs = connections if index % 2 == 0 else connections[::-1]
        responses = race(
            [partial(redeem_code, url, app, code, verifier, http) for url, http in pairs]
        )
        winners.append(_one_winner(responses).json())

    # The code was presented twice, so what the winner got is revoked: its refresh token
    # and its access token (at both instances).
    for index, token in enumerate(winners):
        base_url = connections[index % 2][0]
        response = refresh(base_url, app, token["refresh_token"])
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_grant"
        userinfo = requests.get(
            f"{connections[(index + 1) % 2][0]}/userinfo",
            headers={"Authorization": f"Bearer {token['access_token']}"},
            timeout=HTTP_TIMEOUT,
        )
        assert userinfo.status_code == 401, userinfo.text


def test_each_refresh_token_is_used_exactly_once_when_two_instances_race(
    live_server: LiveServer,
    person: Person,
    browser_for: Callable[[Person], Browser],
    connections: list[tuple[str, requests.Session]],
) -> None:
    app = live_server.confidential
    browser = browser_for(person)
    refresh_tokens = []
    for _ in range(REFRESH_RACES):
        code, verifier = browser.obtain_code(app)
        response = redeem_code(live_server.base_url, app, code, verifier)
        assert response.status_code == 200, response.text
        refresh_tokens.append(response.json()["refresh_token"])

    for index, refresh_token in enumerate(refresh_tokens):
        pairs = connections if index % 2 == 0 else connections[::-1]
        responses = race([partial(refresh, url, app, refresh_token, http) for url, http in pairs])
        winner = _one_winner(responses).json()
        assert winner["refresh_token"] != refresh_token
        # The loser presented an already-rotated token: a replay, so the family is revoked
        # and the winner's new refresh token is dead too (RFC 9700 §4.14.2).
        again = refresh(live_server.base_url, app, winner["refresh_token"])
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant", again.text
