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
from typing import Any, NamedTuple

from authlib.oauth2.rfc6749 import scope_to_list
from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from idp import access_history
from idp.access_history import Kind, Origin
from idp.clients import OAuthClient
from idp.db import Runner, atomic, rowcount, utcnow
from idp.keys import KeyRing
from idp.memberships.acting import Acting, acting_from_columns
from idp.memberships.rights import scopes_allowed_by
from idp.models import (
    AccountEvent,
    AuthorizationCode,
    BrowserSession,
    Customer,
    Membership,
    RefreshToken,
    RevokedAccessToken,
    TokenFamily,
    User,
)
from idp.models.users import ACTIVE
from idp.oidc.claims import USER_CLAIM_COLUMNS, ClaimSource, user_claims
from idp.security import hash_secret, new_token
from idp.settings import Settings
from idp.token_families import revoke_family

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
    customer_id: int | None,
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
            customer_id=customer_id,
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
    return rowcount(result) == 1


def revoke_what_code_issued(session: Session, code_id: int) -> None:
    """RFC 6749 §4.1.2: a code used twice revokes the tokens issued from it."""
    family_id = session.scalar(
        select(AuthorizationCode.family_id).where(AuthorizationCode.id == code_id)
    )
    if family_id:
        revoke_family(session, family_id, "code_reused")


def record_issuance(
    session: Session,
    code: AuthorizationCode,
    client: OAuthClient,
    acting: Acting | None,
    token_request_ip: str,
) -> AccountEvent:
    """A code redeemed, in the person's access history ("Application received tokens",
    issue 15). Refresh rotations are not recorded (one every few minutes per app would
    bury the logins, and that path is kept to its two statements: issue 18).

    The /token call comes from the application's server, not from the person: the event
    takes the address and browser of the login the code came from (its browser session,
    by `sid`), read inside the one INSERT, and only falls back to the token request's
    address when that session is gone (logged out since)."""
    event = access_history.record(
        session,
        Kind.TOKENS_ISSUED,
        code.user_id,
        Origin(token_request_ip),  # the app's HTTP library is not the person's browser
        method=access_history.login_method(code.amr),
        client=client,
        customer=acting,
        details={"scope": code.scope},
    )
    if code.sid:
        login = select(BrowserSession).where(BrowserSession.sid == code.sid)
        # SQL expressions as values: evaluated by the INSERT itself, no extra round trip.
        event.ip = func.coalesce(
            login.with_only_columns(BrowserSession.ip).scalar_subquery(), event.ip
        )
        event.user_agent = login.with_only_columns(BrowserSession.user_agent).scalar_subquery()
    return event


# --- token families and refresh tokens --------------------------------------------------


