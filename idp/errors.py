"""Error answers: JSON on protocol paths, a friendly HTML page everywhere else.

The database unreachable or too slow (idp.db.is_outage: gone, frozen, a timeout, the pool
exhausted) is answered 503 with Retry-After, not 500: JSON temporarily_unavailable on the
protocol paths (the fast paths answer the same, outage_answer), a page for people.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from idp.db import RETRY_AFTER_SECONDS, DatabaseUnavailable, give_up_database, is_outage
from idp.oidc.endpoints import TOKEN_HEADERS, Answer
from idp.oidc.server import answer_response
from idp.oidc.views import protocol_http_error
from idp.security import NotUtf8
from idp.web import html_page, local_path

log = logging.getLogger(__name__)
PROTOCOL_PATHS = ("/token", "/revoke", "/introspect", "/userinfo", "/jwks.json", "/.well-known/")


def _page(status: int, title: str, message: str) -> Response:
    return html_page("errors/error.html", status=status, title=title, message=message)


def outage_answer() -> Answer:
    """The protocol endpoints' answer while the database is unavailable. RFC 6749 names
    temporarily_unavailable for this (§4.1.2.1); the token, introspection and revocation
    endpoints' own lists (§5.2, RFC 7662 §2.3, RFC 7009 §2.2.1) hold no code for it, and
    each of theirs blames the request (invalid_grant would make an app drop a refresh
    token that is still good), so the same code, with 503 and Retry-After, which RFC 7009
    §2.2.1 spells out: the token still exists, try again later."""
    return Answer(
        503,
        {
            "error": "temporarily_unavailable",
            "error_description": "The service is briefly unavailable; try again shortly.",
        },
        (*TOKEN_HEADERS, ("Retry-After", str(RETRY_AFTER_SECONDS))),
    )


def _outage_page() -> Response:
    # "Try again" repeats a page's GET; after a form (POST) it opens the page anew.
    retry = local_path(request.full_path if request.query_string else request.path)
    response = html_page("errors/unavailable.html", status=503, retry=retry)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response.headers["Cache-Control"] = "no-store"
    return response


def _database_error(error: Exception) -> Response:
    if not is_outage(error):
        raise error  # a wrong statement is a bug: Flask's 500 (logged with its traceback)
    # The driver's message only: SQLAlchemy's names the statement's parameters.
    reason = getattr(error, "orig", None) or type(error).__name__
    log.warning("database unavailable on %s %s: %s", request.method, request.path, reason)
    # Nothing more of this request may wait for the database (the page's language, the
    # bookkeeping written after the answer).
    give_up_database()
    if request.path.startswith(PROTOCOL_PATHS):
        return answer_response(outage_answer())
    return _outage_page()


def init_app(app: Flask) -> None:
    # OperationalError and InterfaceError are DBAPIErrors; the pool's TimeoutError and
    # DatabaseUnavailable (the request met the outage already) are not.
    app.register_error_handler(DBAPIError, _database_error)
    app.register_error_handler(PoolTimeoutError, _database_error)
    app.register_error_handler(DatabaseUnavailable, _database_error)

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
