"""Builds connectors from the upstreams admins configured (a `ConnectorConfig` each).

Each connector module (`providers.oidc`, `providers.eparaksts`) offers two functions:
`build(config, timeout) -> UpstreamProvider` and
`check_report(config, timeout, redirect_uri) -> CheckReport` (`check` -> its problems).
Modules are imported on first use, so one connector's import cost (or absence) never
touches the others. Built connectors are kept per process, keyed by the provider name and a
fingerprint of its whole configuration: a connector caches discovery and JWKS, and an admin
changing the configuration (`idp providers add/remove`) gets a fresh one on the next login.
Nothing here knows about the database (`idp.upstream_providers.services` turns rows into
configs).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import threading
from collections import OrderedDict
from dataclasses import asdict
from types import ModuleType

from providers.base import CheckReport, ConnectorConfig, UpstreamError, UpstreamProvider

# kind -> the module that implements it.
CONNECTORS: dict[str, str] = {
    "oidc": "providers.oidc",
    "eparaksts": "providers.eparaksts",
}
# Enough for every configured upstream, with room for a few stale configurations.
CACHE_SIZE = 32


class UnknownConnector(ValueError):
    """No connector module for this kind."""


def connector_module(kind: str) -> ModuleType:
    try:
        path = CONNECTORS[kind]
    except KeyError:
        raise UnknownConnector(
            f"unknown connector kind {kind!r} (one of: {', '.join(CONNECTORS)})"
        ) from None
    return importlib.import_module(path)


def fingerprint(config: ConnectorConfig) -> str:
    """SHA-256 of the whole configuration (secret included, so a new secret rebuilds too;
    only the digest is kept as a key)."""
    canonical = json.dumps(asdict(config), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class _ConnectorCache:
    """name -> (fingerprint, timeout, connector), least recently used dropped first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._items: OrderedDict[str, tuple[str, float, UpstreamProvider]] = OrderedDict()

    def get(self, config: ConnectorConfig, timeout: float) -> UpstreamProvider:
        key = fingerprint(config)
        with self._lock:
            hit = self._items.get(config.name)
            if hit is not None and hit[0] == key and hit[1] == timeout:
                self._items.move_to_end(config.name)
                return hit[2]
        # Built outside the lock: a connector may do I/O on construction. Two threads
        # building the same config at once both succeed; the later one is kept.
        connector: UpstreamProvider = connector_module(config.kind).build(config, timeout)
        with self._lock:
            self._items[config.name] = (key, timeout, connector)
            self._items.move_to_end(config.name)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return connector

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_cache = _ConnectorCache(CACHE_SIZE)


def build_connector(config: ConnectorConfig, timeout: float) -> UpstreamProvider:
    """The connector for `config`, reused while the configuration stays the same."""
    return _cache.get(config, timeout)


def config_problem(config: ConnectorConfig) -> str | None:
    """What makes `config` unusable, found without any network I/O (the connectors' `build`
    only validates); None when the connector accepts it."""
    try:
        connector_module(config.kind).build(config, 1)
    except (UpstreamError, ValueError) as exc:
        return str(exc) or type(exc).__name__
    return None


def check_connector(
    config: ConnectorConfig, timeout: float, redirect_uri: str | None = None
) -> CheckReport:
    """What is wrong with `config` (the connector fetches what it needs); no problems
    means ok. `redirect_uri` is ours at this upstream, sent with the probing token request."""
    report: CheckReport = connector_module(config.kind).check_report(config, timeout, redirect_uri)
    return report


def clear_cache() -> None:
    """Forget every built connector (tests; an admin command that changes many)."""
    _cache.clear()
