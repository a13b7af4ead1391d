"""The example relying apps (examples/invoice_service, examples/meter_service) validate the
IdP's access tokens with its real keys: the IdP serves its JWKS over real HTTP (werkzeug in
a thread, on a loopback port) and the example apps fetch it from there. Tokens are signed by
the IdP's own key ring, as its token endpoint signs them, with the claims relying apps
receive (customer, role, scope); forged ones are built by hand.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from alembic import command
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import ECKey
from werkzeug.serving import make_server

from examples import invoice_service, meter_service
from examples.resource_server import Protection
from idp.cli import alembic_config
from idp.db import session_factory
from idp.keys import KeyRing, rotate_keys
from tests.conftest import ISSUER, RegisteredClient, free_loopback_port, fresh_database

INVOICES = "urn:gas-portal:invoices"
METER_READINGS = "urn:gas-portal:meter-readings"
JANIS = {"id": 1, "number": "100200300", "name": "Jānis Bērziņš"}
ANNA = {"id": 2, "number": "200300400", "name": "Anna Liepa"}
NOBODY = {"id": 99, "number": "999999999", "name": "Unknown Customer"}


# --- the IdP over real HTTP ----------------------------------------------------------------


class CountingIdp:
    """WSGI wrapper of the IdP app that counts the requests for each path."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        with self.lock:
            path = environ.get("PATH_INFO", "")
            self.hits[path] = self.hits.get(path, 0) + 1
        return self.app(environ, start_response)


