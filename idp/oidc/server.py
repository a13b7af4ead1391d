"""The Authlib authorization server, built per app (never a module global), and its grants.

Authlib validates authorization-code, revocation and introspection requests; the hooks
below store and redeem codes and tokens through idp.oidc.tokens, where the exactly-once
rules live. Clients authenticate through idp.clients.authenticate_client; the
refresh_token and client_credentials grants are answered by idp.oidc.endpoints, the one
road the fast paths (idp.fastpath) take too.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

from authlib.oauth2 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6749 import (
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    UnsupportedTokenTypeError,
    grants,
)
from authlib.oauth2.rfc6749.requests import OAuth2Payload
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Response, has_request_context
from flask import request as flask_request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from idp import observability
from idp.access_history import Origin
from idp.clients import (
    ALL_AUTH_METHODS,
    CONFIDENTIAL_AUTH_METHODS,
    OAuthClient,
    authenticate_client,
    find_client,
)
from idp.db import db_session, utcnow
from idp.keys import KeyRing
from idp.memberships.acting import acting_for
from idp.models import AuthorizationCode, Client, UsedClientAssertion, User
from idp.oidc import endpoints, tokens
from idp.request_ids import note_client
from idp.settings import Settings
from idp.token_families import revoke_family

ASSERTION_ALGS = ["RS256", "ES256"]
MAX_ASSERTION_LIFETIME = 24 * 3600
# The token-request parameters we read (extensions such as RFC 8707 `resource` may repeat).
TOKEN_PARAMS = (
    "grant_type",
    "code",
    "redirect_uri",
    "code_verifier",
    "refresh_token",
    "scope",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
)


def answer_response(answer: endpoints.Answer) -> Response:
    """Flask's way of sending an Answer of idp.oidc.endpoints (the fast paths have theirs);
    the after-request hook adds the security headers."""
    return Response(answer.payload(), status=answer.status, headers=list(answer.headers))


class ParamsPayload(OAuth2Payload):
    """Request parameters from a MultiDict (the live request, or a stored interaction)."""

    def __init__(self, params: MultiDict[str, str]) -> None:
        self._params = params

    @property
    def data(self) -> MultiDict[str, str]:
        return self._params

    @property
    def datalist(self) -> dict[str, list[str]]:
        return {k: self._params.getlist(k) for k in self._params}


class IdpRequest(OAuth2Request):
    """An OAuth2Request whose URI is the public one (the IdP may sit behind a proxy)."""

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Any,
        params: MultiDict[str, str],
        form: MultiDict[str, str],
    ) -> None:
        # Headers are set after the base __init__: its `headers or {}` would make werkzeug
        # walk the whole WSGI environ on every request just to test truthiness.
        super().__init__(method=method, uri=uri, headers=None)
        self.headers = headers
        self.payload = ParamsPayload(params)
        self._form = form

    @property
    def args(self) -> MultiDict[str, str]:
        return self.payload.data

    @property
    def form(self) -> MultiDict[str, str]:
        return self._form


class IdpAuthorizationServer(AuthorizationServer):
    def __init__(self, settings: Settings, keyring: KeyRing) -> None:
        super().__init__(scopes_supported=None)
        self.settings = settings
        self.keyring = keyring
        self.private_key_jwt = PrivateKeyJWT(self)

    @property
    def session(self) -> Session:
        return db_session()

    def query_client(self, client_id: str | None) -> OAuthClient | None:
        client = find_client(self.session, client_id)
        if client is not None and has_request_context():
            note_client(flask_request.environ, client.client_id)  # for the access line
        return client

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Tokens are stored by the grants themselves (refresh tokens as hashes)."""

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        return IdpRequest(
            flask_request.method,
            self.settings.issuer + flask_request.path,
            flask_request.headers,
            flask_request.values,
            flask_request.form,
        )

    def request_from_params(self, params: MultiDict[str, str]) -> IdpRequest:
        """Rebuild a paused authorization request from its stored parameters."""
        return IdpRequest("GET", self.settings.issuer + "/authorize", {}, params, MultiDict())

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError("no JSON endpoints")

    def handle_response(self, status: int, body: Any, headers: Any) -> Response:
        if isinstance(body, dict):
            body = json.dumps(body)
        response = Response(body, status=status, headers=headers)
        if status != 302:
            # RFC 6749 §5.1: token responses (and errors) must not be cached.
            response.headers["Cache-Control"] = "no-store"
            response.headers["Pragma"] = "no-cache"
        return response

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No signal receivers."""

    def authenticate_client(
        self, request: OAuth2Request, methods: list[str], endpoint: str = "token"
    ) -> OAuthClient:
        return authenticate_client(
            self.query_client,
            request.headers.get("Authorization", ""),
            request.form,
            methods,
            lambda: self.private_key_jwt(self.query_client, request),
        )

    def create_token_response(self, request: Any = None) -> Response:
        form = flask_request.form
        # RFC 6749 §3.2: parameters must not repeat; §5.2: a missing grant_type is a
        # missing parameter (invalid_request), not an unsupported grant type.
        if any(len(form.getlist(name)) > 1 for name in TOKEN_PARAMS):
            error = InvalidRequestError("A parameter is repeated.")
        elif not form.get("grant_type"):
            error = InvalidRequestError("Missing 'grant_type' in request.")
        elif form["grant_type"] in endpoints.TOKEN_GRANTS:
            return self._token_grant_response(form)
        else:
            response: Response = super().create_token_response(request)
            return response
        error_response: Response = self.handle_error_response(request, error)
        return error_response

    def _token_grant_response(self, form: MultiDict[str, str]) -> Response:
        """refresh_token and client_credentials, as the fast paths answer them."""
        request = self.create_oauth2_request(None)
        answer = endpoints.token_answer(
            self.session,
            self.keyring,
            self.settings,
            self.query_client,
            flask_request.headers.get("Authorization", ""),
            form,
            lambda: self.private_key_jwt(self.query_client, request),
        )
        self.session.commit()  # what the grant wrote, errors included (a family revoked)
        return answer_response(answer)

    def validate_requested_scope(self, scope: str | None) -> None:
        # Unknown scopes are dropped by client.get_allowed_scope, never echoed back.
        return None


# --- client authentication ---------------------------------------------------------------


class PrivateKeyJWT(JWTBearerClientAssertion):
    """private_key_jwt (OIDC Core §9, RFC 7523 §2.2) with replay protection on `jti`."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, server: IdpAuthorizationServer) -> None:
        super().__init__(validate_jti=True, leeway=30)
        self.server = server

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> dict[str, Any]:
        # An explicit allow-list: never "none", never HMAC with a public key.
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=ASSERTION_ALGS)
        except (JoseError, ValueError) as exc:
            raise InvalidClientError(description="Invalid client assertion.") from exc
        self.verify_claims(token.claims)
        return token.claims

    def get_audiences(self) -> list[str]:
        issuer = self.server.settings.issuer
        return [issuer, issuer + "/token", issuer + "/revoke", issuer + "/introspect"]

    def resolve_client_public_key(self, client: OAuthClient) -> KeySet:
        # A client registered for another method has no keys to check an assertion with.
        if client.token_endpoint_auth_method != self.CLIENT_AUTH_METHOD or not client.jwks:
            raise InvalidClientError(description="The client does not use private_key_jwt.")
        try:
            return KeySet.import_key_set({"keys": client.jwks["keys"]})
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidClientError(description="The client's keys are unusable.") from exc

    def validate_jti(self, claims: dict[str, Any], jti: Any) -> bool:
        exp = claims.get("exp")
        if not isinstance(jti, str) or len(jti) > 255 or "\x00" in jti or not isinstance(exp, int):
            return False
        if exp > time.time() + MAX_ASSERTION_LIFETIME:
            # RFC 7523 §3: an exp unreasonably far ahead may be refused; its jti would have
            # to be remembered that long (and a far year does not even fit a datetime).
            raise InvalidClientError(description="The assertion expires too far ahead.")
        session = self.server.session
        try:
            with session.begin_nested():
                session.add(
                    UsedClientAssertion(
                        client_id=str(claims["sub"]),
                        jti=jti,
                        expires_at=dt.datetime.fromtimestamp(claims["exp"] + 60, dt.UTC),
                    )
                )
        except IntegrityError:
            return False
        # Spent at once: the request may still fail, and client_credentials, introspection
        # and revocation need not commit anything else.
        session.commit()
        return True


