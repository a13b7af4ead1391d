"""The one loopback rule: plain http is allowed only to a loopback host (RFC 8252 §7.3;
tests, the demo and local development), https everywhere else. Kept here, with no import
from `idp`, so that the connectors and the IdP (settings, client registration, upstream
provider configuration) share it."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_loopback(host: str | None) -> bool:
    """`localhost` or a loopback IP address (127.0.0.0/8, ::1)."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_https_url(url: str, what: str) -> str:
    """An absolute https URL (plain http only on loopback) without a fragment, else
    ValueError naming `what` ("redirect URI", "base URL")."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        raise ValueError(f"{what} {url!r} is not a valid URL") from None
    if parts.scheme not in ("https", "http"):
        raise ValueError(f"{what} {url!r} must use https")
    if not host:
        raise ValueError(f"{what} {url!r} has no host")
    if parts.scheme == "http" and not is_loopback(host):
        raise ValueError(f"{what} {url!r} must use https (http only on loopback)")
    if parts.fragment or "#" in url:
        raise ValueError(f"{what} {url!r} must not contain a fragment")
    if any(c.isspace() for c in url) or len(url) > 2048:
        raise ValueError(f"{what} {url!r} is not a valid URL")
    return url
