"""The eParaksts connector against the DEMO eParaksts simulator over real HTTP: a login
from the authorize page to a VerifiedIdentity, and every way the upstream can fail —
cancelled, forged or replayed answers, refused codes and secrets, garbage, foreign or
malformed identities, a service that is down or slow. No mocks: the simulator and the
hostile servers below are real servers on loopback ports.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import pytest
import requests
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import make_server

from idp.demo.eparaksts_sim import (
    DEFAULT_PERSONS,
    SimClient,
    TestPerson,
    create_simulator,
    serial_number,
)
from providers import eparaksts
from providers.base import ConnectorConfig, UpstreamCancelled, UpstreamError
from providers.eparaksts import FLOW_MOBILEID, FLOW_SMARTCARD, USERS_ME_PATH, build, check

CLIENT_ID = "gas-portal-idp"
# Characters that RFC 6749 §2.3.1 form-encodes before the Basic header.
SECRET = "s3cret:with/odd&chars+"
CALLBACK = "http://127.0.0.1:5000/login/upstream/eparaksts/callback"
JANIS = serial_number("32123456785")
ANNA = serial_number("010190-10001")


# -- servers ------------------------------------------------------------------------------


@contextmanager
def serve(app: Callable[..., Any]) -> Iterator[str]:
    """`app` on a free loopback port, served by threads; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


def simulator(**kwargs: Any) -> Any:
    return create_simulator({CLIENT_ID: SimClient(SECRET, (CALLBACK,))}, **kwargs)


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    with serve(simulator()) as url:
        yield url


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL where nothing listens: connection refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A server that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def trickle_url() -> Iterator[str]:
    """A server that answers 200 and then one byte every 0.2 s, forever."""
    stop = threading.Event()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)

    def trickle(conn: socket.socket) -> None:
        with conn:
            try:
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 100000\r\n\r\n"
                )
                while not stop.wait(0.2):
                    conn.sendall(b" ")
            except OSError:
                pass

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=trickle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def replace_users_me(
    app: Callable[..., Any], body: bytes, status: str = "200 OK"
) -> Callable[..., Any]:
    """The simulator, except that users/me answers `body`: a hostile upstream."""

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ["PATH_INFO"] == USERS_ME_PATH:
            start_response(
                status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            )
            return [body]
        return app(environ, start_response)

    return wsgi


# -- the connector and a browser ----------------------------------------------------------


def connector(
    base_url: str, *, secret: str | None = SECRET, timeout: float = 5, **options: Any
) -> eparaksts.EparakstsProvider:
    return build(config(base_url, secret=secret, **options), timeout=timeout)


def config(
    base_url: str, *, secret: str | None = SECRET, method: str = "esignature", **options: Any
) -> ConnectorConfig:
    return ConnectorConfig(
        name="eparaksts",
        method=method,  # type: ignore[arg-type]
        display_name="eParaksts",
        base_url=base_url,
        client_id=CLIENT_ID,
        client_secret=secret,
        options=options,
    )


def browse(
    provider: eparaksts.EparakstsProvider, *, person: str = JANIS, action: str = "login"
) -> tuple[dict[str, str], dict[str, Any]]:
    """What a person's browser does: follow the authorize URL, pick a person on the DEMO
    page, press Log in (or Cancel), and land on the callback. Returns the callback's query
    and what start_login kept."""
    start = provider.start_login(CALLBACK)
    page = requests.get(start.redirect_url, allow_redirects=False, timeout=5)
    assert page.status_code == 200, page.text
    assert "DEMO eParaksts simulator — not the real service" in page.text
    form = re.search(r'<form method="post" action="([^"]+)">', page.text)
    request_id = re.search(r'name="request_id" value="([^"]+)"', page.text)
    assert form and request_id
    answer = requests.post(
        urljoin(start.redirect_url, form.group(1)),
        data={"request_id": request_id.group(1), "person": person, "action": action},
        allow_redirects=False,
        timeout=5,
    )
    assert answer.status_code == 302, answer.text
    location = answer.headers["Location"]
    assert location.startswith(CALLBACK + "?")
    return dict(parse_qsl(urlsplit(location).query)), start.pending


# -- a login ------------------------------------------------------------------------------


