"""Helpers of the "My account" scenarios: a browser of its own (a test client with a
User-Agent header) that logs in."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import PASSWORD, Browser
from tests.user_agents import CHROME_ANDROID, FIREFOX_WINDOWS, SAFARI_IPHONE  # noqa: F401  (the scenarios import them from here)

JANIS = "janis.berzins@example.lv"


def browser_with(app: Flask, user_agent: str) -> Browser:
    """Another browser: a test client of its own that sends this User-Agent."""
    client: FlaskClient = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = user_agent
    return Browser(client)


def logged_in(app: Flask, user_agent: str, email: str = JANIS, password: str = PASSWORD) -> Browser:
    browser = browser_with(app, user_agent)
    response = browser.login(email, password)
    assert response.status_code in (302, 303), response.get_data(as_text=True)
    return browser


def page(browser: Browser, path: str) -> str:
    response = browser.client.get(path)
    assert response.status_code == 200, (response.status_code, response.headers.get("Location"))
    return response.get_data(as_text=True)


def end_buttons(html: str) -> list[str]:
    """The sids of the "Log out of …" forms on the Sessions page."""
    return re.findall(r'action="/account/sessions/([A-Za-z0-9_-]+)/end"', html)


def is_asked_to_log_in(browser: Browser) -> bool:
    response = browser.client.get("/account")
    return response.status_code == 303 and response.headers["Location"].startswith("/login")