@contextmanager
def serving(app: Flask, port: int | None = None) -> Iterator[tuple[str, CountingIdp]]:
    """`app` on http://127.0.0.1:<port> in a thread; (base URL, request counter)."""
    counting = CountingIdp(app)
    server = make_server("127.0.0.1", port or free_loopback_port(), counting, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", counting
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@pytest.fixture
def idp_url(app: Flask) -> Iterator[str]:
    with serving(app) as (url, _counter):
        yield url


def keyring_of(app: Flask) -> KeyRing:
    keyring: KeyRing = app.extensions["idp.oauth_server"].keyring
    return keyring


def access_claims(
    *,
    issuer: str = ISSUER,
    aud: Any = INVOICES,
    scope: str = "invoices.read",
    customer: Any = None,
    role: Any = "contractor",
    lifetime: int = 300,
    **extra: Any,
) -> dict[str, Any]:
    """The claims of an access token as the IdP issues them (RFC 9068 + the acting context)."""
    now = int(time.time())
    claims = {
        "iss": issuer,
        "sub": "u-" + secrets.token_hex(6),
        "aud": aud,
        "client_id": "portal",
        "iat": now,
        "exp": now + lifetime,
        "jti": secrets.token_urlsafe(16),
        "scope": scope,
        "customer": JANIS if customer is None else customer,
        "role": role,
        "auth_time": now,
        "acr": "urn:gas-portal:acr:password",
        "gid": secrets.token_hex(8),
    }
    claims.update(extra)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.fixture
def sign(app: Flask) -> Callable[..., str]:
    """Sign claims with the IdP's current key (ES256 by default), typ at+jwt by default."""

    def signer(
        claims: dict[str, Any] | None = None,
        alg: str = "ES256",
        typ: str = "at+jwt",
        **overrides: Any,
    ) -> str:
        with app.app_context():
            return keyring_of(app).sign(claims or access_claims(**overrides), alg, typ=typ)

    return signer


@pytest.fixture
def invoices(idp_url: str) -> FlaskClient:
    return invoice_service.create_app(ISSUER, INVOICES, f"{idp_url}/jwks.json").test_client()


@pytest.fixture
def meters(idp_url: str) -> FlaskClient:
    return meter_service.create_app(ISSUER, METER_READINGS, f"{idp_url}/jwks.json").test_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def challenge(response: Any) -> dict[str, str]:
    """The parameters of a `Bearer` WWW-Authenticate challenge."""
    header = response.headers["WWW-Authenticate"]
    assert header.startswith("Bearer ")
    pairs = [part.strip().split("=", 1) for part in header[len("Bearer ") :].split('", ')]
    return {name: value.strip('"') for name, value in pairs}


def assert_invalid_token(response: Any) -> str:
    assert response.status_code == 401, response.get_data(as_text=True)
    params = challenge(response)
    assert params["realm"] and params["error"] == "invalid_token"
    body = response.get_json()
    assert body["error"] == "invalid_token"
    assert body["error_description"] == params["error_description"]
    return str(body["error_description"])


def b64(data: bytes | dict[str, Any]) -> str:
    if isinstance(data, dict):
        data = json.dumps(data).encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def es256_kid(app: Flask) -> str:
    with app.app_context():
        return keyring_of(app).signing_key("ES256").kid


# --- the invoice service ---------------------------------------------------------------------


def test_health_needs_no_token(invoices: FlaskClient, meters: FlaskClient) -> None:
    for service in (invoices, meters):
        response = service.get("/health")
        assert response.status_code == 200
        assert response.get_json() == {"status": "ok"}


def test_a_valid_token_shows_the_invoices_of_its_customer_only(
    invoices: FlaskClient, sign: Callable[..., str]
) -> None:
    response = invoices.get("/invoices", headers=bearer(sign()))
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["customer"] == {"number": "100200300", "name": "Jānis Bērziņš"}
    numbers = [invoice["number"] for invoice in body["invoices"]]
    assert numbers == [i["number"] for i in invoice_service.INVOICES["100200300"]]
    assert {"number", "period", "amount_eur", "due_date", "paid"} <= set(body["invoices"][0])
    assert response.headers["Cache-Control"] == "no-store"

    anna = invoices.get("/invoices", headers=bearer(sign(customer=ANNA))).get_json()
    assert [i["number"] for i in anna["invoices"]] == [
        i["number"] for i in invoice_service.INVOICES["200300400"]
    ]
    assert not set(numbers) & {i["number"] for i in anna["invoices"]}

    unknown = invoices.get("/invoices", headers=bearer(sign(customer=NOBODY)))
    assert unknown.status_code == 200
    assert unknown.get_json()["invoices"] == []


def test_no_parameter_chooses_the_customer(invoices: FlaskClient, sign: Callable[..., str]) -> None:
    token = sign()
    for query in (
        {"customer": "200300400"},
        {"customer_number": "200300400"},
        {"customer.number": "200300400"},
    ):
        body = invoices.get("/invoices", query_string=query, headers=bearer(token)).get_json()
        assert {i["number"] for i in body["invoices"]} == {
            i["number"] for i in invoice_service.INVOICES["100200300"]
        }


def test_one_invoice_is_shown_only_to_its_customer(
    invoices: FlaskClient, sign: Callable[..., str]
) -> None:
    mine = invoice_service.INVOICES["100200300"][0]["number"]
    annas = invoice_service.INVOICES["200300400"][0]["number"]
    token = sign()
    response = invoices.get(f"/invoices/{mine}", headers=bearer(token))
    assert response.status_code == 200
    assert response.get_json() == invoice_service.INVOICES["100200300"][0]

    other = invoices.get(f"/invoices/{annas}", headers=bearer(token))
    missing = invoices.get("/invoices/GI-1999-000000", headers=bearer(token))
    assert other.status_code == missing.status_code == 404
    # The same answer as for an invoice that does not exist: nothing is revealed.
    assert other.get_json() == missing.get_json()
    assert other.get_json()["error"] == "not_found"
    assert annas not in other.get_data(as_text=True)
    # Anna herself sees it.
    assert (
        invoices.get(f"/invoices/{annas}", headers=bearer(sign(customer=ANNA))).status_code == 200
    )


def test_no_token_gets_a_bare_challenge(invoices: FlaskClient) -> None:
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": ""}):
        response = invoices.get("/invoices", headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="invoices"'
        assert response.get_json()["error"] == "unauthorized"
    # A token in the query is not a way in either (RFC 6750 §2.3 is not supported).
    assert invoices.get("/invoices", query_string={"access_token": "x"}).status_code == 401


GARBAGE = [
    "",
    "x",
    "a.b",
    "a.b.c",
    "a.b.c.d",
    "....",
    "ā.ā.ā",
    "Bearer",
    "\x00\x01",
    b64({"alg": "ES256"}) + ".." + "x",
    b64(b"[]") + "." + b64(b"{}") + ".sig",
    b64(b"not json") + "." + b64(b"{}") + ".sig",
    b64({"alg": "ES256", "kid": 7, "typ": "at+jwt"}) + "." + b64({}) + ".AAAA",
    b64({"alg": ["ES256"], "typ": "at+jwt"}) + "." + b64({}) + ".AAAA",
    b64({"typ": "at+jwt"}) + "." + b64({}) + ".AAAA",
    "e" * 20000,
]


@pytest.mark.parametrize("token", GARBAGE)
def test_garbage_is_an_invalid_token(invoices: FlaskClient, token: str) -> None:
    assert_invalid_token(invoices.get("/invoices", headers=bearer(token)))


def test_random_garbage_never_gets_more_than_a_401(invoices: FlaskClient, app: Flask) -> None:
    rng = random.Random(9068)
    kid = es256_kid(app)
    pieces = [
        b64({"alg": "ES256", "kid": kid, "typ": "at+jwt"}),
        b64({"alg": "none"}),
        b64(access_claims()),
        b64(b"\xff\xfe"),
        "",
        "=",
        "%",
        "~",
        "e30",
        "bnVsbA",
    ]
    for _ in range(200):
        token = ".".join(rng.choice(pieces) for _ in range(rng.randint(1, 5)))
        response = invoices.get("/invoices", headers=bearer(token))
        assert response.status_code == 401, (token, response.get_data(as_text=True))


def test_an_id_token_is_not_an_access_token(
    invoices: FlaskClient, sign: Callable[..., str]
) -> None:
    id_token_claims = access_claims(aud=INVOICES, nonce="n", azp="portal")
    description = assert_invalid_token(
        invoices.get("/invoices", headers=bearer(sign(id_token_claims, alg="RS256", typ="JWT")))
    )
    assert "typ" in description


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"issuer": "https://evil.example"}, "iss"),
        ({"issuer": ISSUER + "/"}, "iss"),
        ({"aud": METER_READINGS}, "aud"),
        ({"aud": [METER_READINGS, "urn:other"]}, "aud"),
        ({"aud": "urn:gas-portal:invoices-but-not-quite"}, "aud"),
        ({"lifetime": -120}, "expired"),
        ({"exp": "tomorrow"}, "exp"),
        ({"iat": int(time.time()) + 3600}, "iat"),
        ({"customer": {}}, "customer"),
        ({"customer": {"id": "1", "number": "100200300", "name": "J"}}, "customer"),
        ({"customer": {"id": 1, "number": 100200300, "name": "J"}}, "customer"),
        ({"customer": {"id": True, "number": "100200300", "name": "J"}}, "customer"),
        ({"customer": "100200300"}, "customer"),
        ({"role": ""}, "role"),
        ({"role": ["contractor"]}, "role"),
        ({"scope": ["invoices.read"]}, "scope"),
    ],
)
def test_claims_that_do_not_fit_are_an_invalid_token(
    invoices: FlaskClient, sign: Callable[..., str], overrides: dict[str, Any], why: str
) -> None:
    description = assert_invalid_token(invoices.get("/invoices", headers=bearer(sign(**overrides))))
    assert why in description