def test_login_with_eparaksts_mobile_gives_the_code_from_serial_number(sim_url: str) -> None:
    provider = connector(sim_url)
    params, pending = browse(provider, person=JANIS)

    identity = provider.finish_login(params, pending)

    assert identity.personal_code == "32123456785"
    assert (identity.given_name, identity.family_name) == ("Jānis", "Bērziņš")
    assert identity.provider == "eparaksts"
    assert identity.method == "esignature"
    assert identity.country == "LV"
    assert identity.assurance == "high"
    assert identity.amr == ("ext", "swk")
    assert identity.upstream_acr == FLOW_MOBILEID
    assert identity.subject and identity.subject not in identity.personal_code


def test_the_authorize_request_follows_the_published_protocol(sim_url: str) -> None:
    start = connector(sim_url).start_login(CALLBACK)
    url = urlsplit(start.redirect_url)
    query = dict(parse_qsl(url.query))

    assert url.path == "/trustedx-authserver/oauth/lvrtc-eipsign-as"
    assert query["response_type"] == "code"
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == CALLBACK
    assert query["scope"] == "urn:lvrtc:fpeil:aa"
    assert query["acr_values"] == FLOW_MOBILEID
    assert query["state"] == start.state == start.pending["state"]
    assert query["code_challenge_method"] == "S256"
    assert "code_verifier" in start.pending and start.pending["code_verifier"] not in (
        start.redirect_url
    )


def test_mobile_and_card_give_different_subs_but_the_same_personal_code(sim_url: str) -> None:
    mobile = connector(sim_url)
    card = connector(sim_url, acr_values=FLOW_SMARTCARD)

    by_mobile = mobile.finish_login(*browse(mobile, person=ANNA))
    by_card = card.finish_login(*browse(card, person=ANNA))

    assert by_mobile.subject != by_card.subject
    assert by_mobile.personal_code == by_card.personal_code == "01019010001"
    assert by_mobile.amr == ("ext", "swk")
    assert by_card.amr == ("ext", "sc")
    assert by_card.upstream_acr == FLOW_SMARTCARD
    # ...and the same method gives the same sub again.
    assert mobile.finish_login(*browse(mobile, person=ANNA)).subject == by_mobile.subject


def test_the_amr_of_a_flow_is_configurable(sim_url: str) -> None:
    provider = connector(sim_url, amr={FLOW_MOBILEID: ["ext", "swk", "mfa"]})

    assert provider.finish_login(*browse(provider)).amr == ("ext", "swk", "mfa")


def test_pending_survives_a_json_round_trip(sim_url: str) -> None:
    provider = connector(sim_url)
    params, pending = browse(provider)

    assert provider.finish_login(params, json.loads(json.dumps(pending))).personal_code


# -- cancelled, forged, replayed ----------------------------------------------------------


def test_cancel_at_eparaksts_is_upstream_cancelled(sim_url: str) -> None:
    provider = connector(sim_url)
    params, pending = browse(provider, action="cancel")

    assert params["error"] == "access_denied"
    with pytest.raises(UpstreamCancelled):
        provider.finish_login(params, pending)


def test_a_cancel_with_a_foreign_state_is_an_error_not_a_cancel(sim_url: str) -> None:
    provider = connector(sim_url)
    _params, pending = browse(provider, action="cancel")

    with pytest.raises(UpstreamError) as caught:
        provider.finish_login({"error": "access_denied", "state": "forged"}, pending)
    assert not isinstance(caught.value, UpstreamCancelled)


@pytest.mark.parametrize("state", ["forged", "", None])
def test_a_wrong_or_missing_state_is_refused(sim_url: str, state: str | None) -> None:
    provider = connector(sim_url)
    params, pending = browse(provider)
    params.pop("state")
    if state is not None:
        params["state"] = state

    with pytest.raises(UpstreamError, match="state"):
        provider.finish_login(params, pending)


def test_an_answer_replayed_into_another_login_is_refused(sim_url: str) -> None:
    provider = connector(sim_url)
    old_params, _old_pending = browse(provider)
    _new_params, new_pending = browse(provider)

    with pytest.raises(UpstreamError, match="state"):
        provider.finish_login(old_params, new_pending)


def test_a_pending_login_of_another_provider_is_refused(sim_url: str) -> None:
    provider = connector(sim_url)
    params, pending = browse(provider)

    with pytest.raises(UpstreamError, match="another provider"):
        provider.finish_login(params, {**pending, "provider": "some-bank"})


