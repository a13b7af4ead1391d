"""The registered client (relying app) as Authlib sees it: an immutable snapshot of a
`Client` row, and how a client authenticates at the token, revocation and introspection
endpoints. Shared: the protocol authenticates it, the login and consent pages show its
name.

Snapshots are cached per process for at most CLIENT_CACHE_TTL seconds (see find_client).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc6749 import ClientMixin, InvalidClientError, scope_to_list
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from sqlalchemy import bindparam, event, select
from sqlalchemy.orm import Session, object_session

from idp.models import Client
from idp.security import secret_matches

CONFIDENTIAL_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
ALL_AUTH_METHODS = [*CONFIDENTIAL_AUTH_METHODS, "none"]


@dataclass(frozen=True)
class OAuthClient(ClientMixin):
    id: int
    client_id: str
    name: str
    secret_hash: str | None
    token_endpoint_auth_method: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    allowed_scopes: tuple[str, ...]
    audience: str
    first_party: bool
    id_token_signed_response_alg: str
    jwks: dict[str, Any] | None

    @classmethod
    def from_row(cls, row: Client) -> OAuthClient:
        return cls(
            id=row.id,
            client_id=row.client_id,
            name=row.name,
            secret_hash=row.secret_hash,
            token_endpoint_auth_method=row.token_endpoint_auth_method,
            redirect_uris=tuple(row.redirect_uris),
            post_logout_redirect_uris=tuple(row.post_logout_redirect_uris),
            grant_types=tuple(row.grant_types),
            allowed_scopes=tuple(row.allowed_scopes),
            audience=row.audience,
            first_party=row.first_party,
            id_token_signed_response_alg=row.id_token_signed_response_alg,
            jwks=row.jwks,
        )

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"  # noqa: S105 (a method name)

    @property
    def audiences(self) -> tuple[str, ...]:
        """The resource servers its access tokens are for: `audience` holds one, or
        several separated by spaces (a portal calling the invoice and meter services)."""
        return tuple(self.audience.split()) or (self.client_id,)

    # --- authlib ClientMixin ---------------------------------------------------------
    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        # OIDC Core §3.1.2.1: redirect_uri is required; we never guess one.
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        allowed = set(self.allowed_scopes)
        return " ".join(s for s in dict.fromkeys(scope_to_list(scope)) if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # Exact string comparison (OAuth 2.0 Security BCP, RFC 9700 §4.1.3).
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secret_matches(client_secret, self.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


# Client snapshots found in the database, by client_id, with the monotonic time they were
# read. Every request to /token, /revoke and /introspect looks its client up; without this
# cache that is one query (and, on SQLite, one write-locking transaction) per request.
#
# How stale a snapshot may be: at most CLIENT_CACHE_TTL seconds (deliberately a constant,
# not a setting, and never more than 5 s). In this process every insert, update or delete
# of a Client row through the ORM (`idp clients add/remove/rotate-secret`, the registry)
# empties the cache at once; another process or instance sees such a change (a rotated
# secret, a removed client) within CLIENT_CACHE_TTL seconds. Unknown client ids are never
# cached, so a new client works at once everywhere and random ids cannot fill the cache.
CLIENT_CACHE_TTL = 5.0
_CACHE_MAX = 1024
# Keyed by (database, client_id): tests and tools may run several apps in one process.
_cache: dict[tuple[Any, str], tuple[float, OAuthClient]] = {}


_FIND_CLIENT = select(Client).where(Client.client_id == bindparam("client_id"))


def cached_client(bind: Any, client_id: str) -> OAuthClient | None:
    """The cached snapshot if it is fresh enough (no database access at all)."""
    hit = _cache.get((bind, client_id))
    if hit is not None and time.monotonic() - hit[0] < CLIENT_CACHE_TTL:
        return hit[1]
    return None


def find_client(session: Session, client_id: object) -> OAuthClient | None:
    # Ids come from forms and from HTTP Basic credentials (which the request-wide NUL
    # guard does not see); PostgreSQL refuses NUL even in a WHERE clause.
    if (
        not isinstance(client_id, str)
        or not client_id
        or len(client_id) > 64
        or ("\x00" in client_id)
    ):
        return None
    cached = cached_client(session.bind, client_id)
    if cached is not None:
        return cached
    key = (session.bind, client_id)
    now = time.monotonic()
    row = session.scalar(_FIND_CLIENT, {"client_id": client_id})
    if row is None:
        _cache.pop(key, None)
        return None
    snapshot = OAuthClient.from_row(row)
    if len(_cache) >= _CACHE_MAX:
        _cache.clear()
    _cache[key] = (now, snapshot)
    return snapshot


@event.listens_for(Client, "after_insert")
@event.listens_for(Client, "after_update")
@event.listens_for(Client, "after_delete")
def _client_changed(_mapper: Any, _connection: Any, target: Client) -> None:
    # Cleared at the flush, and again at the commit: a request of another thread may have
    # read (and cached) the old row in between.
    _cache.clear()
    session = object_session(target)
    if session is not None:
        session.info[_CHANGED] = True


_CHANGED = "idp.clients_changed"


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        _cache.clear()


# --- client authentication ---------------------------------------------------------------


def authenticate_client(
    query_client: Callable[[str], OAuthClient | None],
    authorization: str,
    form: Mapping[str, str],
    methods: list[str],
    assertion: Callable[[], OAuthClient | None] | None = None,
) -> OAuthClient:
    """The client of a request to the token, revocation or introspection endpoint,
    authenticated by the first of `methods` its credentials are for and it is registered
    to use (RFC 6749 §2.3, OIDC Core §9), in Authlib's order and with its errors.

    `authorization` is the Authorization header (client_secret_basic), `form` the body
    (client_secret_post, none); `assertion` checks a private_key_jwt assertion (RFC 7523,
    idp.oidc.server.PrivateKeyJWT; without it that method finds no client). Raises
    InvalidClientError, always with 401: Authlib answers 400 for an unknown client_id in
    the form but 401 for a wrong secret, and one status tells the client less.
    """
    try:
        return _authenticate(query_client, authorization, form, methods, assertion)
    except InvalidClientError as error:
        error.status_code = 401
        raise
    except ValueError as exc:
        # Authlib's Basic parsing lets undecodable credentials through as ValueError
        # ("Basic " alone, bytes that are not UTF-8 inside the base64).
        raise InvalidClientError(
            status_code=401, description="Malformed client credentials."
        ) from exc


def _authenticate(
    query_client: Callable[[str], OAuthClient | None],
    authorization: str,
    form: Mapping[str, str],
    methods: list[str],
    assertion: Callable[[], OAuthClient | None] | None,
) -> OAuthClient:
    for method in methods:
        if method == "private_key_jwt":
            client = assertion() if assertion is not None else None
        elif method == "none":
            client_id = form.get("client_id")
            if not client_id or form.get("client_secret"):
                continue
            client = _known_client(query_client, client_id)
        else:
            if method == "client_secret_basic":
                client_id, secret = extract_basic_authorization({"Authorization": authorization})
            else:
                client_id, secret = form.get("client_id"), form.get("client_secret")
            if not client_id or not secret:
                continue
            client = _known_client(query_client, client_id)
            if not client.check_client_secret(secret):
                continue
        if client is not None and client.check_endpoint_auth_method(method, "token"):
            return client
    raise InvalidClientError(description=f"The client cannot authenticate with methods: {methods}")


def _known_client(query_client: Callable[[str], OAuthClient | None], client_id: str) -> OAuthClient:
    client = query_client(client_id)
    if client is None:
        raise InvalidClientError(description="The client does not exist on this server.")
    return client