@pytest.mark.parametrize("missing", ["iss", "aud", "exp", "sub", "customer", "role"])
def test_a_missing_claim_is_an_invalid_token(
    invoices: FlaskClient, sign: Callable[..., str], missing: str
) -> None:
    claims = access_claims()
    del claims[missing]
    description = assert_invalid_token(invoices.get("/invoices", headers=bearer(sign(claims))))
    assert missing in description


def test_a_token_expired_within_the_leeway_still_passes(
    invoices: FlaskClient, sign: Callable[..., str]
) -> None:
    response = invoices.get("/invoices", headers=bearer(sign(lifetime=-5)))
    assert response.status_code == 200


def test_alg_none_is_refused(invoices: FlaskClient, app: Flask) -> None:
    header = {"alg": "none", "typ": "at+jwt", "kid": es256_kid(app)}
    for signature in ("", "AAAA"):
        token = f"{b64(header)}.{b64(access_claims())}.{signature}"
        assert_invalid_token(invoices.get("/invoices", headers=bearer(token)))


def test_hmac_signed_with_the_public_key_is_refused(
    invoices: FlaskClient, app: Flask, idp_url: str
) -> None:
    jwks = requests.get(f"{idp_url}/jwks.json", timeout=5).json()
    for public in jwks["keys"]:
        header = {"alg": "HS256", "typ": "at+jwt", "kid": public["kid"]}
        signing_input = f"{b64(header)}.{b64(access_claims())}"
        for secret in (
            json.dumps(public).encode(),
            json.dumps(public, sort_keys=True).encode(),
            public.get("x", public.get("n", "")).encode(),
        ):
            mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
            token = f"{signing_input}.{b64(mac)}"
            assert_invalid_token(invoices.get("/invoices", headers=bearer(token)))