def test_a_reused_code_is_refused_by_eparaksts(sim_url: str) -> None:
    provider = connector(sim_url)
    params, pending = browse(provider)
    provider.finish_login(params, pending)

    with pytest.raises(UpstreamError, match="token endpoint answered 400 'invalid_grant'"):
        provider.finish_login(params, pending)


def test_an_expired_code_is_refused() -> None:
    with serve(simulator(code_ttl=0)) as url:
        provider = connector(url)
        with pytest.raises(UpstreamError, match="invalid_grant"):
            provider.finish_login(*browse(provider))


def test_a_wrong_client_secret_is_refused(sim_url: str) -> None:
    provider = connector(sim_url, secret="not-the-secret")

    with pytest.raises(UpstreamError, match="401 'invalid_client'"):
        provider.finish_login(*browse(provider))


def test_pkce_binds_the_code_to_the_login() -> None:
    with serve(simulator(require_pkce=True)) as url:
        provider = connector(url)
        assert provider.finish_login(*browse(provider)).personal_code == "32123456785"

        params, pending = browse(provider)
        with pytest.raises(UpstreamError, match="invalid_grant"):
            provider.finish_login(params, {**pending, "code_verifier": "x" * 64})


def test_an_error_answer_from_the_authorize_page_is_an_upstream_error() -> None:
    with serve(simulator(require_pkce=True)) as url:
        provider = connector(url, pkce=False)
        start = provider.start_login(CALLBACK)
        answer = requests.get(start.redirect_url, allow_redirects=False, timeout=5)
        params = dict(parse_qsl(urlsplit(answer.headers["Location"]).query))
        assert params["error"] == "invalid_request"

        with pytest.raises(UpstreamError, match="invalid_request") as caught:
            provider.finish_login(params, start.pending)
        assert not isinstance(caught.value, UpstreamCancelled)


# -- what users/me may not say ------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>Service unavailable</html>", "not JSON"),
        (b"\xff\xfe\x00garbage", "not JSON"),
        (b'["sub", "serial_number"]', "not a JSON object"),
        (b'{"sub": "abc", "given_name": "J", "family_name": "B"}', "no serial_number"),
        (
            b'{"serial_number": "PNOLV-321234-56785", "given_name": "J", "family_name": "B"}',
            "no usable sub",
        ),
        (
            b'{"sub": "a", "serial_number": "PNOLV-321234-56785", "given_name": "", '
            b'"family_name": "B"}',
            "no usable given_name",
        ),
        (b'{"sub": "a", "serial_number": 32123456785}', "no serial_number"),
        (b'{"sub": "' + b"a" * 70_000 + b'"}', "too large"),
    ],
)
def test_garbage_from_users_me_is_an_upstream_error(body: bytes, reason: str) -> None:
    with serve(replace_users_me(simulator(), body)) as url:
        provider = connector(url)
        with pytest.raises(UpstreamError, match=reason):
            provider.finish_login(*browse(provider))


def test_users_me_refusing_the_token_is_an_upstream_error() -> None:
    with serve(
        replace_users_me(simulator(), b'{"error":"invalid_token"}', "401 UNAUTHORIZED")
    ) as url:
        provider = connector(url)
        with pytest.raises(UpstreamError, match="users/me answered 401"):
            provider.finish_login(*browse(provider))


@pytest.mark.parametrize(
    ("serial", "reason"),
    [
        ("PNOEE-38001085718", "country EE refused"),
        ("PNOLT-38703181745", "country LT refused"),
        ("PNOLV-12345", "not of the form"),
        ("PNOLV-321234-5678X", "not of the form"),
        ("32123456785", "not of the form"),
        ("IDCLV-321234-56785", "not of the form"),
        ("PNOLV-321234-56785 ", "not of the form"),
    ],
)
def test_a_foreign_or_malformed_serial_number_is_refused(serial: str, reason: str) -> None:
    """Only Latvian identities: people are linked on Latvian personal codes."""
    odd = TestPerson("Odd", "Person", serial)
    with serve(simulator(persons=(*DEFAULT_PERSONS, odd))) as url:
        provider = connector(url)
        with pytest.raises(UpstreamError, match=reason):
            provider.finish_login(*browse(provider, person=serial))


