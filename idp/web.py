"""Small helpers every page view shares (one place, so the blueprints stay alike)."""

from __future__ import annotations

from flask import Response, current_app, render_template

from idp.settings import Settings


def app_settings() -> Settings:
    """The running app's settings."""
    settings: Settings = current_app.config["IDP_SETTINGS"]
    return settings


def html_page(template: str, status: int = 200, **context: object) -> Response:
    """A rendered template as an HTML response with this status."""
    return Response(render_template(template, **context), status=status, mimetype="text/html")