def start_family(
    session: Session, settings: Settings, client: OAuthClient, code: AuthorizationCode
) -> TokenFamily:
    family = TokenFamily(
        id=new_token(18),
        client_id=client.id,
        user_id=code.user_id,
        customer_id=code.customer_id,
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


def refresh_token_expiry(
    settings: Settings, family_expires_at: dt.datetime, now: dt.datetime
) -> dt.datetime:
    """The idle lifetime from now, never past the family's absolute cap."""
    return min(now + dt.timedelta(seconds=settings.refresh_token_idle_lifetime), family_expires_at)


def issue_refresh_token(session: Session, settings: Settings, family: TokenFamily) -> str:
    """The first refresh token of a new family (rotation: rotate_refresh_token)."""
    token = new_token(32)
    session.add(
        RefreshToken(
            token_hash=hash_secret(token),
            family_id=family.id,
            expires_at=refresh_token_expiry(settings, family.expires_at, utcnow()),
        )
    )
    return token


class _TokenFacts(NamedTuple):
    id: int
    family_id: str
    created_at: dt.datetime
    expires_at: dt.datetime
    used_at: dt.datetime | None


class _FamilyFacts(NamedTuple):
    id: str
    client_id: int
    user_id: int
    customer_id: int | None
    scope: str
    sid: str | None
    auth_time: int
    acr: str | None
    amr: list[str]
    expires_at: dt.datetime
    revoked_at: dt.datetime | None


class _UserFacts(NamedTuple):
    """The user's claim columns (a ClaimSource) and status."""

    subject: str
    name: str
    email_display: str
    email_verified: bool
    phone: str | None
    status: str

    @property
    def is_active(self) -> bool:
        return self.status == ACTIVE


class _MembershipFacts(NamedTuple):
    """The family's customer and the user's membership in it (all None without one)."""

    customer_number: str | None
    customer_name: str | None
    role: str | None
    rights: list[str] | None
    state: str | None
    valid_from: dt.datetime | None
    valid_until: dt.datetime | None


def _acting(customer_id: int | None, facts: Any, now: dt.datetime) -> Acting | None:
    return acting_from_columns(
        customer_id,
        facts.customer_number,
        facts.customer_name,
        facts.role,
        facts.rights,
        facts.state,
        facts.valid_from,
        facts.valid_until,
        now,
    )


@dataclass(frozen=True)
class PresentedRefreshToken:
    """A refresh token found by its hash, with its family, user and membership (authlib's
    TokenMixin duties). The rules for using one live here, for the refresh_token grant
    (idp.oidc.endpoints.rotate) and introspection alike."""

    row: _TokenFacts
    family: _FamilyFacts
    user: _UserFacts
    membership: _MembershipFacts

    def acting(self, now: dt.datetime) -> Acting | None:
        return _acting(self.family.customer_id, self.membership, now)

    def acts_as_granted(self, now: dt.datetime) -> bool:
        """A family bound to a customer lives only while the membership does (removed,
        expired, or past its end date: invalid_grant, inactive)."""
        return self.family.customer_id is None or self.acting(now) is not None

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
            and self.acts_as_granted(now)
        )


_TOKEN_COLUMNS = (
    RefreshToken.id,
    RefreshToken.family_id,
    RefreshToken.created_at,
    RefreshToken.expires_at,
    RefreshToken.used_at,
)
_FAMILY_COLUMNS = (
    TokenFamily.id,
    TokenFamily.client_id,
    TokenFamily.user_id,
    TokenFamily.customer_id,
    TokenFamily.scope,
    TokenFamily.sid,
    TokenFamily.auth_time,
    TokenFamily.acr,
    TokenFamily.amr,
    TokenFamily.expires_at,
    TokenFamily.revoked_at,
)
# The acting context (idp.memberships.acting), outer-joined on the family's customer.
_MEMBERSHIP_COLUMNS = (
    Customer.number.label("customer_number"),
    Customer.name.label("customer_name"),
    Membership.role,
    Membership.rights,
    Membership.state,
    Membership.valid_from,
    Membership.valid_until,
)
_N_TOKEN, _N_FAMILY = len(_TOKEN_COLUMNS), len(_FAMILY_COLUMNS)
_N_USER = len(USER_CLAIM_COLUMNS) + 1


def _with_membership(statement: Any) -> Any:
    return statement.outerjoin(Customer, Customer.id == TokenFamily.customer_id).outerjoin(
        Membership,
        (Membership.customer_id == TokenFamily.customer_id)
        & (Membership.user_id == TokenFamily.user_id),
    )


# Columns, not ORM objects: the token, its family, its user and the membership it acts
# through in one round trip, without the identity map (idp.fastpath runs it on a plain
# connection).
_FIND_REFRESH_TOKEN = _with_membership(
    select(
        *_TOKEN_COLUMNS, *_FAMILY_COLUMNS, *USER_CLAIM_COLUMNS, User.status, *_MEMBERSHIP_COLUMNS
    )
    .join(TokenFamily, TokenFamily.id == RefreshToken.family_id)
    .join(User, User.id == TokenFamily.user_id)
).where(RefreshToken.token_hash == bindparam("hash"))