def test_a_key_the_idp_does_not_publish_is_refused(invoices: FlaskClient, app: Flask) -> None:
    rogue = ECKey.generate_key("P-256")
    for kid in ("es256-unknown", es256_kid(app)):  # a kid of its own, or the IdP's kid
        token = jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": kid}, access_claims(), rogue)
        assert_invalid_token(invoices.get("/invoices", headers=bearer(token)))


def test_a_tampered_token_is_refused(invoices: FlaskClient, sign: Callable[..., str]) -> None:
    header, _payload, signature = sign().split(".")
    tampered = f"{header}.{b64(access_claims(customer=ANNA))}.{signature}"
    assert_invalid_token(invoices.get("/invoices", headers=bearer(tampered)))


def test_without_the_scope_the_answer_is_insufficient_scope(
    invoices: FlaskClient, sign: Callable[..., str]
) -> None:
    for scope in ("", "openid profile", "meter_readings.submit", "invoices.reader"):
        response = invoices.get("/invoices", headers=bearer(sign(scope=scope)))
        assert response.status_code == 403
        params = challenge(response)
        assert params["error"] == "insufficient_scope"
        assert params["scope"] == "invoices.read"
        assert response.get_json()["error"] == "insufficient_scope"
        assert (
            invoices.get("/invoices/GI-2026-000101", headers=bearer(sign(scope=scope))).status_code
            == 403
        )


def test_an_audience_list_holding_ours_is_accepted(
    invoices: FlaskClient, sign: Callable[..., str]
) -> None:
    token = sign(aud=[METER_READINGS, INVOICES])
    assert invoices.get("/invoices", headers=bearer(token)).status_code == 200


def test_rs256_and_the_full_media_type_are_accepted(
    invoices: FlaskClient, sign: Callable[..., str]
) -> None:
    assert invoices.get("/invoices", headers=bearer(sign(alg="RS256"))).status_code == 200
    token = sign(typ="application/at+jwt")
    assert invoices.get("/invoices", headers=bearer(token)).status_code == 200


