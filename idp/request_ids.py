"""The request id: one short value per request that the access log line, the
X-Request-ID answer header and the error pages share, so that support can find the line
a person quotes. Also the other environ keys the access log reads (what Flask knows
about a request that the WSGI wrapper in idp.observability cannot see)."""

from __future__ import annotations

import re
import secrets

# Set by idp.observability before anything else runs; read by anyone who shows the id.
ENVIRON_KEY = "idp.request_id"
# The route (a URL rule like "/upstream/callback/<provider>", never a path with values in
# it) and the client id of a protocol request, set where they become known.
ROUTE_KEY = "idp.route"
CLIENT_ID_KEY = "idp.client_id"
HEADER = "X-Request-ID"

# An incoming id (a balancer's or the relying app's) is kept only if it cannot break a log
# line or a header, nor flood them.
_SANE = re.compile(r"[A-Za-z0-9._-]{1,64}")


def new_request_id() -> str:
    """16 random bytes, url-safe (22 characters)."""
    return secrets.token_urlsafe(16)


def accept(incoming: str | None) -> str:
    """The incoming X-Request-ID when it is at most 64 characters of [A-Za-z0-9._-], else
    a new id."""
    if incoming and _SANE.fullmatch(incoming):
        return incoming
    return new_request_id()


def note_client(environ: dict[str, object], client_id: str | None) -> None:
    """Records a registered client's id for the access log line of this request (the
    id of a client found in the database, so never made up by the caller)."""
    if client_id:
        environ[CLIENT_ID_KEY] = client_id