# --- grants --------------------------------------------------------------------------------


class S256CodeChallenge(CodeChallenge):
    """PKCE with S256 only; "plain" is refused (RFC 9700 §2.1.1)."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        request = grant.request
        if request.client.is_public and not request.payload.data.get("code_challenge"):
            raise InvalidRequestError("Public clients must use PKCE: 'code_challenge' missing.")
        super().validate_code_challenge(grant, redirect_uri)


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_AUTH_METHODS
    server: IdpAuthorizationServer

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        raise NotImplementedError("codes are stored by idp.oidc.authorize.issue_code")

    def query_authorization_code(self, code: str, client: OAuthClient) -> Any:
        session = self.server.session
        row = tokens.find_authorization_code(session, code)
        if row is None or row.client_id != client.id:
            return None
        if row.used_at is not None:
            # A second redemption: revoke what the first one issued.
            tokens.revoke_what_code_issued(session, row.id)
            session.commit()
            observability.count_reuse("authorization_code")
            raise InvalidGrantError("The authorization code has already been used.")
        if row.expires_at <= utcnow():
            raise InvalidGrantError("The authorization code has expired.")
        return _CodeView(row)

    def delete_authorization_code(self, authorization_code: Any) -> None:
        """Codes are consumed (not deleted) so that reuse can be detected."""

    def authenticate_user(self, authorization_code: Any) -> User | None:
        user = self.server.session.get(User, authorization_code.row.user_id)
        return user if user is not None and user.is_active else None

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        session = self.server.session
        settings = self.server.settings
        client: OAuthClient = self.request.client
        code = self.request.authorization_code.row
        user = self.authenticate_user(self.request.authorization_code)
        if user is None:
            raise InvalidGrantError("The account is no longer active.")
        if not tokens.consume_authorization_code(session, code):
            session.rollback()
            tokens.revoke_what_code_issued(session, code.id)
            session.commit()
            observability.count_reuse("authorization_code")
            raise InvalidGrantError("The authorization code has already been used.")
        acting = None
        if code.customer_id is not None:
            # The membership may have ended in the seconds since the code was issued.
            acting = acting_for(session, user.id, code.customer_id, utcnow())
            if acting is None:
                session.commit()  # the code stays used
                raise InvalidGrantError("The person no longer acts for this customer.")
        family = tokens.start_family(session, settings, client, code)
        session.flush()
        refresh_token = (
            tokens.issue_refresh_token(session, settings, family)
            if client.check_grant_type("refresh_token")
            else None
        )
        token = tokens.user_token_response(
            self.server.keyring,
            settings,
            client=client,
            user=user,
            family=family,
            scope=family.scope,
            nonce=code.nonce,
            refresh_token=refresh_token,
            acting=acting,
        )
        tokens.record_issuance(session, code, client, acting, Origin.of_request().ip)
        session.commit()
        observability.count_tokens("authorization_code")
        return 200, token, list(endpoints.TOKEN_HEADERS)


class _CodeView:
    """What Authlib's code grant and the PKCE extension read from a stored code."""

    def __init__(self, row: AuthorizationCode) -> None:
        self.row = row
        self.code_challenge = row.code_challenge
        self.code_challenge_method = row.code_challenge_method

    def get_redirect_uri(self) -> str:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope


