"""Example relying apps (resource servers) of the IdP: the invoice service and the
meter-reading service. They trust nothing but the access token, which
`examples.resource_server` validates (the one place that does); this module holds what
both services share besides: a Flask app that answers JSON (errors too) with
`GET /health`, and the `python -m` entry point.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException


def service_app(import_name: str) -> Flask:
    """A Flask app whose every answer is JSON and never cached, with `GET /health`."""
    app = Flask(import_name)

    @app.get("/health")
    def health() -> Response:
        return jsonify(status="ok")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        error = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed"}
        response = jsonify(
            error=error.get(exc.code or 500, "error"), error_description=exc.description
        )
        response.status_code = exc.code or 500
        return response

    @app.after_request
    def no_store(response: Response) -> Response:
        response.headers["Cache-Control"] = "no-store"  # a customer's data, per token
        return response

    return app


def run(
    create_app: Callable[[str, str, str | None], Flask], default_audience: str, default_port: int
) -> None:
    """Serve a service with Flask's development server, configured from the environment:
    IDP_ISSUER (default http://127.0.0.1:5000), AUDIENCE, PORT, HOST (default 127.0.0.1),
    JWKS_URL (default: discovery's jwks_uri)."""
    app = create_app(
        os.environ.get("IDP_ISSUER", "http://127.0.0.1:5000"),
        os.environ.get("AUDIENCE", default_audience),
        os.environ.get("JWKS_URL") or None,
    )
    app.run(
        host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", default_port))
    )
