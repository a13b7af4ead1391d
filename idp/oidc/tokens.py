"""Issuing, redeeming and revoking codes and tokens. Every redemption is one atomic UPDATE.

Exactly once (ARCHITECTURE.md, "Data that must never be lost or doubled"): a code or a
refresh token is consumed by `UPDATE ... SET used_at = now WHERE ... AND used_at IS NULL`;
only the transaction that changed the row may issue tokens. On PostgreSQL a racing second
UPDATE waits for the first to commit and then matches nothing; on SQLite transactions
begin IMMEDIATE and run one at a time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from base64 import urlsafe_b64encode
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.orm import Session

from idp.db import utcnow
from idp.keys import KeyRing
from idp.models import (
    AuthorizationCode,
    RefreshToken,
    RevokedAccessToken,
    TokenFamily,
    User,
)
from idp.models.users import ACTIVE
from idp.oidc.claims import USER_CLAIM_COLUMNS, ClaimSource
from idp.oidc.clients import OAuthClient
from idp.security import hash_secret, new_token
from idp.settings import Settings

ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 (the RFC 9068 "typ", not a secret)


def half_hash(value: str, alg: str) -> str:
    """at_hash / c_hash (OIDC Core §3.1.3.6): left half of the hash, base64url."""
    digest = hashlib.sha256(value.encode("ascii")).digest()  # both RS256 and ES256 use SHA-256
    return urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


# --- authorization codes -----------------------------------------------------------------


def store_authorization_code(
    session: Session,
    settings: Settings,
    *,
    client: OAuthClient,
    user_id: int,
    redirect_uri: str,
    scope: str,
    nonce: str | None,
    code_challenge: str | None,
    code_challenge_method: str | None,
    sid: str | None,
    auth_time: int,
    acr: str | None,
    amr: list[str],
) -> str:
    code = new_token(32)
    session.add(
        AuthorizationCode(
            code_hash=hash_secret(code),
            client_id=client.id,
            user_id=user_id,
            redirect_uri=redirect_uri,
            scope=scope,
            nonce=nonce,
            code_challenge=code_challenge,
            code_challenge_method=code_challenge_method,
            sid=sid,
            auth_time=auth_time,
            acr=acr,
            amr=amr,
            expires_at=utcnow() + dt.timedelta(seconds=settings.authorization_code_lifetime),
        )
    )
    return code


def find_authorization_code(session: Session, code: str) -> AuthorizationCode | None:
    return session.scalar(
        select(AuthorizationCode).where(AuthorizationCode.code_hash == hash_secret(code))
    )


def consume_authorization_code(session: Session, code: AuthorizationCode) -> bool:
    """True for the one caller that redeems the code; False if it was already used."""
    result = session.execute(
        update(AuthorizationCode)
        .where(AuthorizationCode.id == code.id, AuthorizationCode.used_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def revoke_what_code_issued(session: Session, code_id: int) -> None:
    """RFC 6749 §4.1.2: a code used twice revokes the tokens issued from it."""
    family_id = session.scalar(
        select(AuthorizationCode.family_id).where(AuthorizationCode.id == code_id)
    )
    if family_id:
        revoke_family(session, family_id, "code_reused")


# --- token families and refresh tokens --------------------------------------------------


def start_family(
    session: Session, settings: Settings, client: OAuthClient, code: AuthorizationCode
) -> TokenFamily:
    family = TokenFamily(
        id=new_token(18),
        client_id=client.id,
        user_id=code.user_id,
        scope=code.scope,
        sid=code.sid,
        auth_time=code.auth_time,
        acr=code.acr,
        amr=list(code.amr),
        expires_at=utcnow() + dt.timedelta(seconds=settings.refresh_token_absolute_lifetime),
    )
    session.add(family)
    code.family_id = family.id
    return family


def issue_refresh_token(session: Session, settings: Settings, family: TokenFamily) -> str:
    token = new_token(32)
    idle_end = utcnow() + dt.timedelta(seconds=settings.refresh_token_idle_lifetime)
    session.add(
        RefreshToken(
            token_hash=hash_secret(token),
            family_id=family.id,
            expires_at=min(idle_end, family.expires_at),
        )
    )
    return token


@dataclass
class PresentedRefreshToken:
    """A refresh token found by its hash, with its family and user (authlib's TokenMixin
    duties)."""

    row: RefreshToken
    family: TokenFamily
    user: User

    def check_client(self, client: OAuthClient) -> bool:
        return self.family.client_id == client.id

    def get_scope(self) -> str:
        return self.family.scope

    def is_usable(self, now: dt.datetime) -> bool:
        return (
            self.row.used_at is None
            and self.family.revoked_at is None
            and self.row.expires_at > now
            and self.family.expires_at > now
        )


_FIND_REFRESH_TOKEN = (
    select(RefreshToken, TokenFamily, User)
    .join(TokenFamily, TokenFamily.id == RefreshToken.family_id)
    .join(User, User.id == TokenFamily.user_id)
    .where(RefreshToken.token_hash == bindparam("hash"))
)


def find_refresh_token(session: Session, token: str) -> PresentedRefreshToken | None:
    # The user comes in the same round trip (the grant needs it to issue tokens).
    found = session.execute(_FIND_REFRESH_TOKEN, {"hash": hash_secret(token)}).first()
    return PresentedRefreshToken(found[0], found[1], found[2]) if found else None


_CONSUME_REFRESH_TOKEN = (
    update(RefreshToken)
    .where(RefreshToken.id == bindparam("token_id"), RefreshToken.used_at.is_(None))
    .values(used_at=bindparam("consumed_at"))
    .execution_options(synchronize_session=False)
)


def consume_refresh_token(session: Session, row: RefreshToken) -> bool:
    result = session.execute(_CONSUME_REFRESH_TOKEN, {"token_id": row.id, "consumed_at": utcnow()})
    return result.rowcount == 1


def revoke_family(session: Session, family_id: str, reason: str) -> None:
    now = utcnow()
    session.execute(
        update(TokenFamily)
        .where(TokenFamily.id == family_id, TokenFamily.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )


# --- JWT access tokens (RFC 9068) and ID tokens ------------------------------------------


def mint_access_token(
    keyring: KeyRing,
    settings: Settings,
    *,
    client: OAuthClient,
    subject: str,
    scope: str,
    family: TokenFamily | None = None,
) -> tuple[str, int]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "sub": subject,
        "aud": client.audience,
        "client_id": client.client_id,
        "iat": now,
        "exp": now + settings.access_token_lifetime,
        "jti": new_token(16),
        "scope": scope,
    }
    if family is not None:
        claims["auth_time"] = family.auth_time
        if family.acr:
            claims["acr"] = family.acr
        if family.amr:
            claims["amr"] = list(family.amr)
        claims["gid"] = family.id
    token = keyring.sign(claims, settings.access_token_signing_alg, typ=ACCESS_TOKEN_TYPE)
    return token, settings.access_token_lifetime


def mint_id_token(
    keyring: KeyRing,
    settings: Settings,
    *,
    client: OAuthClient,
    user_claims: dict[str, Any],
    auth_time: int,
    acr: str | None,
    amr: list[str],
    sid: str | None,
    nonce: str | None,
    access_token: str | None,
) -> str:
    now = int(time.time())
    alg = client.id_token_signed_response_alg
    claims: dict[str, Any] = dict(user_claims)
    claims.update(
        {
            "iss": settings.issuer,
            "aud": client.client_id,
            "azp": client.client_id,
            "iat": now,
            "exp": now + settings.id_token_lifetime,
            "auth_time": auth_time,
        }
    )
    if acr:
        claims["acr"] = acr
    if amr:
        claims["amr"] = list(amr)
    if sid:
        claims["sid"] = sid
    if nonce:
        claims["nonce"] = nonce
    if access_token:
        claims["at_hash"] = half_hash(access_token, alg)
    return keyring.sign(claims, alg)


@dataclass(frozen=True)
class ActiveAccessToken:
    claims: dict[str, Any]
    # The user's claim columns (a row of USER_CLAIM_COLUMNS) for a user's token.
    user: ClaimSource | None


# Built once: constructing a statement costs more than running it on the hot path.
_REVOKED_JTI = (
    select(RevokedAccessToken.jti).where(RevokedAccessToken.jti == bindparam("jti")).exists()
)
_ACCESS_TOKEN_REVOKED = select(_REVOKED_JTI)
_USER_ACCESS_TOKEN_STATE = (
    select(*USER_CLAIM_COLUMNS, User.status, TokenFamily.revoked_at,
           _REVOKED_JTI.label("jti_revoked"))
    .join(TokenFamily, TokenFamily.user_id == User.id)
    .where(TokenFamily.id == bindparam("gid"))
)


def verify_access_token(
    session: Session | Connection, keyring: KeyRing, settings: Settings, token: str
) -> ActiveAccessToken | None:
    """The token's claims if it is one of ours, unexpired and not revoked; else None.

    One query: the token's own revocation (RFC 7009) and, for a user's token, its family
    and user (a revoked family or an inactive user makes every access token inactive).
    """
    if not token or len(token) > 8192:
        return None
    verified = keyring.verify(token)
    if verified is None:
        return None
    header, claims = verified
    if header.get("typ") != ACCESS_TOKEN_TYPE or claims.get("iss") != settings.issuer:
        return None
    exp, jti, gid = claims.get("exp"), claims.get("jti"), claims.get("gid")
    if not isinstance(exp, int) or exp <= time.time() or not isinstance(jti, str):
        return None
    if gid is None:
        revoked = session.scalar(_ACCESS_TOKEN_REVOKED, {"jti": jti})
        return None if revoked else ActiveAccessToken(claims, None)
    found = session.execute(_USER_ACCESS_TOKEN_STATE, {"jti": jti, "gid": str(gid)}).first()
    if (found is None or found.revoked_at is not None or found.jti_revoked
            or found.status != ACTIVE):
        return None
    return ActiveAccessToken(claims=claims, user=found)


def revoke_access_token(session: Session, claims: dict[str, Any]) -> None:
    jti = claims.get("jti")
    if not jti or session.get(RevokedAccessToken, jti) is not None:
        return
    session.add(
        RevokedAccessToken(jti=jti, expires_at=dt.datetime.fromtimestamp(claims["exp"], dt.UTC))
    )
