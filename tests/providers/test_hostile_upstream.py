"""The generic OIDC connector against a hostile upstream (tests/peers/hostile_op.py): every
attack or failure ends in UpstreamError and nothing else, while the honest answer from the
same server passes (so these tests can fail)."""

from __future__ import annotations

import time
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from joserfc.jwk import RSAKey

from providers import oidc
from providers.base import ConnectorConfig, UpstreamCancelled, UpstreamError
from tests.peers.hostile_op import BEHAVIOURS, FAILURES, HostileOP

CALLBACK = "http://localhost/upstream/callback"


def connector(op: HostileOP, timeout: float = 2, **options) -> oidc.OidcProvider:
    return oidc.build(
        ConnectorConfig(
            name="hostile",
            method="bank",
            display_name="Hostile bank",
            base_url=op.issuer,
            client_id=op.client_id,
            client_secret=op.client_secret,
            options={"acr_map": {"urn:bank:high": "high"}, **options},
        ),
        timeout=timeout,
    )


def login(op: HostileOP, upstream: oidc.OidcProvider, behaviour: str = "good"):
    start = upstream.start_login(CALLBACK)
    answer = requests.get(start.redirect_url, allow_redirects=False, timeout=5)
    params = dict(parse_qsl(urlsplit(answer.headers["Location"]).query))
    op.behaviour = behaviour
    return upstream.finish_login(params, start.pending)


def test_the_honest_answer_passes(hostile_op: HostileOP) -> None:
    identity = login(hostile_op, connector(hostile_op))
    assert identity.personal_code == "32123456785"
    assert identity.assurance == "high"
    assert identity.subject == "hostile-sub-1"
    assert identity.amr == ("ext", "bank")


def test_upstream_amr_is_mapped_when_configured(hostile_op: HostileOP) -> None:
    # (The real peer sends amr only when the claims parameter asks for it.)
    identity = login(hostile_op, connector(hostile_op, amr_map={"mobileid": "swk"}))
    assert identity.amr == ("ext", "swk")


@pytest.mark.parametrize("behaviour", sorted(set(BEHAVIOURS) - {"good"}))
def test_a_forged_or_wrong_id_token_is_refused(hostile_op: HostileOP, behaviour: str) -> None:
    with pytest.raises(UpstreamError) as caught:
        login(hostile_op, connector(hostile_op), behaviour)
    assert type(caught.value) is UpstreamError


@pytest.mark.parametrize("behaviour", [f for f in FAILURES if f != "slow"])
def test_a_broken_token_answer_is_refused(hostile_op: HostileOP, behaviour: str) -> None:
    started = time.monotonic()
    with pytest.raises(UpstreamError) as caught:
        login(hostile_op, connector(hostile_op), behaviour)
    assert type(caught.value) is UpstreamError
    assert time.monotonic() - started < 5


def test_a_slow_token_endpoint_gives_up_within_the_timeout(hostile_op: HostileOP) -> None:
    hostile_op.slow_seconds = 3
    started = time.monotonic()
    with pytest.raises(UpstreamError, match="ReadTimeout"):
        login(hostile_op, connector(hostile_op, timeout=1), "slow")
    assert time.monotonic() - started < 2.5


def test_headers_never_choose_the_key(hostile_op: HostileOP) -> None:
    """jku/jwk point at the attacker's keys; the connector never fetches or uses them."""
    upstream = connector(hostile_op)
    for behaviour in ("jku_header", "jwk_header"):
        with pytest.raises(UpstreamError, match="signature"):
            login(hostile_op, upstream, behaviour)
    assert hostile_op.hits["/attacker-jwks"] == 0


def test_alg_none_and_hs256_are_refused_before_any_key_is_tried(hostile_op: HostileOP) -> None:
    upstream = connector(hostile_op)
    for behaviour in ("alg_none", "hs256_public_key"):
        with pytest.raises(UpstreamError, match="not allowed"):
            login(hostile_op, upstream, behaviour)
    assert hostile_op.hits["/jwks"] == 0


