"""Registering relying apps (admin side): validation rules and secret handling.

Client secrets are shown once and stored as SHA-256 hashes.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.consent.scopes import SUPPORTED_SCOPES
from idp.models import Client
from idp.security import hash_secret, new_token
from providers.urls import check_https_url

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
ID_TOKEN_ALGS = ("RS256", "ES256")
# Unreserved URL characters: safe in query strings and in HTTP Basic credentials; the
# length is that of the clients.client_id column.
CLIENT_ID_PATTERN = re.compile(r"[A-Za-z0-9._~-]{1,64}")
# Lengths of the clients.name and clients.audience columns.
MAX_NAME_LENGTH = 255


class RegistrationError(Exception):
    """Invalid client registration data; the message names the problem."""


def validate_redirect_uri(uri: str) -> str:
    """https only (plain http only on loopback, RFC 8252 §7.3), absolute, no fragment."""
    try:
        return check_https_url(uri, "redirect URI")
    except ValueError as exc:
        raise RegistrationError(str(exc)) from None


@dataclass(frozen=True)
class NewClient:
    client: Client
    # Shown once to the admin; only its hash is stored.
    secret: str | None


def add_client(
    session: Session,
    *,
    name: str,
    redirect_uris: list[str],
    auth_method: str = "client_secret_basic",
    grant_types: list[str] | None = None,
    scopes: list[str] | None = None,
    audience: str | None = None,
    first_party: bool = False,
    post_logout_redirect_uris: list[str] | None = None,
    id_token_alg: str = "RS256",  # noqa: S107  (an algorithm name, not a password)
    jwks: dict[str, Any] | None = None,
    client_id: str | None = None,
) -> NewClient:
    if not name.strip():
        raise RegistrationError("the client name is empty")
    if len(name.strip()) > MAX_NAME_LENGTH:
        raise RegistrationError(f"the client name is longer than {MAX_NAME_LENGTH} characters")
    if client_id is not None and not CLIENT_ID_PATTERN.fullmatch(client_id):
        raise RegistrationError(
            f"client id {client_id[:80]!r} must be 1 to 64 letters, digits or '-._~'"
        )
    if audience is not None and len(audience) > MAX_NAME_LENGTH:
        raise RegistrationError(f"the audience is longer than {MAX_NAME_LENGTH} characters")
    if auth_method not in AUTH_METHODS:
        raise RegistrationError(f"auth method must be one of: {', '.join(AUTH_METHODS)}")
    grant_types = grant_types or ["authorization_code", "refresh_token"]
    for grant in grant_types:
        if grant not in GRANT_TYPES:
            raise RegistrationError(f"grant type must be one of: {', '.join(GRANT_TYPES)}")
    if auth_method == "none" and "client_credentials" in grant_types:
        raise RegistrationError("a public client cannot use client_credentials")
    if "authorization_code" in grant_types and not redirect_uris:
        raise RegistrationError("an authorization_code client needs at least one redirect URI")
    scopes = scopes or ["openid", "profile", "email"]
    for scope in scopes:
        if scope not in SUPPORTED_SCOPES:
            raise RegistrationError(
                f"unknown scope {scope!r}; known: {', '.join(SUPPORTED_SCOPES)}"
            )
    if id_token_alg not in ID_TOKEN_ALGS:
        raise RegistrationError(f"ID token algorithm must be one of: {', '.join(ID_TOKEN_ALGS)}")
    if auth_method == "private_key_jwt":
        if not jwks or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
            raise RegistrationError("private_key_jwt needs a JWK Set with the client's public keys")
        if any("d" in key for key in jwks["keys"] if isinstance(key, dict)):
            raise RegistrationError("the JWK Set must hold public keys only")
    # Hex: a random id must never start with "-" (a shell would read it as an option).
    client_id = client_id or secrets.token_hex(12)
    if session.scalar(select(Client.id).where(Client.client_id == client_id)) is not None:
        raise RegistrationError(f"a client with id {client_id!r} already exists")
    secret = new_token(32) if auth_method in ("client_secret_basic", "client_secret_post") else None
    client = Client(
        client_id=client_id,
        name=name.strip(),
        secret_hash=hash_secret(secret) if secret else None,
        token_endpoint_auth_method=auth_method,
        redirect_uris=[validate_redirect_uri(u) for u in redirect_uris],
        post_logout_redirect_uris=[
            validate_redirect_uri(u) for u in (post_logout_redirect_uris or [])
        ],
        grant_types=list(dict.fromkeys(grant_types)),
        allowed_scopes=list(dict.fromkeys(scopes)),
        audience=audience or client_id,
        first_party=first_party,
        id_token_signed_response_alg=id_token_alg,
        jwks=jwks,
    )
    session.add(client)
    session.flush()
    return NewClient(client, secret)


def get_client(session: Session, client_id: str) -> Client:
    client = session.scalar(select(Client).where(Client.client_id == client_id))
    if client is None:
        raise RegistrationError(f"no client with id {client_id!r}")
    return client


def rotate_secret(session: Session, client_id: str) -> str:
    client = get_client(session, client_id)
    if client.token_endpoint_auth_method not in ("client_secret_basic", "client_secret_post"):
        raise RegistrationError(
            f"client {client_id!r} authenticates with {client.token_endpoint_auth_method}, "
            "not a secret"
        )
    secret = new_token(32)
    client.secret_hash = hash_secret(secret)
    return secret


def remove_client(session: Session, client_id: str) -> None:
    session.delete(get_client(session, client_id))


def describe(client: Client) -> dict[str, Any]:
    """The client for `idp clients show/list` (never the secret hash)."""
    return {
        "client_id": client.client_id,
        "name": client.name,
        "auth_method": client.token_endpoint_auth_method,
        "redirect_uris": client.redirect_uris,
        "post_logout_redirect_uris": client.post_logout_redirect_uris,
        "grant_types": client.grant_types,
        "scopes": client.allowed_scopes,
        "audience": client.audience,
        "first_party": client.first_party,
        "id_token_alg": client.id_token_signed_response_alg,
        "jwks": json.dumps(client.jwks) if client.jwks else None,
        "created_at": client.created_at.isoformat(timespec="seconds"),
    }