def test_a_company_registration_number_is_not_taken_for_a_person() -> None:
    """A person's eSignature carries a personal code; 40003032949 is a valid registration
    number (stdnum.lv.pvn accepts it), and no person may be linked on it."""
    company = TestPerson("Gāzes", "Līnija", "PNOLV-400030-32949")
    with serve(simulator(persons=(company,))) as url:
        provider = connector(url)
        with pytest.raises(UpstreamError, match="not a personal code"):
            provider.finish_login(*browse(provider, person=company.serial_number))


def test_a_serial_number_without_the_inner_hyphen_is_the_same_code() -> None:
    plain = TestPerson("Jānis", "Bērziņš", "PNOLV-32123456785")
    with serve(simulator(persons=(plain,))) as url:
        provider = connector(url)
        identity = provider.finish_login(*browse(provider, person=plain.serial_number))
    assert identity.personal_code == "32123456785"


def test_a_code_failing_the_checksum_is_kept_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    """docs/domain.md: a code asserted by eSignature is verified; log, don't refuse."""
    odd = TestPerson("Odd", "Checksum", "PNOLV-321234-56784")
    with serve(simulator(persons=(odd,))) as url:
        provider = connector(url)
        with caplog.at_level(logging.WARNING, logger="providers.eparaksts"):
            identity = provider.finish_login(*browse(provider, person=odd.serial_number))
    assert identity.personal_code == "32123456784"
    assert "fails the checksum" in caplog.text
    assert "32123456784" not in caplog.text


# -- down and slow ------------------------------------------------------------------------


def started_login(provider: eparaksts.EparakstsProvider) -> tuple[dict[str, str], dict]:
    """A callback that passes the state check, for a provider whose service is broken."""
    start = provider.start_login(CALLBACK)
    return {"code": "some-code", "state": start.state}, start.pending


def test_the_token_endpoint_down_is_an_upstream_error(closed_port_url: str) -> None:
    provider = connector(closed_port_url, timeout=1)
    began = time.monotonic()

    with pytest.raises(UpstreamError, match="unreachable"):
        provider.finish_login(*started_login(provider))
    assert time.monotonic() - began < 2


def test_a_token_endpoint_that_never_answers_times_out(silent_url: str) -> None:
    provider = connector(silent_url, timeout=1)
    began = time.monotonic()

    with pytest.raises(UpstreamError, match="timed out"):
        provider.finish_login(*started_login(provider))
    assert time.monotonic() - began < 3


def test_a_token_endpoint_that_trickles_is_cut_off(trickle_url: str) -> None:
    provider = connector(trickle_url, timeout=1)
    began = time.monotonic()

    with pytest.raises(UpstreamError, match="too slow"):
        provider.finish_login(*started_login(provider))
    assert time.monotonic() - began < 4


# -- configuration and check() ------------------------------------------------------------


def test_check_passes_against_the_simulator(sim_url: str) -> None:
    assert check(config(sim_url), timeout=2) == []


def test_check_reports_a_wrong_secret(sim_url: str) -> None:
    problems = check(config(sim_url, secret="wrong"), timeout=2)

    assert len(problems) == 1
    assert problems[0].startswith("client authentication refused: check the client id and secret")


def test_check_reports_a_service_that_is_down(closed_port_url: str) -> None:
    problems = check(config(closed_port_url), timeout=1)

    assert len(problems) == 2
    assert "token endpoint" in problems[0] and "unreachable" in problems[0]
    assert "users/me" in problems[1]


