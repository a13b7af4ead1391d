"""Request ids, the access log and the metrics (idp.observability): every answer carries an
X-Request-ID, each request writes one access line with its fields and no secret, and
/metrics counts logins, tokens and reuse for the scraper that brings the token."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from idp.models import RefreshToken, User
from idp.observability import JsonFormatter
from idp.request_ids import accept
from idp.security import hash_secret
from tests.conftest import PASSWORD, Browser
from tests.integration.conftest import bearer, get_code, login_tokens, redeem, refresh
from tests.integration.demo_people import Person, text
from tests.integration.test_browser_binding import bank_answer, press_bank

METRICS_TOKEN = "metrics-token-for-the-tests-0123456789"
ACCESS_FIELDS = {
    "time",
    "level",
    "logger",
    "request_id",
    "method",
    "route",
    "status",
    "duration_ms",
    "client_id",
    "remote_addr",
}


@pytest.fixture(scope="session")
def metrics_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    # Process-wide (as prometheus_client's values are): the first app with metrics fixes it.
    return str(tmp_path_factory.mktemp("metrics"))


@pytest.fixture
def metrics_app(app: Flask, make_app: Any, metrics_dir: str) -> Flask:
    """An app with metrics on, on the same database as `app` (whose fixtures fill it)."""
    return make_app(metrics_token=METRICS_TOKEN, metrics_dir=metrics_dir)  # type: ignore[no-any-return]


@pytest.fixture
def metrics_client(metrics_app: Flask) -> FlaskClient:
    return metrics_app.test_client()


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Everything the idp loggers write meanwhile, as JSON lines."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("idp")
    logger.addHandler(handler)
    try:
        yield out
    finally:
        logger.removeHandler(handler)


def get(client: FlaskClient, path: str, **kwargs: Any) -> Any:
    """A GET whose body is read and closed, as a server does (the access line is written
    then); the test client leaves an unread body open."""
    return client.get(path, buffered=True, **kwargs)


def access_lines(out: io.StringIO) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    return [line for line in lines if line["logger"] == "idp.access"]


def scrape(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = get(client, "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# --- request ids -------------------------------------------------------------------------


def test_accept_keeps_a_sane_id_and_replaces_anything_else():
    assert accept("abc-123_X.y") == "abc-123_X.y"
    assert accept("a" * 64) == "a" * 64
    for insane in ("a" * 65, "a b", "ā", "x\ny", "", None, "a;b", "a/b"):
        new = accept(insane)
        assert new != insane and len(new) == 22


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/login"),  # a Flask page
        ("GET", "/jwks.json"),  # a replayed document (the second call is replayed)
        ("GET", "/jwks.json"),
        ("GET", "/userinfo"),  # the userinfo fast path (its 401)
        ("GET", "/no-such-page"),  # a 404 page
        ("DELETE", "/token"),  # a 405
        ("GET", "/metrics"),  # metrics off in the shared app: a 404
        ("GET", "/healthz"),  # the health probes, in front of Flask
    ],
)
def test_every_answer_carries_a_request_id(client, method, path):
    response = client.open(path, method=method)
    assert len(response.headers.get_all("X-Request-ID")) == 1
    assert len(response.headers["X-Request-ID"]) == 22


def test_token_fast_path_answers_carry_a_request_id(client, browser, user, confidential_client):
    issued = login_tokens(client, browser, confidential_client)
    answer = refresh(client, confidential_client, issued["refresh_token"])
    assert answer.status_code == 200
    assert answer.headers["X-Request-ID"]
    wrong = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": "x"})
    assert wrong.status_code == 401 and wrong.headers["X-Request-ID"]


def test_a_sane_incoming_id_is_kept_an_insane_one_replaced(client, log_lines):
    kept = get(client, "/login", headers={"X-Request-ID": "lb-7f3a.9_z"})
    assert kept.headers["X-Request-ID"] == "lb-7f3a.9_z"
    replaced = client.get("/jwks.json", headers={"X-Request-ID": "x" * 65})
    assert replaced.headers["X-Request-ID"] != "x" * 65
    lines = access_lines(log_lines)
    assert [line["request_id"] for line in lines] == [
        "lb-7f3a.9_z",
        replaced.headers["X-Request-ID"],
    ]


# --- the access log ----------------------------------------------------------------------


def test_one_access_line_per_request_with_its_fields(
    client, browser, user, confidential_client, log_lines
):
    issued = login_tokens(client, browser, confidential_client)
    log_lines.truncate(0)
    log_lines.seek(0)
    answers = [
        get(client, "/login?interaction=secret-looking-value"),  # Flask page
        refresh(client, confidential_client, issued["refresh_token"]),  # fast path
        client.get("/userinfo", headers=bearer(issued["access_token"])),  # fast path
        get(client, "/upstream/callback/demo-bank?state=s&code=c"),  # a rule with a variable
        get(client, "/nowhere/12345"),
        get(client, "/healthz"),
    ]
    lines = access_lines(log_lines)
    assert len(lines) == len(answers)
    for line, answer in zip(lines, answers, strict=True):
        assert set(line) == ACCESS_FIELDS
        assert line["request_id"] == answer.headers["X-Request-ID"]
        assert line["status"] == answer.status_code
        assert line["duration_ms"] >= 0
        assert line["remote_addr"] == "127.0.0.1"
        assert line["level"] == "INFO" and line["time"].endswith("Z")
    assert [line["route"] for line in lines] == [
        "/login",
        "/token",
        "/userinfo",
        "/upstream/callback/<provider>",
        "<unmatched>",
        "/healthz",
    ]
    assert [line["method"] for line in lines] == ["GET", "POST", "GET", "GET", "GET", "GET"]
    # The token request names its client; nobody else's does.
    assert [line["client_id"] for line in lines] == [
        None,
        confidential_client.client_id,
        None,
        None,
        None,
        None,
    ]
    assert "secret-looking-value" not in log_lines.getvalue()


def test_the_code_grant_and_revocation_name_their_client(
    client, browser, user, confidential_client, log_lines
):
    code, verifier, params = get_code(browser, confidential_client)
    # Logged in by now: /authorize answers the redirect with the code at once.
    authorized = get(client, "/authorize", query_string=params)
    assert authorized.status_code == 302
    redeemed = redeem(client, confidential_client, code, verifier)
    assert redeemed.status_code == 200
    tokens = redeemed.get_json()
    revoked = client.post(
        "/revoke",
        data={"token": tokens["refresh_token"]},
        auth=(confidential_client.client_id, confidential_client.secret),
        buffered=True,
    )
    assert revoked.status_code == 200
    by_route = {line["route"]: line for line in access_lines(log_lines)}
    assert by_route["/authorize"]["client_id"] == confidential_client.client_id
    assert by_route["/token"]["client_id"] == confidential_client.client_id
    assert by_route["/revoke"]["client_id"] == confidential_client.client_id


def test_no_secret_reaches_the_log(client, browser, user, customer, confidential_client, db):
    """A login, a code redeemed, a refresh, userinfo and a failed login: neither the
    password, the code, a token, a cookie, the personal code nor a stored hash is in any
    idp log line, access lines or others."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    idp_logger = logging.getLogger("idp")
    idp_logger.addHandler(handler)
    previous = idp_logger.level
    idp_logger.setLevel(logging.DEBUG)  # whatever anybody logs, at any level
    try:
        code, verifier, _params = get_code(browser, confidential_client)
        redeemed = redeem(client, confidential_client, code, verifier)
        tokens = redeemed.get_json()
        refreshed = refresh(client, confidential_client, tokens["refresh_token"]).get_json()
        info = client.get("/userinfo", headers=bearer(refreshed["access_token"]))
        assert info.status_code == 200
        failed = Browser(client).login(password="not-the-password-" + "z" * 8)
        assert failed.status_code == 401
    finally:
        idp_logger.removeHandler(handler)
        idp_logger.setLevel(previous)
    text = out.getvalue()
    assert access_lines(io.StringIO(text)), "the requests were logged"
    cookies = [
        cookie.value
        for name in ("idp_session", "idp_csrf")
        if (cookie := client.get_cookie(name)) is not None
    ]
    assert cookies, "the login set cookies"
    db.expire_all()
    stored = db.scalars(select(RefreshToken.token_hash)).all()
    password_hash = db.scalar(select(User.password_hash).where(User.id == user.id))
    secrets_ = {
        "password": PASSWORD,
        "failed password": "not-the-password-" + "z" * 8,
        "code": code,
        "code verifier": verifier,
        "access token": tokens["access_token"],
        "id token": tokens["id_token"],
        "refresh token": tokens["refresh_token"],
        "rotated refresh token": refreshed["refresh_token"],
        "refreshed access token": refreshed["access_token"],
        "client secret": confidential_client.secret,
        "personal code": customer.personal_code,
        "code hash": hash_secret(code),
        "password hash": password_hash,
        **{f"cookie {i}": value for i, value in enumerate(cookies)},
        **{f"stored hash {i}": value for i, value in enumerate(stored)},
    }
    for what, secret in secrets_.items():
        assert secret and secret not in text, f"the {what} is in the log"
        # Also not cut down to its first characters.
        assert str(secret)[:16] not in text, f"the start of the {what} is in the log"