def find_refresh_token(db: Runner, token: object) -> PresentedRefreshToken | None:
    if not isinstance(token, str) or not token or len(token) > 512:
        return None
    found = db.execute(_FIND_REFRESH_TOKEN, {"hash": hash_secret(token)}).first()
    if found is None:
        return None
    users_end = _N_TOKEN + _N_FAMILY + _N_USER
    return PresentedRefreshToken(
        _TokenFacts._make(found[:_N_TOKEN]),
        _FamilyFacts._make(found[_N_TOKEN : _N_TOKEN + _N_FAMILY]),
        _UserFacts._make(found[_N_TOKEN + _N_FAMILY : users_end]),
        _MembershipFacts._make(found[users_end:]),
    )


_refresh_tokens: Table = RefreshToken.__table__  # type: ignore[assignment]
_CONSUME_REFRESH_TOKEN = (
    update(_refresh_tokens)
    .where(_refresh_tokens.c.id == bindparam("token_id"), _refresh_tokens.c.used_at.is_(None))
    .values(used_at=bindparam("now", type_=_refresh_tokens.c.used_at.type))
)
# Parameter names differ from the column names on purpose: SQLAlchemy would take a
# parameter named like a column as one more value to SET.
_STORE_SUCCESSOR = insert(_refresh_tokens).values(
    token_hash=bindparam("hash"),
    family_id=bindparam("family"),
    created_at=bindparam("now", type_=_refresh_tokens.c.created_at.type),
    expires_at=bindparam("expires", type_=_refresh_tokens.c.expires_at.type),
)
# PostgreSQL: both in one statement (a data-modifying CTE), so that on a connection in
# autocommit it is one round trip and one transaction. The successor is stored only if
# the UPDATE consumed the presented token.
_consumed = (
    update(_refresh_tokens)
    .where(_refresh_tokens.c.id == bindparam("token_id"), _refresh_tokens.c.used_at.is_(None))
    .values(used_at=bindparam("now", type_=_refresh_tokens.c.used_at.type))
    .returning(_refresh_tokens.c.family_id)
    .cte("consumed")
)
_ROTATE_IN_ONE_STATEMENT = (
    insert(_refresh_tokens)
    .from_select(
        ["token_hash", "family_id", "created_at", "expires_at"],
        select(
            bindparam("hash", type_=_refresh_tokens.c.token_hash.type),
            _consumed.c.family_id,
            bindparam("now", type_=_refresh_tokens.c.created_at.type),
            bindparam("expires", type_=_refresh_tokens.c.expires_at.type),
        ),
    )
    .returning(_refresh_tokens.c.id)
)


def rotate_refresh_token(
    db: Runner,
    settings: Settings,
    presented: PresentedRefreshToken,
    successor: str,
    now: dt.datetime,
) -> bool:
    """Consume the presented token and store its successor (the value `successor`),
    atomically. True for the one caller that consumed it; False if it was already used
    (the caller must then revoke the family and answer invalid_grant).

    On PostgreSQL this is one statement, atomic even on a connection in autocommit; on
    SQLite it is two, in one transaction.
    """
    params = {
        "token_id": presented.row.id,
        "now": now,
        "hash": hash_secret(successor),
        "family": presented.family.id,
        "expires": refresh_token_expiry(settings, presented.family.expires_at, now),
    }
    dialect = db.get_bind().dialect if isinstance(db, Session) else db.dialect
    if dialect.name == "postgresql":
        return db.execute(_ROTATE_IN_ONE_STATEMENT, params).first() is not None
    with atomic(db):
        if rowcount(db.execute(_CONSUME_REFRESH_TOKEN, params)) != 1:
            return False
        db.execute(_STORE_SUCCESSOR, params)
    return True


# --- JWT access tokens (RFC 9068) and ID tokens ------------------------------------------


