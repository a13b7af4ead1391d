"""The trusted-proxy rule: forwarded headers count only from the networks an operator
named, the client is the first untrusted hop from the right, and anyone else's headers
are dropped unread."""

from __future__ import annotations

from typing import Any

import pytest

from idp.proxies import TrustedProxies, parse_networks
from idp.settings import SettingsError, load_settings

BALANCERS = parse_networks(["10.0.0.0/8", "2001:db8:1::/48"])


def seen(networks: list[Any], peer: str, **headers: str) -> dict[str, Any]:
    """The environ the app behind the middleware receives."""
    got: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        got.update(environ)
        return [b""]

    environ = {"REMOTE_ADDR": peer, "wsgi.url_scheme": "http", "HTTP_HOST": "idp.internal:8000"}
    environ.update({f"HTTP_{name.upper()}": value for name, value in headers.items()})
    TrustedProxies(app, networks)(environ, lambda *a: None)
    return got


SPOOF = {
    "x_forwarded_for": "198.51.100.66",
    "x_forwarded_proto": "https",
    "x_forwarded_host": "evil.example",
}


@pytest.mark.parametrize("networks", [[], BALANCERS], ids=["no proxies", "peer not a proxy"])
def test_forwarded_headers_of_anyone_else_change_nothing(networks):
    environ = seen(networks, "203.0.113.9", **SPOOF)
    assert environ["REMOTE_ADDR"] == "203.0.113.9"
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["HTTP_HOST"] == "idp.internal:8000"
    # Dropped, so nothing further in can read them by mistake.
    assert not any(name.startswith("HTTP_X_FORWARDED") for name in environ)


def test_one_trusted_balancer_gives_the_client_scheme_and_host():
    environ = seen(
        BALANCERS,
        "10.1.2.3",
        x_forwarded_for="203.0.113.9",
        x_forwarded_proto="https",
        x_forwarded_host="login.example-gas.lv",
    )
    assert environ["REMOTE_ADDR"] == "203.0.113.9"
    assert environ["wsgi.url_scheme"] == "https"
    assert environ["HTTP_HOST"] == "login.example-gas.lv"
    assert not any(name.startswith("HTTP_X_FORWARDED") for name in environ)


def test_the_client_is_the_first_untrusted_hop_from_the_right():
    # The client sent "198.51.100.66" itself; the edge balancer appended what it saw
    # (203.0.113.9), an inner balancer appended the edge (10.0.0.2).
    environ = seen(
        BALANCERS,
        "10.0.0.1",
        x_forwarded_for="198.51.100.66, 203.0.113.9, 10.0.0.2",
        x_forwarded_proto="https, http",
    )
    assert environ["REMOTE_ADDR"] == "203.0.113.9"
    assert environ["wsgi.url_scheme"] == "https"  # what the outermost trusted hop saw


@pytest.mark.parametrize(
    ("entry", "client"),
    [
        ("203.0.113.9:51234", "203.0.113.9"),
        ("[2001:db8:2::7]:443", "2001:db8:2::7"),
        ("2001:db8:2::7", "2001:db8:2::7"),
    ],
)
def test_addresses_with_ports_are_read(entry, client):
    assert seen(BALANCERS, "10.0.0.1", x_forwarded_for=entry)["REMOTE_ADDR"] == client


def test_an_ipv6_balancer_is_trusted():
    assert (
        seen(BALANCERS, "2001:db8:1::5", x_forwarded_for="203.0.113.9")["REMOTE_ADDR"]
        == "203.0.113.9"
    )


@pytest.mark.parametrize(
    "headers",
    [
        {"x_forwarded_for": "not-an-address"},
        {"x_forwarded_for": ""},
        {"x_forwarded_proto": "gopher"},
        {"x_forwarded_host": "a b/c"},
    ],
)
def test_garbage_from_a_balancer_is_not_believed(headers):
    environ = seen(BALANCERS, "10.0.0.1", **headers)
    assert environ["REMOTE_ADDR"] == "10.0.0.1"
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["HTTP_HOST"] == "idp.internal:8000"


def test_a_broken_chain_stops_at_the_last_address_a_balancer_reported():
    environ = seen(BALANCERS, "10.0.0.1", x_forwarded_for="garbage, 10.0.0.7")
    assert environ["REMOTE_ADDR"] == "10.0.0.7"


def test_the_setting_takes_networks_and_refuses_anything_else():
    environ = {"IDP_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.10,2001:db8::/32"}
    assert load_settings(environ=environ).trusted_proxies == [
        "10.0.0.0/8",
        "192.0.2.10",
        "2001:db8::/32",
    ]
    assert load_settings(environ={}).trusted_proxies == []
    with pytest.raises(SettingsError, match="trusted_proxies.*'balancer'"):
        load_settings(environ={"IDP_TRUSTED_PROXIES": "10.0.0.0/8,balancer"})


def test_a_long_chain_is_walked_like_a_short_one():
    inner = ", ".join(f"10.0.{i // 250}.{i % 250 + 1}" for i in range(40))
    chain = f"198.51.100.66, 203.0.113.9, {inner}"
    assert len(chain) > 200  # past what is remembered
    assert seen(BALANCERS, "10.0.0.1", x_forwarded_for=chain)["REMOTE_ADDR"] == "203.0.113.9"
