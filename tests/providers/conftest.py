"""Peer fixtures for the upstream connectors (and for anyone testing the login pages end to
end: `pytest_plugins = ["tests.providers.conftest"]`).

- `oidc_peer` (session): a running npm `oidc-provider` (tests/peers/oidc-peer.mjs) as an
  `OidcPeer`: `.issuer`, `.client_id`, `.client_secret`, `.post_client_id`,
  `.redirect_uri`, `.accounts`, `.config(name, **options)` -> ConnectorConfig, and
  `.login(authorization_url, account="alice", cancel=False)` -> PeerCallback(url, params,
  method). Fails (never skips) when node or npm is missing.
- `hostile_op` (function): our own misbehaving OP (tests/peers/hostile_op.py), reset per test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.peers.hostile_op import HostileOP
from tests.peers.oidc_peer import OidcPeer, PeerError, start_oidc_peer


@pytest.fixture(scope="session")
def oidc_peer() -> Iterator[OidcPeer]:
    try:
        with start_oidc_peer() as peer:
            yield peer
    except PeerError as exc:
        pytest.fail(f"the upstream OIDC peer could not run: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def _hostile_server() -> Iterator[HostileOP]:
    with HostileOP.running() as server:
        yield server


@pytest.fixture
def hostile_op(_hostile_server: HostileOP) -> HostileOP:
    _hostile_server.reset()
    return _hostile_server
