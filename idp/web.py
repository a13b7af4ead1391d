"""Small helpers every page view shares (one place, so the blueprints stay alike)."""

from __future__ import annotations

from flask import Response, current_app, render_template

from idp.settings import Settings


def app_settings() -> Settings:
    """The running app's settings."""
    settings: Settings = current_app.config["IDP_SETTINGS"]
    return settings


def html_page(template: str, status: int = 200, **context: object) -> Response:
    """The one way a page is answered: the template rendered as text/html with this status.
    The security headers of a page (idp.security.security_headers) are added to every
    HTML answer by the app's after-request hook."""
    return Response(render_template(template, **context), status=status, mimetype="text/html")


def local_path(target: str | None) -> str:
    """`target` when it is a path on this site ("/login?interaction=…"), else "/": never a
    way to send the browser elsewhere (no scheme, no host, no "//" or "\\" that browsers
    read as one, no control characters they would strip)."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target)
        or len(target) > 2048
    ):
        return "/"
    return target