# --- metrics -----------------------------------------------------------------------------


def test_metrics_need_the_bearer_token(metrics_client, client):
    assert metrics_client.get("/metrics").status_code == 401
    wrong = metrics_client.get("/metrics", headers={"Authorization": "Bearer wrong"})
    assert wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    basic = metrics_client.get("/metrics", headers={"Authorization": f"Basic {METRICS_TOKEN}"})
    assert basic.status_code == 401
    answer = metrics_client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=")
    assert answer.headers["X-Request-ID"]
    families = {f.name for f in text_string_to_metric_families(answer.get_data(as_text=True))}
    assert {
        "idp_http_requests",
        "idp_http_request_duration_seconds",
        "idp_mail_outbox_depth",
        "idp_mail_outbox_oldest_age_seconds",
    } <= families
    # Without a metrics_token (the shared app) there are no metrics at all.
    off = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert off.status_code == 404


def test_requests_are_counted_by_route_and_status(metrics_client):
    before = scrape(metrics_client)
    get(metrics_client, "/login")
    get(metrics_client, "/jwks.json")
    get(metrics_client, "/nowhere/at/all")
    after = scrape(metrics_client)
    for route, status in (("/login", "200"), ("/jwks.json", "200"), ("<unmatched>", "404")):
        labels = {"route": route, "method": "GET", "status": status}
        assert value(after, "idp_http_requests_total", **labels) == (
            value(before, "idp_http_requests_total", **labels) + 1
        )
        hist = {"route": route, "status": status}
        assert value(after, "idp_http_request_duration_seconds_count", **hist) == (
            value(before, "idp_http_request_duration_seconds_count", **hist) + 1
        )
    # The first scrape itself was counted too.
    assert value(after, "idp_http_requests_total", route="/metrics", method="GET", status="200")