def mint_access_token(
    keyring: KeyRing,
    settings: Settings,
    *,
    client: OAuthClient,
    subject: str,
    scope: str,
    family: TokenFamily | None = None,
    acting: Acting | None = None,
) -> tuple[str, int]:
    now = int(time.time())
    audiences = client.audiences
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "sub": subject,
        "aud": audiences[0] if len(audiences) == 1 else list(audiences),
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
    if acting is not None:
        claims.update(acting.access_token_claims())
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


def user_token_response(
    keyring: KeyRing,
    settings: Settings,
    *,
    client: OAuthClient,
    user: ClaimSource,
    family: Any,
    scope: str,
    nonce: str | None,
    refresh_token: str | None,
    acting: Acting | None,
) -> dict[str, Any]:
    """The token response of a user's grant (authorization_code and refresh_token):
    access token, the refresh token if one was issued, and an ID token when `openid` was
    granted (also on refresh: OIDC Core §12.2 allows it, and relying apps use it to see
    the login facts again). Both carry the acting context; the scope is cut to what the
    membership's rights allow now (the granted `scope` is always stated, RFC 6749 §5.1)."""
    scope = " ".join(scopes_allowed_by(scope_to_list(scope) or [], acting.rights if acting else ()))
    access_token, expires_in = mint_access_token(
        keyring,
        settings,
        client=client,
        subject=user.subject,
        scope=scope,
        family=family,
        acting=acting,
    )
    body: dict[str, Any] = {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "scope": scope,
    }
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    if "openid" in scope_to_list(scope):
        body["id_token"] = mint_id_token(
            keyring,
            settings,
            client=client,
            user_claims=user_claims(user, scope, acting),
            auth_time=family.auth_time,
            acr=family.acr,
            amr=list(family.amr),
            sid=family.sid,
            nonce=nonce,
            access_token=access_token,
        )
    return body


@dataclass(frozen=True)
class ActiveAccessToken:
    claims: dict[str, Any]
    # The user's claim columns (a row of USER_CLAIM_COLUMNS) for a user's token.
    user: ClaimSource | None
    # Whom the user acts for (None: a client's own token, or a user without a customer).
    acting: Acting | None = None


# Built once: constructing a statement costs more than running it on the hot path.
_REVOKED_JTI = (
    select(RevokedAccessToken.jti).where(RevokedAccessToken.jti == bindparam("jti")).exists()
)
_ACCESS_TOKEN_REVOKED = select(_REVOKED_JTI)
_USER_ACCESS_TOKEN_STATE = _with_membership(
    select(
        *USER_CLAIM_COLUMNS,
        User.status,
        TokenFamily.revoked_at,
        TokenFamily.customer_id,
        _REVOKED_JTI.label("jti_revoked"),
        *_MEMBERSHIP_COLUMNS,
    ).join(TokenFamily, TokenFamily.user_id == User.id)
).where(TokenFamily.id == bindparam("gid"))


def verify_access_token(
    session: Runner, keyring: KeyRing, settings: Settings, token: str
) -> ActiveAccessToken | None:
    """The token's claims if it is one of ours, unexpired and not revoked; else None.

    One query: the token's own revocation (RFC 7009) and, for a user's token, its family,
    user and membership (a revoked family, an inactive user or a membership that no
    longer allows acting for the customer makes every access token inactive).
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
    if found is None or found.revoked_at is not None or found.jti_revoked or found.status != ACTIVE:
        return None
    acting = _acting(found.customer_id, found, utcnow())
    if found.customer_id is not None and acting is None:
        return None
    return ActiveAccessToken(claims=claims, user=found, acting=acting)


def revoke_access_token(session: Session, claims: dict[str, Any]) -> None:
    jti = claims.get("jti")
    if not jti or session.get(RevokedAccessToken, jti) is not None:
        return
    session.add(
        RevokedAccessToken(jti=jti, expires_at=dt.datetime.fromtimestamp(claims["exp"], dt.UTC))
    )
