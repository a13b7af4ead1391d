"""Which browser on which device a session is, read from its User-Agent header, for the
"Sessions" page. A few ordered rules, not a full parser: the header is whatever the
browser chose to send, so the answer is a hint for the person ("Firefox on Windows"),
never something to decide on.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext as _

# Browsers, first match wins: most browsers also name the ones they grew from (Edge and
# Opera say "Chrome", Chrome says "Safari"), so the more particular names come first.
BROWSERS: tuple[tuple[str, str], ...] = (
    ("Edg", "Edge"),  # "Edg/" on the desktop, "EdgA/" on Android, "EdgiOS/" on iOS
    ("OPR/", "Opera"),
    ("Opera", "Opera"),
    ("SamsungBrowser/", "Samsung Internet"),
    ("YaBrowser/", "Yandex Browser"),
    ("Firefox/", "Firefox"),
    ("FxiOS/", "Firefox"),
    ("CriOS/", "Chrome"),
    ("Chrome/", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Safari/", "Safari"),
)
# Systems, first match wins: an iPhone says "like Mac OS X" and Android says "Linux".
# (An iPad since iPadOS 13 sends a Mac's header, and is read as a Mac.)
SYSTEMS: tuple[tuple[str, str], ...] = (
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("Windows", "Windows"),
    ("CrOS", "ChromeOS"),
    ("Macintosh", "Mac"),
    ("Mac OS X", "Mac"),
    ("Linux", "Linux"),
)


@dataclass(frozen=True)
class Device:
    """What a User-Agent header tells: the browser's and the system's names (proper
    names, the same in every language), each None when it tells nothing we know."""

    browser: str | None = None
    system: str | None = None

    def label(self) -> str:
        """In the page's language: "Firefox on Windows", "Unknown device"."""
        if self.browser and self.system:
            return str(_("%(browser)s on %(system)s", browser=self.browser, system=self.system))
        if self.system:
            return str(_("A browser on %(system)s", system=self.system))
        return self.browser or str(_("Unknown device"))

    def english(self) -> str:
        """The same in English, for a record (account events are data, not a page)."""
        if self.browser and self.system:
            return f"{self.browser} on {self.system}"
        if self.system:
            return f"A browser on {self.system}"
        return self.browser or "Unknown device"


def read_user_agent(header: str | None) -> Device:
    if not header:
        return Device()
    return Device(_first(BROWSERS, header), _first(SYSTEMS, header))


def _first(rules: tuple[tuple[str, str], ...], header: str) -> str | None:
    return next((name for mark, name in rules if mark in header), None)


def device_label(header: str | None) -> str:
    """The words for a stored User-Agent header (a template helper)."""
    return read_user_agent(header).label()
