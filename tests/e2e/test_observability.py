"""Metrics and access lines of a real granian server with two worker processes: each
worker counts in its own files, and a scrape - whichever worker answers it - sums them.
The log is JSON lines whose request ids are those the answers carried."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import HTTP_TIMEOUT, LiveServer, ServerProcess, start_server

pytestmark = pytest.mark.e2e

METRICS_TOKEN = secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def two_workers(live_server: LiveServer) -> Iterator[tuple[ServerProcess, Path]]:
    """A second deployment of the live server's database: two granian workers, metrics
    on, JSON logs."""
    metrics_dir = live_server.workdir / "metrics"
    env = {
        **live_server.env,
        "IDP_METRICS_TOKEN": METRICS_TOKEN,
        "IDP_METRICS_DIR": str(metrics_dir),
        "IDP_LOG_FORMAT": "json",
    }
    server = start_server(
        env, live_server.workdir / "granian-workers.log", issuer=live_server.issuer, workers=2
    )
    try:
        yield server, metrics_dir
    finally:
        server.stop()


def _fresh_get(url: str, **kwargs: object) -> requests.Response:
    """A GET on a connection of its own, so the kernel may hand it to either worker."""
    with requests.Session() as http:
        return http.get(url, timeout=HTTP_TIMEOUT, **kwargs)  # type: ignore[arg-type]


def _scrape(base_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = _fresh_get(
        base_url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _requests_to(samples: dict, route: str) -> float:
    return sum(
        count
        for (name, labels), count in samples.items()
        if name == "idp_http_requests_total" and dict(labels).get("route") == route
    )


def test_a_scrape_sums_the_counts_of_both_workers(two_workers):
    server, metrics_dir = two_workers
    assert _fresh_get(server.base_url + "/metrics").status_code == 401
    before = _requests_to(_scrape(server.base_url), "/login")
    # Until both workers have answered some (the kernel spreads new connections).
    sent = 0
    for _ in range(400):
        assert _fresh_get(server.base_url + "/login").status_code == 200
        sent += 1
        [run_dir] = list(metrics_dir.glob("run-*"))
        writers = {path.name for path in run_dir.glob("counter_*.db")}
        if len(writers) >= 2 and sent >= 20:
            break
    assert len(writers) >= 2, f"one worker answered all {sent} requests: {writers}"
    # Each scrape is answered by one worker or the other; each sees the sum.
    for _ in range(6):
        assert _requests_to(_scrape(server.base_url), "/login") == before + sent


def _access_lines(log: str) -> list[dict]:
    lines = []
    for raw in log.splitlines():
        if raw.startswith("{"):
            line = json.loads(raw)
            if line.get("logger") == "idp.access":
                lines.append(line)
    return lines


def test_the_log_is_json_lines_with_the_answers_request_ids(two_workers):
    server, _metrics_dir = two_workers
    offset = server.log_size()
    ids = [
        _fresh_get(server.base_url + "/jwks.json").headers["X-Request-ID"],
        _fresh_get(server.base_url + "/login", headers={"X-Request-ID": "probe-42"}).headers[
            "X-Request-ID"
        ],
        _fresh_get(server.base_url + "/no/such/page?code=abc").headers["X-Request-ID"],
    ]
    assert ids[1] == "probe-42"
    # A line is written once the answer has gone out: the last one may reach the log file
    # a moment after its answer reached the test.
    deadline = time.monotonic() + 10
    while True:
        by_id = {line["request_id"]: line for line in _access_lines(server.log(offset))}
        if set(ids) <= set(by_id) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert set(ids) <= set(by_id), server.log(offset)
    assert [by_id[i]["route"] for i in ids] == ["/jwks.json", "/login", "<unmatched>"]
    assert [by_id[i]["status"] for i in ids] == [200, 200, 404]
    assert "abc" not in json.dumps([by_id[i] for i in ids])
