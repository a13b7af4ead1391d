"""The "Sessions" page names a browser by its User-Agent header (idp.my_account.devices):
the browser and the system real browsers send, the more particular name first."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask_babel import Babel

from idp.my_account.devices import Device, read_user_agent
from tests.user_agents import CHROME_ANDROID, FIREFOX_WINDOWS, SAFARI_IPHONE

EDGE_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0"
)
OPERA_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 OPR/115.0.0.0"
)
SAFARI_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15"
)
CHROME_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1"
)
FIREFOX_IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 16_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "FxiOS/133.0 Mobile/15E148 Safari/605.1.15"
)
SAMSUNG_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36"
)
FIREFOX_LINUX = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
CHROME_CHROMEOS = (
    "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


@pytest.fixture(autouse=True)
def babel_app() -> Iterator[None]:
    app = Flask(__name__)
    Babel(app)
    with app.app_context():
        yield


@pytest.mark.parametrize(
    ("header", "label"),
    [
        (FIREFOX_WINDOWS, "Firefox on Windows"),
        (SAFARI_IPHONE, "Safari on iPhone"),
        (CHROME_ANDROID, "Chrome on Android"),
        (EDGE_WINDOWS, "Edge on Windows"),
        (OPERA_MAC, "Opera on Mac"),
        (SAFARI_MAC, "Safari on Mac"),
        (CHROME_IPHONE, "Chrome on iPhone"),
        (FIREFOX_IPAD, "Firefox on iPad"),
        (SAMSUNG_ANDROID, "Samsung Internet on Android"),
        (FIREFOX_LINUX, "Firefox on Linux"),
        (CHROME_CHROMEOS, "Chrome on ChromeOS"),
    ],
)
def test_a_browser_is_named_with_its_system(header: str, label: str) -> None:
    device = read_user_agent(header)
    assert device.label() == label
    assert device.english() == label


def test_no_header_or_one_that_tells_nothing_is_an_unknown_device() -> None:
    for header in (None, "", "curl/8.11.0", "Werkzeug/3.1.3"):
        assert read_user_agent(header) == Device()
        assert read_user_agent(header).label() == "Unknown device"


def test_half_of_what_a_header_tells_is_still_said() -> None:
    assert read_user_agent("SomeApp/1.0 (Windows NT 10.0)").label() == "A browser on Windows"
    assert read_user_agent("Mozilla/5.0 Firefox/133.0").label() == "Firefox"
