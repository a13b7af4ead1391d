"""Where a request comes from, behind the load balancers an operator trusts.

Behind a balancer, the connection's peer is the balancer: throttling, the audit's "from
where" and logs would all see one address. The `trusted_proxies` setting lists the
networks of the balancers; only when the peer is in one of them are its X-Forwarded-For,
-Proto and -Host believed, and X-Forwarded-For is walked from the right past every
trusted hop to the first address that is not a proxy of ours: the client. Whatever
anyone else sends in those headers is dropped unread.

Networks rather than a hop count (Werkzeug's ProxyFix): a hop count believes whoever
connects directly, so an instance reachable past the balancer could be lied to.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Iterable
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

FORWARDED_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST")
# A host, optionally with a port, as a Host header carries it (RFC 9110 §7.2).
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?")


def parse_networks(values: list[str]) -> list[Network]:
    """The networks of a `trusted_proxies` setting; ValueError names a bad entry."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address or network") from None
    return networks


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An X-Forwarded-For entry as an address; some balancers add a port ("1.2.3.4:80",
    "[2001:db8::1]:80")."""
    value = value.strip()
    if value.startswith("["):
        value = value[1:].partition("]")[0]
    elif value.count(":") == 1:
        value = value.partition(":")[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


class TrustedProxies:
    """WSGI middleware, outermost (idp.create_app), so every road - the fast paths too -
    sees the client's address and scheme."""

    def __init__(self, app: WSGIApp, networks: list[Network]) -> None:
        self.app = app
        self.networks = networks
        # Parsing addresses costs more than the rest of this layer, and both answers are
        # pure functions of a header for fixed networks: remembered (bounded).
        self._peer_is_trusted = functools.lru_cache(maxsize=4096)(
            lambda peer: self._trusted(_address(peer))
        )
        self._client_and_hops = functools.lru_cache(maxsize=4096)(self._walk)

    def _trusted(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
        return address is not None and any(address in net for net in self.networks)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        forwarded = [environ.pop(name, None) for name in FORWARDED_HEADERS]
        if self.networks and self._peer_is_trusted(environ.get("REMOTE_ADDR", "")):
            self._apply(environ, *forwarded)
        return self.app(environ, start_response)

    def _walk(self, for_: str) -> tuple[str | None, int]:
        """The client in an X-Forwarded-For value, and how many trusted hops (the peer
        included) stand between it and us."""
        hops = 1  # the peer, a trusted proxy
        client = None
        for entry in reversed(for_.split(",")):
            address = _address(entry)
            if address is None:
                break  # a broken chain: keep the last address a proxy of ours reported
            client = str(address)
            if not self._trusted(address):
                break
            hops += 1
        return client, hops

    def _apply(
        self, environ: dict[str, Any], for_: str | None, proto: str | None, host: str | None
    ) -> None:
        for_ = for_ or ""
        # A long header is walked, not remembered: 4,096 short keys stay a few hundred KB.
        client, hops = self._client_and_hops(for_) if len(for_) <= 200 else self._walk(for_)
        if client is not None:
            environ["REMOTE_ADDR"] = client
        # Each proxy appends what it saw; the value of the outermost trusted one counts.
        # A proxy that overwrites leaves one value, which is then that one's.
        scheme = (_hop_value(proto, hops) or "").lower()
        if scheme in ("http", "https"):
            environ["wsgi.url_scheme"] = scheme
        forwarded_host = _hop_value(host, hops)
        if forwarded_host and _HOST.fullmatch(forwarded_host):
            environ["HTTP_HOST"] = forwarded_host


def _hop_value(header: str | None, hops: int) -> str | None:
    values = [v.strip() for v in (header or "").split(",") if v.strip()]
    if not values:
        return None
    return values[-hops] if len(values) >= hops else values[0]