def test_counters_move_for_logins_grants_refreshes_and_reuse(
    metrics_client, user, confidential_client
):
    browser = Browser(metrics_client)
    before = scrape(metrics_client)
    code, verifier, _params = get_code(browser, confidential_client)
    issued = redeem(metrics_client, confidential_client, code, verifier).get_json()
    rotated = refresh(metrics_client, confidential_client, issued["refresh_token"])
    assert rotated.status_code == 200
    # The first refresh token again: a stolen copy, the family is revoked.
    assert refresh(metrics_client, confidential_client, issued["refresh_token"]).status_code == 400
    # The code again: what it issued is revoked.
    assert redeem(metrics_client, confidential_client, code, verifier).status_code == 400
    assert Browser(metrics_client).login(password="wrong-password-" + "q" * 8).status_code == 401
    after = scrape(metrics_client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("idp_logins_total", method="password", outcome="ok") == 1
    assert moved("idp_logins_total", method="password", outcome="failed") == 1
    assert moved("idp_tokens_issued_total", grant="authorization_code") == 1
    assert moved("idp_tokens_issued_total", grant="refresh_token") == 1
    assert moved("idp_token_reuse_detected_total", kind="refresh_token") == 1
    assert moved("idp_token_reuse_detected_total", kind="authorization_code") == 1


def test_client_credentials_and_throttled_logins_are_counted(
    metrics_client, user, confidential_client
):
    before = scrape(metrics_client)
    answer = metrics_client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        auth=(confidential_client.client_id, confidential_client.secret),
    )
    assert answer.status_code == 200
    browser = Browser(metrics_client)
    statuses = [browser.login(password=f"wrong-{n}-" + "p" * 12).status_code for n in range(8)]
    assert 429 in statuses, statuses
    after = scrape(metrics_client)
    throttled = statuses.count(429)
    assert value(after, "idp_tokens_issued_total", grant="client_credentials") == (
        value(before, "idp_tokens_issued_total", grant="client_credentials") + 1
    )
    assert value(after, "idp_logins_total", method="password", outcome="throttled") == (
        value(before, "idp_logins_total", method="password", outcome="throttled") + throttled
    )
    assert value(after, "idp_throttled_total", what="password_login") == (
        value(before, "idp_throttled_total", what="password_login") + throttled
    )


def test_the_outbox_gauges_read_the_database(metrics_app, metrics_client, db):
    from idp import mail

    mail.get_sender(metrics_app).stop()  # the mail must wait in the outbox meanwhile
    before = scrape(metrics_client)
    with metrics_app.app_context():
        row = mail.queue_test_mail(db, "waiting@example.lv")
    db.commit()
    try:
        after = scrape(metrics_client)
        assert value(after, "idp_mail_outbox_depth") == value(before, "idp_mail_outbox_depth") + 1
        assert value(after, "idp_mail_outbox_oldest_age_seconds") >= 0
    finally:
        db.delete(row)
        db.commit()


def test_bank_logins_and_upstream_errors_are_counted(metrics_client, demo):
    """A DEMO bank login, and one whose callback carries a code the bank never issued:
    its token endpoint refuses it, so the login fails upstream."""
    before = scrape(metrics_client)
    janis = Person(demo)
    answer = janis.get(bank_answer(janis, press_bank(janis)))
    assert answer.status_code == 303 and janis.client.get_cookie("idp_session") is not None
    other = Person(demo)
    callback = bank_answer(other, press_bank(other))
    forged = callback.replace("code=", "code=forged", 1)
    failed = other.get(forged)
    assert failed.status_code == 200 and "The bank login is unavailable" in text(failed)
    after = scrape(metrics_client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("idp_logins_total", method="bank", outcome="ok") == 1
    assert moved("idp_logins_total", method="bank", outcome="failed") == 1
    assert moved("idp_upstream_errors_total", provider="demo-bank", kind="callback") == 1
