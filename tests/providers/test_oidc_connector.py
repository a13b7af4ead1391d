"""The generic OIDC connector against a real OpenID provider nobody here wrote (npm
oidc-provider, started by the `oidc_peer` fixture): the browser steps go over HTTP to the
peer, the code is redeemed at its token endpoint, the ID token checked with its JWKS."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

import pytest

from providers import oidc
from providers.base import ConnectorConfig, UpstreamCancelled, UpstreamError
from tests.peers.oidc_peer import OidcPeer

BANK_OPTIONS = {
    "scopes": ["openid", "profile"],
    "acr_map": {"urn:bank:high": "high", "urn:bank:substantial": "substantial"},
}


def bank(peer: OidcPeer, **options) -> oidc.OidcProvider:
    return oidc.build(peer.config("testbank", **{**BANK_OPTIONS, **options}), timeout=5)


def test_login_at_the_peer_gives_a_verified_identity(oidc_peer: OidcPeer) -> None:
    upstream = bank(oidc_peer)
    start = upstream.start_login(oidc_peer.redirect_uri)
    query = dict(parse_qsl(urlsplit(start.redirect_url).query))
    assert query["code_challenge_method"] == "S256"
    assert query["state"] == start.state and "nonce" in query
    assert "code_verifier" not in start.redirect_url

    callback = oidc_peer.login(start.redirect_url, "alice")
    assert callback.url == oidc_peer.redirect_uri and callback.method == "GET"
    assert callback.params["iss"] == oidc_peer.issuer
    identity = upstream.finish_login(callback.params, start.pending)

    assert identity.provider == "testbank" and identity.method == "bank"
    assert (identity.country, identity.personal_code) == ("LV", "32123456785")
    assert (identity.given_name, identity.family_name) == ("Alise", "Bērziņa")
    assert identity.upstream_acr == "urn:bank:high" and identity.assurance == "high"
    assert identity.amr == ("ext", "bank")
    assert identity.subject == "alice"


def test_pending_survives_json(oidc_peer: OidcPeer) -> None:
    """The caller stores `pending` as JSON (encrypted, server-side) between the two halves."""
    import json

    upstream = bank(oidc_peer)
    start = upstream.start_login(oidc_peer.redirect_uri)
    pending = json.loads(json.dumps(start.pending))
    callback = oidc_peer.login(start.redirect_url, "janis")
    identity = oidc.build(upstream.config, timeout=5).finish_login(callback.params, pending)
    assert identity.personal_code == "12128211210"
    assert identity.assurance == "substantial"


def test_form_post_and_client_secret_post(oidc_peer: OidcPeer) -> None:
    upstream = oidc.build(
        oidc_peer.config(
            "testbank",
            client_id=oidc_peer.post_client_id,
            response_mode="form_post",
            token_endpoint_auth="client_secret_post",
            **BANK_OPTIONS,
        ),
        timeout=5,
    )
    start = upstream.start_login(oidc_peer.redirect_uri)
    callback = oidc_peer.login(start.redirect_url, "alice")
    assert callback.method == "POST" and callback.url == oidc_peer.redirect_uri
    identity = upstream.finish_login(callback.params, start.pending)
    assert identity.personal_code == "32123456785"


def test_etsi_serial_number_and_mapped_amr(oidc_peer: OidcPeer) -> None:
    upstream = oidc.build(
        oidc_peer.config(
            "esign",
            method="esignature",
            personal_code_claim="serial_number",
            scopes=["openid", "profile"],
            amr_map={"pwd": "swk"},
        ),
        timeout=5,
    )
    start = upstream.start_login(oidc_peer.redirect_uri)
    identity = upstream.finish_login(
        oidc_peer.login(start.redirect_url, "etsi").params, start.pending
    )
    assert (identity.country, identity.personal_code) == ("LV", "12128211210")
    # No acr_map: the method's default assurance (docs/domain.md: eSignature is high); the
    # peer sends no amr for this account, so the method's default amr.
    assert identity.assurance == "high" and identity.amr == ("ext", "sc")


def test_userinfo_supplies_claims_missing_from_the_id_token(oidc_peer: OidcPeer) -> None:
    # The peer puts identity claims in the ID token; asking for a claim it only has in
    # userinfo is not possible with it, so check that userinfo is fetched and agrees.
    upstream = bank(oidc_peer, use_userinfo=True)
    start = upstream.start_login(oidc_peer.redirect_uri)
    identity = upstream.finish_login(
        oidc_peer.login(start.redirect_url, "alice").params, start.pending
    )
    assert identity.personal_code == "32123456785"


def test_a_code_failing_the_checksum_is_accepted_and_logged(
    oidc_peer: OidcPeer, caplog: pytest.LogCaptureFixture
) -> None:
    upstream = bank(oidc_peer)
    start = upstream.start_login(oidc_peer.redirect_uri)
    with caplog.at_level(logging.WARNING, logger="providers.oidc"):
        identity = upstream.finish_login(
            oidc_peer.login(start.redirect_url, "badsum").params, start.pending
        )
    assert identity.personal_code == "32123456786"
    assert "checksum" in caplog.text and "32123456786" not in caplog.text


def test_a_company_registration_number_is_not_taken_for_a_person(oidc_peer: OidcPeer) -> None:
    """The one personal-code rule (providers/personal_codes.py): a checksum failure is
    logged, but a company's number is no person's code."""
    upstream = bank(oidc_peer)
    start = upstream.start_login(oidc_peer.redirect_uri)
    with pytest.raises(UpstreamError, match="not a personal code"):
        upstream.finish_login(oidc_peer.login(start.redirect_url, "company").params, start.pending)


def test_no_personal_code_is_refused(oidc_peer: OidcPeer) -> None:
    upstream = bank(oidc_peer)
    start = upstream.start_login(oidc_peer.redirect_uri)
    with pytest.raises(UpstreamError, match="personal code"):
        upstream.finish_login(oidc_peer.login(start.redirect_url, "nocode").params, start.pending)


def test_cancel_at_the_peer_is_upstream_cancelled(oidc_peer: OidcPeer) -> None:
    upstream = bank(oidc_peer)
    start = upstream.start_login(oidc_peer.redirect_uri)
    callback = oidc_peer.login(start.redirect_url, cancel=True)
    assert callback.params["error"] == "access_denied"
    with pytest.raises(UpstreamCancelled):
        upstream.finish_login(callback.params, start.pending)


def test_wrong_state_is_refused(oidc_peer: OidcPeer) -> None:
    upstream = bank(oidc_peer)
    start = upstream.start_login(oidc_peer.redirect_uri)
    params = oidc_peer.login(start.redirect_url).params
    for state in ("forged", "", start.state + "x"):
        with pytest.raises(UpstreamError, match="state"):
            upstream.finish_login({**params, "state": state}, start.pending)
    without = {k: v for k, v in params.items() if k != "state"}
    with pytest.raises(UpstreamError, match="state"):
        upstream.finish_login(without, start.pending)
    # The code was never redeemed by the refused attempts: the real callback still works.
    assert upstream.finish_login(params, start.pending).personal_code == "32123456785"


def test_mix_up_another_issuer_in_the_callback_is_refused(oidc_peer: OidcPeer) -> None:
    upstream = bank(oidc_peer)
    start = upstream.start_login(oidc_peer.redirect_uri)
    params = oidc_peer.login(start.redirect_url).params
    with pytest.raises(UpstreamError, match="mix-up"):
        upstream.finish_login({**params, "iss": "https://other-bank.example"}, start.pending)


def test_missing_iss_is_refused_when_the_peer_advertises_it(oidc_peer: OidcPeer) -> None:
    upstream = bank(oidc_peer)
    assert upstream.discovery()["authorization_response_iss_parameter_supported"] is True
    start = upstream.start_login(oidc_peer.redirect_uri)
    params = oidc_peer.login(start.redirect_url).params
    with pytest.raises(UpstreamError, match="RFC 9207"):
        upstream.finish_login({k: v for k, v in params.items() if k != "iss"}, start.pending)


def test_a_pending_login_of_another_provider_is_refused(oidc_peer: OidcPeer) -> None:
    upstream = bank(oidc_peer)
    other = oidc.build(oidc_peer.config("otherbank", **BANK_OPTIONS), timeout=5)
    start = other.start_login(oidc_peer.redirect_uri)
    params = oidc_peer.login(start.redirect_url).params
    with pytest.raises(UpstreamError, match="another upstream"):
        upstream.finish_login(params, start.pending)


def test_replaying_the_callback_fails_at_the_peer(oidc_peer: OidcPeer) -> None:
    upstream = bank(oidc_peer)
    start = upstream.start_login(oidc_peer.redirect_uri)
    params = oidc_peer.login(start.redirect_url).params
    upstream.finish_login(params, start.pending)
    with pytest.raises(UpstreamError, match="HTTP 400") as caught:
        upstream.finish_login(params, start.pending)
    assert type(caught.value) is UpstreamError


def test_a_wrong_client_secret_is_an_upstream_error(oidc_peer: OidcPeer) -> None:
    config = oidc_peer.config("testbank", **BANK_OPTIONS)
    upstream = oidc.build(
        ConnectorConfig(**{**config.__dict__, "client_secret": "wrong"}), timeout=5
    )
    start = upstream.start_login(oidc_peer.redirect_uri)
    with pytest.raises(UpstreamError, match="HTTP 401"):
        upstream.finish_login(oidc_peer.login(start.redirect_url).params, start.pending)


def test_concurrent_logins_share_one_connector(oidc_peer: OidcPeer) -> None:
    upstream = bank(oidc_peer)
    results: list[str] = []
    errors: list[BaseException] = []

    def one(account: str) -> None:
        try:
            start = upstream.start_login(oidc_peer.redirect_uri)
            params = oidc_peer.login(start.redirect_url, account).params
            results.append(upstream.finish_login(params, start.pending).personal_code)
        except BaseException as exc:  # noqa: BLE001 (reported by the assertion below)
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(a,)) for a in ("alice", "janis") * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert sorted(results) == ["12128211210"] * 4 + ["32123456785"] * 4


def test_check_a_good_configuration(oidc_peer: OidcPeer) -> None:
    assert oidc.check(oidc_peer.config("testbank", **BANK_OPTIONS), timeout=5) == []


def test_check_reports_what_is_wrong(oidc_peer: OidcPeer) -> None:
    # The peer signs with RS256 only.
    problems = oidc.check(oidc_peer.config("testbank", allowed_algs=["ES256"]), timeout=5)
    assert any("algorithm" in p for p in problems)
    wrong_issuer = ConnectorConfig(
        **{**oidc_peer.config().__dict__, "base_url": oidc_peer.issuer + "/"}
    )
    problems = oidc.check(wrong_issuer, timeout=5)
    assert any("issuer" in p for p in problems)
    assert oidc.check(oidc_peer.config(leeway="soon"), timeout=5) == [
        "option 'leeway' must be a number from 0 to 300, got 'soon'"
    ]
    unreachable = ConnectorConfig(
        **{**oidc_peer.config().__dict__, "base_url": f"http://127.0.0.1:{closed_port()}"}
    )
    assert any("ConnectionError" in p for p in oidc.check(unreachable, timeout=2))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"allowed_algs": ["none"]}, "never none or HS"),
        ({"allowed_algs": ["RS256", "HS256"]}, "HS256"),
        ({"acr_map": {"x": "very high"}}, "acr_map"),
        ({"scope": ["openid"]}, "unknown option"),
        ({"response_mode": "fragment"}, "response_mode"),
        ({"use_userinfo": "yes"}, "use_userinfo"),
    ],
)
def test_options_are_validated(oidc_peer: OidcPeer, options, message) -> None:
    with pytest.raises(oidc.InvalidOptions, match=message):
        oidc.build(oidc_peer.config(**options))


def test_option_defaults(oidc_peer: OidcPeer) -> None:
    options = oidc.build(oidc_peer.config()).options
    assert options.scopes == ("openid",)
    assert options.allowed_algs == ("RS256", "ES256", "PS256")
    assert options.default_assurance == "substantial" and options.amr == ("ext", "bank")
    assert options.leeway == 60 and options.use_userinfo is False
    assert oidc.build(oidc_peer.config(scopes="profile")).options.scopes == ("openid", "profile")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    stop = threading.Event()
    accepted: list[socket.socket] = []

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_an_upstream_that_never_answers_times_out(silent_server: str) -> None:
    config = ConnectorConfig(
        name="silent",
        method="bank",
        display_name="Silent",
        base_url=silent_server,
        client_id="c",
        client_secret="s",
    )
    started = time.monotonic()
    with pytest.raises(UpstreamError, match="Timeout"):
        oidc.build(config, timeout=1).start_login("http://localhost/upstream/callback")
    assert time.monotonic() - started < 2.5
    started = time.monotonic()
    assert any("Timeout" in p for p in oidc.check(config, timeout=1))
    assert time.monotonic() - started < 2.5


def test_acr_values_are_sent(oidc_peer: OidcPeer) -> None:
    upstream = bank(oidc_peer, acr_values=["urn:bank:high"])
    start = upstream.start_login(oidc_peer.redirect_uri)
    assert dict(parse_qsl(urlsplit(start.redirect_url).query))["acr_values"] == "urn:bank:high"
    identity = upstream.finish_login(
        oidc_peer.login(start.redirect_url, "alice").params, start.pending
    )
    assert identity.upstream_acr == "urn:bank:high"
