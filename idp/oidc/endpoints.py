"""What the token endpoint answers to refresh_token and client_credentials requests, and
what the userinfo endpoint answers: plain functions of the request's parts and an
explicit database handle, returning an `Answer`.

One road: Flask (IdpAuthorizationServer.create_token_response, views.userinfo) and the
fast paths in front of it (idp.fastpath) call these same functions, and differ only in
how they send the Answer - as a werkzeug Response, or straight to the WSGI server. Both
add the security headers of the one policy, idp.security.security_headers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    UnauthorizedClientError,
    scope_to_list,
)

from idp import observability
from idp.clients import (
    ALL_AUTH_METHODS,
    CONFIDENTIAL_AUTH_METHODS,
    OAuthClient,
    authenticate_client,
)
from idp.db import Runner, utcnow
from idp.keys import KeyRing
from idp.oidc import tokens
from idp.oidc.claims import userinfo_claims
from idp.security import new_token
from idp.settings import Settings
from idp.token_families import revoke_family

# RFC 6749 §5.1 and §5.2: token responses and their errors are never cached.
TOKEN_HEADERS = (
    ("Content-Type", "application/json"),
    ("Cache-Control", "no-store"),
    ("Pragma", "no-cache"),
)
_TOKEN_HEADER_NAMES = frozenset(name for name, _ in TOKEN_HEADERS)
USERINFO_HEADERS = (("Content-Type", "application/json"), ("Cache-Control", "no-store"))
# The grants answered here, with the client authentication methods each accepts.
TOKEN_GRANTS = {
    "refresh_token": ALL_AUTH_METHODS,
    "client_credentials": CONFIDENTIAL_AUTH_METHODS,
}


class Answer(NamedTuple):
    """A JSON answer: its status, body and the endpoint's own headers (content type,
    caching, a challenge), never one of the security headers: those are added where the
    answer is sent, by the one policy (idp.security.security_headers)."""

    status: int
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...]

    def payload(self) -> bytes:
        return json.dumps(self.body).encode()


# --- token endpoint ------------------------------------------------------------------------


def token_answer(
    db: Runner,
    keyring: KeyRing,
    settings: Settings,
    query_client: Callable[[str], OAuthClient | None],
    authorization: str,
    form: Mapping[str, str],
    assertion: Callable[[], OAuthClient | None] | None = None,
) -> Answer:
    """The answer to a token request whose grant_type is one of TOKEN_GRANTS, each
    parameter given once; `authorization` and `assertion` as for
    clients.authenticate_client. Writes (a rotation, a family revoked) go through `db`;
    on a Session the caller commits them, whatever the answer."""
    grant_type = form["grant_type"]
    try:
        client = authenticate_client(
            query_client, authorization, form, TOKEN_GRANTS[grant_type], assertion
        )
        if not client.check_grant_type(grant_type):
            raise UnauthorizedClientError(
                f"The client is not authorized to use 'grant_type={grant_type}'"
            )
        if grant_type == "refresh_token":
            body = rotate(
                db, keyring, settings, client, form.get("refresh_token"), form.get("scope")
            )
        else:
            body = client_credentials(keyring, settings, client, form.get("scope"))
    except OAuth2Error as error:
        status, error_body, headers = error()
        # Authlib's headers are TOKEN_HEADERS, and the challenge of a 401.
        challenge = tuple(h for h in headers if h[0] not in _TOKEN_HEADER_NAMES)
        return Answer(status, dict(error_body), TOKEN_HEADERS + challenge)
    observability.count_tokens(grant_type)
    return Answer(200, body, TOKEN_HEADERS)


def rotate(
    db: Runner,
    keyring: KeyRing,
    settings: Settings,
    client: OAuthClient,
    presented_value: str | None,
    requested_scope: str | None,
) -> dict[str, Any]:
    """The refresh_token grant (RFC 6749 §6) of an authenticated client, with rotation
    (RFC 9700 §4.14.2): the presented token is consumed and its one successor stored in
    one atomic step (tokens.rotate_refresh_token), and a rotated token presented again
    revokes its whole family. Returns the token response; raises an OAuth2Error.

    The scope may be narrowed, never widened. The tokens are minted before anything is
    written: the rotation's own outcome decides whether they are answered.
    """
    if presented_value is None:
        raise InvalidRequestError("Missing 'refresh_token' in request.")
    now = utcnow()
    presented = tokens.find_refresh_token(db, presented_value)
    if presented is None:
        raise InvalidGrantError()
    if presented.row.used_at is not None and presented.family.revoked_at is None:
        # A rotated token presented again: someone holds a stolen copy. Revoke all.
        revoke_family(db, presented.family.id, "refresh_token_reused")
        observability.count_reuse("refresh_token")
        raise InvalidGrantError()
    if not presented.is_usable(now) or not presented.check_client(client):
        raise InvalidGrantError()
    if requested_scope and not set(scope_to_list(presented.family.scope)) >= set(
        scope_to_list(requested_scope)
    ):
        raise InvalidScopeError()
    if not presented.user.is_active:
        raise InvalidGrantError("The account is no longer active.")
    successor = new_token(32)
    body = tokens.user_token_response(
        keyring,
        settings,
        client=client,
        user=presented.user,
        family=presented.family,
        scope=requested_scope or presented.family.scope,
        nonce=None,
        refresh_token=successor,
        acting=presented.acting(now),
    )
    if not tokens.rotate_refresh_token(db, settings, presented, successor, now):
        # Another request used the token since it was read: a replay like any other.
        revoke_family(db, presented.family.id, "refresh_token_reused")
        observability.count_reuse("refresh_token")
        raise InvalidGrantError("The refresh token has already been used.")
    return body


def client_credentials(
    keyring: KeyRing, settings: Settings, client: OAuthClient, requested: str | None
) -> dict[str, Any]:
    """The client_credentials grant (RFC 6749 §4.4) of an authenticated client.

    Scope: what was asked for, all of which the client must be allowed (else
    invalid_scope); nothing asked for means everything the client may have but openid.
    """
    scope = (
        client.get_allowed_scope(requested)
        if requested
        else " ".join(s for s in client.allowed_scopes if s != "openid")
    )
    if requested and set(scope_to_list(requested)) - set(scope_to_list(scope) or []):
        raise InvalidScopeError("The client may not request these scopes.")
    access_token, expires_in = tokens.mint_access_token(
        keyring,
        settings,
        client=client,
        subject=client.client_id,
        scope=scope,
    )
    body: dict[str, Any] = {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": expires_in,
    }
    if scope:
        body["scope"] = scope
    return body


# --- userinfo ------------------------------------------------------------------------------

_NO_CREDENTIALS = Answer(
    401,
    {"error": "invalid_token", "error_description": "Bearer token required"},
    # RFC 6750 §3.1: no credentials at all -> just the challenge, no error code.
    (*USERINFO_HEADERS, ("WWW-Authenticate", 'Bearer realm="userinfo"')),
)
_INVALID_TOKEN = Answer(
    401,
    {"error": "invalid_token", "error_description": "The access token is not valid"},
    (*USERINFO_HEADERS, ("WWW-Authenticate", 'Bearer error="invalid_token"')),
)
_INSUFFICIENT_SCOPE = Answer(
    403,
    {"error": "insufficient_scope", "error_description": "The openid scope is required"},
    (*USERINFO_HEADERS, ("WWW-Authenticate", 'Bearer error="insufficient_scope", scope="openid"')),
)


def userinfo(db: Runner, keyring: KeyRing, settings: Settings, authorization: str) -> Answer:
    """OIDC Core §5.3: the claims about the user an access token in the Authorization
    header (RFC 6750 §2.1) was issued to, or RFC 6750's error: the token missing, not
    ours, expired or revoked (its family, its user or its membership included), or a
    client's own token; 403 without `openid`."""
    scheme, _sep, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _NO_CREDENTIALS
    active = tokens.verify_access_token(db, keyring, settings, token.strip())
    if active is None or active.user is None:
        return _INVALID_TOKEN
    claims = userinfo_claims(active.user, str(active.claims.get("scope", "")), active.acting)
    if claims is None:
        return _INSUFFICIENT_SCOPE
    return Answer(200, claims, USERINFO_HEADERS)