def test_a_token_of_the_idp_token_endpoint_without_a_customer_is_refused(
    client: FlaskClient, invoices: FlaskClient, make_client: Callable[..., RegisteredClient]
) -> None:
    """A client_credentials token is the IdP's, for our audience, but nobody acts in it."""
    service = make_client(
        name="Batch job",
        audience=INVOICES,
        redirect_uris=[],
        grant_types=["client_credentials"],
        scopes=[],
    )
    issued = client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        auth=(service.client_id, service.secret),
    )
    assert issued.status_code == 200, issued.get_data(as_text=True)
    response = invoices.get("/invoices", headers=bearer(issued.get_json()["access_token"]))
    assert "customer" in assert_invalid_token(response)


def test_the_service_answers_over_http(idp_url: str, sign: Callable[..., str]) -> None:
    service = invoice_service.create_app(ISSUER, INVOICES, f"{idp_url}/jwks.json")
    with serving(service) as (url, _counter):
        ok = requests.get(f"{url}/invoices", headers=bearer(sign()), timeout=5)
        assert ok.status_code == 200
        assert len(ok.json()["invoices"]) == 3
        bare = requests.get(f"{url}/invoices", timeout=5)
        assert bare.status_code == 401
        assert bare.headers["WWW-Authenticate"] == 'Bearer realm="invoices"'
        assert requests.get(f"{url}/health", timeout=5).json() == {"status": "ok"}


# --- JWKS: discovery, caching, key rotation, the IdP down ------------------------------------


def test_without_jwks_url_the_keys_come_from_discovery(make_app: Callable[..., Flask]) -> None:
    port = free_loopback_port()
    issuer = f"http://127.0.0.1:{port}"
    idp = make_app(issuer=issuer)
    with serving(idp, port) as (_url, counter):
        service = invoice_service.create_app(issuer, INVOICES).test_client()
        with idp.app_context():
            token = keyring_of(idp).sign(access_claims(issuer=issuer), "ES256", typ="at+jwt")
        for _ in range(3):
            assert service.get("/invoices", headers=bearer(token)).status_code == 200
        assert counter.hits == {"/.well-known/openid-configuration": 1, "/jwks.json": 1}


def test_the_idp_being_unreachable_is_a_503_not_a_401(sign: Callable[..., str]) -> None:
    closed = f"http://127.0.0.1:{free_loopback_port()}/jwks.json"
    service = invoice_service.create_app(ISSUER, INVOICES, closed).test_client()
    response = service.get("/invoices", headers=bearer(sign()))
    assert response.status_code == 503
    assert response.get_json()["error"] == "temporarily_unavailable"
    assert "WWW-Authenticate" not in response.headers


def test_keys_already_known_still_verify_while_the_idp_is_down(
    app: Flask, sign: Callable[..., str]
) -> None:
    with serving(app) as (url, _counter):
        service_app = invoice_service.create_app(ISSUER, INVOICES, f"{url}/jwks.json")
        service = service_app.test_client()
        assert service.get("/invoices", headers=bearer(sign())).status_code == 200
    keys = service_app.extensions["resource_server"].keys
    keys.max_age = keys.refetch_interval = 0  # every request tries to refetch, and fails
    assert service.get("/invoices", headers=bearer(sign())).status_code == 200
    rogue = jwt.encode(
        {"alg": "ES256", "typ": "at+jwt", "kid": "es256-next"},
        access_claims(),
        ECKey.generate_key("P-256"),
    )
    assert_invalid_token(service.get("/invoices", headers=bearer(rogue)))


@pytest.fixture
def fresh_url(tmp_path: Path) -> Iterator[str]:
    """A database of its own: rotating keys changes the keys the shared app signs with."""
    with fresh_database(tmp_path) as url:
        command.upgrade(alembic_config(url), "head")
        yield url