# --- revocation and introspection ------------------------------------------------------------


class _TokenLookup:
    """Finds a presented token of either kind (RFC 7009 §2.1, RFC 7662 §2.1)."""

    server: IdpAuthorizationServer

    def check_params(self, request: Any, client: OAuthClient) -> None:
        try:
            super().check_params(request, client)  # type: ignore[misc]
        except UnsupportedTokenTypeError as error:
            # An error response as in RFC 6749 §5.2 (RFC 7009 §2.2.1): 400, not Authlib's
            # 401, which would tell the client that its credentials are wrong.
            error.status_code = 400
            raise

    def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
        if not isinstance(token_string, str) or len(token_string) > 8192:
            return None
        session = self.server.session
        order = ["refresh_token", "access_token"]
        if token_type_hint == "access_token":  # noqa: S105 (a type name, not a secret)
            order.reverse()
        for kind in order:
            if kind == "refresh_token":
                found = tokens.find_refresh_token(session, token_string)
                if found is not None:
                    return found
            elif token_string.count(".") == 2:
                active = tokens.verify_access_token(
                    session, self.server.keyring, self.server.settings, token_string
                )
                if active is not None:
                    return active
        return None


class Revocation(_TokenLookup, RevocationEndpoint):
    CLIENT_AUTH_METHODS = ALL_AUTH_METHODS

    def authenticate_token(self, request: Any, client: OAuthClient) -> Any:
        self.check_params(request, client)
        token = self.query_token(request.form.get("token"), request.form.get("token_type_hint"))
        if token is not None and _token_client_id(token) == client.client_id:
            return token
        return None

    def revoke_token(self, token: Any, request: Any) -> None:
        session = self.server.session
        if isinstance(token, tokens.PresentedRefreshToken):
            # RFC 7009 §2.1: revoking a refresh token also revokes its access tokens.
            revoke_family(session, token.family.id, "revoked_by_client")
        else:
            tokens.revoke_access_token(session, token.claims)
        session.commit()


