"""Error answers: JSON on protocol paths, a friendly HTML page everywhere else."""

from __future__ import annotations

import logging

from flask import Flask, Response, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from idp.oidc.views import protocol_http_error
from idp.security import NotUtf8
from idp.web import html_page

log = logging.getLogger(__name__)
PROTOCOL_PATHS = ("/token", "/revoke", "/introspect", "/userinfo", "/jwks.json", "/.well-known/")


def _page(status: int, title: str, message: str) -> Response:
    return html_page("errors/error.html", status=status, title=title, message=message)


def init_app(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def _csrf(_error: CSRFError) -> Response:
        return _page(
            400,
            _("The form has expired"),
            _(
                "The page was open for a long time, so the form was not sent and nothing "
                "was saved. Open the page again and fill in the form once more."
            ),
        )

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        if request.path.startswith(PROTOCOL_PATHS):
            response = protocol_http_error(error)
        elif isinstance(error, NotUtf8):
            response = _page(
                400,
                _("Your browser sent text we could not read"),
                _(
                    "Nothing was saved. Go back and send the form again; if this happens again, "
                    "set your browser's text encoding to Unicode (UTF-8) or use another browser."
                ),
            )
        elif error.code == 404:
            response = _page(
                404,
                _("Page not found"),
                _("Check the address, or go back to the application you came from."),
            )
        else:
            response = _page(
                error.code or 400,
                _("The request could not be handled"),
                _("Go back to the application you came from and try again."),
            )
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            # RFC 9110 §15.5.6: a 405 must list the methods the resource allows.
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response