def test_an_unknown_kid_refetches_the_jwks_once_and_rate_limited(hostile_op: HostileOP) -> None:
    upstream = connector(hostile_op)
    login(hostile_op, upstream)
    assert hostile_op.hits["/jwks"] == 1
    with pytest.raises(UpstreamError, match="no published key"):
        login(hostile_op, upstream, "unknown_kid")
    assert hostile_op.hits["/jwks"] == 2
    for _ in range(3):
        with pytest.raises(UpstreamError, match="no published key"):
            login(hostile_op, upstream, "unknown_kid")
    assert hostile_op.hits["/jwks"] == 2
    login(hostile_op, upstream)  # the known key still works


def test_a_rotated_key_is_picked_up_by_one_refetch(hostile_op: HostileOP) -> None:
    upstream = connector(hostile_op)
    login(hostile_op, upstream)
    new_key = RSAKey.generate_key(2048, parameters={"kid": "good-key-2", "use": "sig"})
    hostile_op.extra_keys.append(new_key)
    old_key, hostile_op.key = hostile_op.key, new_key
    try:
        identity = login(hostile_op, upstream)
    finally:
        hostile_op.key = old_key
    assert identity.personal_code == "32123456785"
    assert hostile_op.hits["/jwks"] == 2


def test_replayed_state_is_refused(hostile_op: HostileOP) -> None:
    """A callback carrying the state of an earlier login does not finish a newer one."""
    upstream = connector(hostile_op)
    first = upstream.start_login(CALLBACK)
    second = upstream.start_login(CALLBACK)
    answer = requests.get(first.redirect_url, allow_redirects=False, timeout=5)
    params = dict(parse_qsl(urlsplit(answer.headers["Location"]).query))
    with pytest.raises(UpstreamError, match="state"):
        upstream.finish_login(params, second.pending)


def test_callback_without_iss_when_advertised_is_refused(hostile_op: HostileOP) -> None:
    upstream = connector(hostile_op)
    start = upstream.start_login(CALLBACK)
    answer = requests.get(start.redirect_url, allow_redirects=False, timeout=5)
    params = dict(parse_qsl(urlsplit(answer.headers["Location"]).query))
    del params["iss"]
    with pytest.raises(UpstreamError, match="RFC 9207"):
        upstream.finish_login(params, start.pending)


def test_upstream_errors_at_the_callback(hostile_op: HostileOP) -> None:
    upstream = connector(hostile_op)
    start = upstream.start_login(CALLBACK)
    base = {"state": start.state, "iss": hostile_op.issuer}
    with pytest.raises(UpstreamCancelled):
        upstream.finish_login({**base, "error": "access_denied"}, start.pending)
    with pytest.raises(UpstreamError) as caught:
        upstream.finish_login({**base, "error": "server_error"}, start.pending)
    assert type(caught.value) is UpstreamError
    with pytest.raises(UpstreamError, match="code"):
        upstream.finish_login(base, start.pending)
    for pending in ({}, {**start.pending, "provider": "otherbank"}, {"state": start.state}):
        with pytest.raises(UpstreamError):
            upstream.finish_login({**base, "code": "x"}, pending)


@pytest.mark.parametrize(
    "overrides, problem",
    [
        ({"issuer": "https://evil.example"}, "issuer"),
        ({"code_challenge_methods_supported": ["plain"]}, "S256"),
        ({"id_token_signing_alg_values_supported": ["HS256", "none"]}, "algorithm"),
        ({"token_endpoint": "http://evil.example/token"}, "https"),
        ({"jwks_uri": None}, "jwks_uri"),
    ],
)
def test_a_bad_discovery_document_stops_the_login(
    hostile_op: HostileOP, overrides, problem
) -> None:
    hostile_op.discovery_overrides = overrides
    with pytest.raises(UpstreamError, match=problem):
        connector(hostile_op).start_login(CALLBACK)
    assert any(problem in p for p in oidc.check(connector(hostile_op).config, timeout=2))


def test_a_jwks_without_usable_keys_is_reported(hostile_op: HostileOP) -> None:
    hostile_op.discovery_overrides = {"jwks_uri": f"{hostile_op.issuer}/nothing-here"}
    assert any("JWKS" in p for p in oidc.check(connector(hostile_op).config, timeout=2))
    with pytest.raises(UpstreamError, match="JWKS"):
        login(hostile_op, connector(hostile_op))