class Introspection(_TokenLookup, IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = CONFIDENTIAL_AUTH_METHODS

    def check_permission(self, token: Any, client: OAuthClient, request: Any) -> bool:
        # A client may introspect its own tokens and those addressed to its audience.
        if isinstance(token, tokens.PresentedRefreshToken):
            return token.family.client_id == client.id
        aud = token.claims.get("aud")
        token_audiences = set(aud) if isinstance(aud, list) else {aud}
        return token.claims.get("client_id") == client.client_id or bool(
            token_audiences & set(client.audiences)
        )

    def introspect_token(self, token: Any) -> dict[str, Any]:
        session = self.server.session
        if isinstance(token, tokens.PresentedRefreshToken):
            if not token.is_usable(utcnow()):
                return {"active": False}
            family = token.family
            user = token.user
            if not user.is_active:
                return {"active": False}
            client = session.get(Client, family.client_id)
            body = {
                "active": True,
                "token_type": "refresh_token",
                "scope": family.scope,
                "client_id": client.client_id if client else None,
                "sub": user.subject,
                "exp": int(token.row.expires_at.timestamp()),
                "iat": int(token.row.created_at.timestamp()),
                "iss": self.server.settings.issuer,
            }
            acting = token.acting(utcnow())
            if acting is not None:
                body.update(acting.access_token_claims())
            return body
        claims = token.claims
        body = {"active": True, "token_type": "access_token"}
        for name in (
            "scope",
            "client_id",
            "sub",
            "aud",
            "iss",
            "exp",
            "iat",
            "jti",
            "auth_time",
            "acr",
            "customer",
            "role",
        ):
            if name in claims:
                body[name] = claims[name]
        return body

    def create_introspection_payload(self, token: Any) -> dict[str, Any]:
        # RFC 7662 §2.2: unknown, expired, revoked or not ours to see -> just inactive.
        return {"active": False} if token is None else self.introspect_token(token)


def _token_client_id(token: Any) -> str | None:
    if isinstance(token, tokens.PresentedRefreshToken):
        client = db_session().get(Client, token.family.client_id)
        return client.client_id if client else None
    client_id: str | None = token.claims.get("client_id")
    return client_id


def build_authorization_server(settings: Settings, keyring: KeyRing) -> IdpAuthorizationServer:
    server = IdpAuthorizationServer(settings, keyring)
    server.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(required=True)])
    server.register_endpoint(Revocation)
    server.register_endpoint(Introspection)
    return server