def test_key_rotation_refetches_the_jwks_at_most_once_a_minute(
    make_app: Callable[..., Flask], fresh_url: str
) -> None:
    idp = make_app(database_url=fresh_url, keys_refresh_interval=0)
    keyring = keyring_of(idp)
    with serving(idp) as (url, counter):
        app = invoice_service.create_app(ISSUER, INVOICES, f"{url}/jwks.json")
        protection: Protection = app.extensions["resource_server"]
        protection.keys.refetch_interval = 1.0  # a minute in production; real time here
        service = app.test_client()
        with idp.app_context():
            old_token = keyring.sign(access_claims(), "ES256", typ="at+jwt")
        assert service.get("/invoices", headers=bearer(old_token)).status_code == 200
        assert counter.hits["/jwks.json"] == 1

        with session_factory(idp)() as session:
            rotate_keys(session, idp.config["IDP_SETTINGS"])
            session.commit()
        with idp.app_context():
            new_token = keyring.sign(access_claims(), "ES256", typ="at+jwt")
        assert new_token.split(".")[0] != old_token.split(".")[0]  # another kid

        # Within the interval an unknown kid, however often, fetches nothing.
        for _ in range(5):
            assert_invalid_token(service.get("/invoices", headers=bearer(new_token)))
        assert counter.hits["/jwks.json"] == 1
        time.sleep(1.1)
        assert service.get("/invoices", headers=bearer(new_token)).status_code == 200
        assert counter.hits["/jwks.json"] == 2
        # The old key stays published until its tokens expired: known, so no refetch.
        assert service.get("/invoices", headers=bearer(old_token)).status_code == 200
        assert service.get("/invoices", headers=bearer(new_token)).status_code == 200
        assert counter.hits["/jwks.json"] == 2


# --- the meter-reading service ---------------------------------------------------------------


def reading_token(sign: Callable[..., str], **overrides: Any) -> str:
    overrides.setdefault("aud", METER_READINGS)
    overrides.setdefault("scope", "openid invoices.read meter_readings.submit")
    return sign(**overrides)


def test_only_invoices_read_cannot_submit_nor_list_readings(
    meters: FlaskClient, sign: Callable[..., str]
) -> None:
    token = reading_token(sign, scope="openid invoices.read", role="additional_user")
    for response in (
        meters.post("/readings", json={"meter": "GM-1001", "value": "12.5"}, headers=bearer(token)),
        meters.get("/readings", headers=bearer(token)),
    ):
        assert response.status_code == 403
        params = challenge(response)
        assert params["realm"] == "meter-readings"
        assert params["error"] == "insufficient_scope"
        assert params["scope"] == "meter_readings.submit"
        assert response.get_json()["error"] == "insufficient_scope"