def test_check_reports_something_that_is_not_eparaksts() -> None:
    """A server that fails every request and lets anyone read users/me is no eParaksts."""

    def broken(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("500 INTERNAL SERVER ERROR", [("Content-Type", "text/plain")])
        return [b"oops"]

    with serve(replace_users_me(broken, b"{}")) as url:
        problems = check(config(url), timeout=2)

    assert len(problems) == 2
    assert "answered 500" in problems[0]
    assert "users/me" in problems[1] and "answered 200" in problems[1]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"secret": None}, "client_secret is missing"),
        ({"method": "bank"}, "method must be 'esignature'"),
        (
            {"acr_values": "urn:eparaksts:authentication:flow:telepathy"},
            "acr_values must be one eParaksts flow",
        ),
        ({"scope": ""}, "option scope"),
        ({"pkce": "yes"}, "option pkce must be true or false"),
        ({"amr": {FLOW_MOBILEID: []}}, "non-empty list"),
        ({"amr": {FLOW_MOBILEID: ["EXT"]}}, "non-empty list"),
        ({"amr": {"mobileid": ["ext"]}}, "is not an eParaksts flow"),
        ({"amr": ["ext", "swk"]}, "option amr must map"),
        ({"acr": FLOW_MOBILEID}, "unknown eParaksts option(s) acr"),
    ],
)
def test_a_bad_configuration_is_explained(
    sim_url: str, changes: dict[str, Any], message: str
) -> None:
    problems = check(config(sim_url, **changes), timeout=2)

    assert len(problems) == 1
    assert message in problems[0]
    with pytest.raises(eparaksts.EparakstsConfigError, match=re.escape(message)):
        build(config(sim_url, **changes))


@pytest.mark.parametrize(
    "base_url",
    ["http://eidas.eparaksts.lv", "ftp://127.0.0.1", "eidas.eparaksts.lv", "https://x.lv/?a=b"],
)
def test_a_bad_base_url_is_explained(base_url: str) -> None:
    problems = check(config(base_url))

    assert len(problems) == 1 and "base_url" in problems[0]


def test_the_known_base_urls_are_accepted() -> None:
    for url in (eparaksts.PRODUCTION_BASE_URL, eparaksts.DEMO_BASE_URL):
        assert build(config(url)).token_url == (
            url + "/trustedx-authserver/oauth/lvrtc-eipsign-as/token"
        )


def test_the_secret_never_shows_in_the_connector_repr(sim_url: str) -> None:
    assert SECRET not in repr(connector(sim_url))


# -- the simulator itself -----------------------------------------------------------------


def test_the_simulator_never_redirects_to_an_unregistered_callback(sim_url: str) -> None:
    start = connector(sim_url).start_login("https://attacker.example/cb")
    page = requests.get(start.redirect_url, allow_redirects=False, timeout=5)

    assert page.status_code == 400
    assert "Location" not in page.headers
    assert "DEMO" in page.text


def test_the_simulator_can_be_mounted_under_a_prefix() -> None:
    """How demo mode runs it: inside the IdP, under a path prefix."""

    def idp(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("404 NOT FOUND", [("Content-Type", "text/plain")])
        return [b"the IdP"]

    mounted = DispatcherMiddleware(idp, {"/demo/eparaksts": simulator()})
    with serve(mounted) as url:
        provider = connector(url + "/demo/eparaksts")
        identity = provider.finish_login(*browse(provider, person=ANNA))
        assert check(config(url + "/demo/eparaksts"), timeout=2) == []
    assert identity.personal_code == "01019010001"


def test_a_simulator_login_request_is_answered_once(sim_url: str) -> None:
    start = connector(sim_url).start_login(CALLBACK)
    page = requests.get(start.redirect_url, allow_redirects=False, timeout=5)
    request_id = re.search(r'name="request_id" value="([^"]+)"', page.text)
    assert request_id
    form = {"request_id": request_id.group(1), "action": "login"}

    nobody = requests.post(
        start.redirect_url.split("?")[0],
        data={**form, "person": "PNOLV-000000-00000"},
        allow_redirects=False,
        timeout=5,
    )
    first = requests.post(
        start.redirect_url.split("?")[0],
        data={**form, "person": JANIS},
        allow_redirects=False,
        timeout=5,
    )
    again = requests.post(
        start.redirect_url.split("?")[0],
        data={**form, "person": JANIS},
        allow_redirects=False,
        timeout=5,
    )

    assert nobody.status_code == 400  # an unlisted person: pick again
    assert first.status_code == 302 and "code=" in first.headers["Location"]
    assert again.status_code == 400 and "Location" not in again.headers


def test_users_me_without_a_token_is_refused_by_the_simulator(sim_url: str) -> None:
    answer = requests.get(
        sim_url + USERS_ME_PATH, headers={"Authorization": "Bearer nope"}, timeout=5
    )

    assert answer.status_code == 401
    assert "invalid_token" in answer.headers["WWW-Authenticate"]