def test_a_reading_is_stored_for_the_tokens_customer(
    meters: FlaskClient, sign: Callable[..., str]
) -> None:
    claims = access_claims(
        aud=METER_READINGS, scope="meter_readings.submit", role="additional_user"
    )
    token = sign(claims)
    created = meters.post(
        "/readings", data={"meter": "GM-1001", "value": "1234,56"}, headers=bearer(token)
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    reading = created.get_json()
    assert reading["customer_number"] == "100200300"
    assert reading["meter"] == "GM-1001"
    assert reading["value"] == "1234.56"
    assert reading["submitted_by"] == claims["sub"]
    assert reading["client_id"] == "portal"
    assert reading["at"].endswith("+00:00")

    as_json = meters.post(
        "/readings", json={"meter": "GM-1001", "value": 1240}, headers=bearer(token)
    )
    assert as_json.status_code == 201
    assert as_json.get_json()["value"] == "1240"

    listed = meters.get("/readings", headers=bearer(token)).get_json()
    assert listed["meters"] == ["GM-1001"]
    assert [r["value"] for r in listed["readings"]] == ["1240", "1234.56"]

    # Another customer sees none of them, and cannot report on Jānis's meter.
    anna = reading_token(sign, customer=ANNA)
    assert meters.get("/readings", headers=bearer(anna)).get_json() == {
        "meters": ["GM-2001", "GM-2002"],
        "readings": [],
    }
    refused = meters.post(
        "/readings", json={"meter": "GM-1001", "value": "1"}, headers=bearer(anna)
    )
    assert refused.status_code == 400
    unknown = meters.post(
        "/readings", json={"meter": "GM-0000", "value": "1"}, headers=bearer(anna)
    )
    assert refused.get_json() == unknown.get_json()
    assert len(meters.get("/readings", headers=bearer(token)).get_json()["readings"]) == 2


@pytest.mark.parametrize("value", ["0", 0, "7", "0.001", "99999999.999", 12.5, " 12.5 "])
def test_accepted_values(meters: FlaskClient, sign: Callable[..., str], value: Any) -> None:
    response = meters.post(
        "/readings", json={"meter": "GM-1001", "value": value}, headers=bearer(reading_token(sign))
    )
    assert response.status_code == 201, response.get_data(as_text=True)


@pytest.mark.parametrize(
    "body",
    [
        {"value": "12"},
        {"meter": "", "value": "12"},
        {"meter": 1001, "value": "12"},
        {"meter": "GM-2001", "value": "12"},  # Anna's meter
        {"meter": "GM-1001"},
        {"meter": "GM-1001", "value": ""},
        {"meter": "GM-1001", "value": None},
        {"meter": "GM-1001", "value": "-1"},
        {"meter": "GM-1001", "value": -1},
        {"meter": "GM-1001", "value": "1.2345"},
        {"meter": "GM-1001", "value": "123456789"},
        {"meter": "GM-1001", "value": "1e3"},
        {"meter": "GM-1001", "value": 1e-7},
        {"meter": "GM-1001", "value": "NaN"},
        {"meter": "GM-1001", "value": "Infinity"},
        {"meter": "GM-1001", "value": "twelve"},
        {"meter": "GM-1001", "value": "1,234.5"},
        {"meter": "GM-1001", "value": True},
        {"meter": "GM-1001", "value": [12]},
        {"meter": "GM-1001", "value": {"m3": 12}},
        {"meter": "GM-1001", "value": "١٢"},  # Arabic-Indic digits are no meter register
    ],
)
def test_bad_readings_are_an_invalid_request(
    meters: FlaskClient, sign: Callable[..., str], body: dict[str, Any]
) -> None:
    token = reading_token(sign)
    sends: list[dict[str, Any]] = [{"json": body}]
    if all(isinstance(v, str) for v in body.values()):
        sends.append({"data": body})  # the same as a form
    for send in sends:
        response = meters.post("/readings", headers=bearer(token), **send)
        assert response.status_code == 400, (send, response.get_data(as_text=True))
        answer = response.get_json()
        assert answer["error"] == "invalid_request"
        assert answer["error_description"]
    assert meters.get("/readings", headers=bearer(token)).get_json()["readings"] == []


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"text"', b"not json", b"null", b""])
def test_a_body_that_is_no_object_is_an_invalid_request(
    meters: FlaskClient, sign: Callable[..., str], raw: bytes
) -> None:
    response = meters.post(
        "/readings", data=raw, content_type="application/json", headers=bearer(reading_token(sign))
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_the_meter_service_checks_its_own_audience(
    meters: FlaskClient, sign: Callable[..., str]
) -> None:
    invoices_token = sign(scope="meter_readings.submit")  # aud: the invoice service
    description = assert_invalid_token(
        meters.post(
            "/readings", json={"meter": "GM-1001", "value": "1"}, headers=bearer(invoices_token)
        )
    )
    assert "aud" in description
    assert_invalid_token(meters.get("/readings", headers=bearer("garbage")))
    bare = meters.get("/readings")
    assert bare.status_code == 401
    assert bare.headers["WWW-Authenticate"] == 'Bearer realm="meter-readings"'


def test_unknown_paths_and_methods_answer_json(meters: FlaskClient) -> None:
    assert meters.get("/nothing").get_json()["error"] == "not_found"
    response = meters.delete("/readings")
    assert response.status_code == 405
    assert response.get_json()["error"] == "method_not_allowed"
