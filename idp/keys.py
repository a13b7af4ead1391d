"""Signing keys: create, encrypt at rest, rotate, publish, and sign with the current one.

Rotation (`rotate_keys`): the new key is published in JWKS at once and signs only after
`key_activation_delay`, so relying apps have refreshed their JWKS cache first. The key it
replaces stays published until every token it signed has expired. Each app instance keeps
the keys in memory for at most `keys_refresh_interval` seconds: that bounds how late an
instance sees a rotation.

Signing (`KeyRing.sign`) builds the compact JWS itself with `cryptography` (RFC 7515 §7.1;
ES256 signatures are the raw r||s of RFC 7518 §3.4, not DER): the header segment of each
(key, typ) is encoded once, and the imported keys are kept across reloads, so a reload
does not re-import (and re-validate) an RSA key every `keys_refresh_interval`.
"""

from __future__ import annotations

import binascii
import datetime as dt
import json
import logging
import re
import secrets
import threading
import time
from base64 import urlsafe_b64decode, urlsafe_b64encode
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from idp.db import READ_ONLY, is_outage, utcnow
from idp.models import SigningKey
from idp.settings import Settings

SUPPORTED_ALGS = ("RS256", "ES256")


class KeyDecryptionError(Exception):
    """The key-encryption key cannot decrypt a stored signing key."""


def _generate_private_key(alg: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unsupported algorithm {alg}")


def _import_key(alg: str, pem: bytes) -> RSAKey | ECKey:
    return RSAKey.import_key(pem) if alg == "RS256" else ECKey.import_key(pem)


def create_key(
    session: Session, settings: Settings, alg: str, activates_at: dt.datetime
) -> SigningKey:
    private = _generate_private_key(alg)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    kid = f"{alg.lower()}-{secrets.token_urlsafe(12)}"
    public = _import_key(alg, pem).as_dict(private=False)
    public.update({"kid": kid, "alg": alg, "use": "sig"})
    row = SigningKey(
        kid=kid,
        alg=alg,
        public_jwk=public,
        private_key_encrypted=Fernet(settings.effective_key_encryption_key).encrypt(pem),
        activates_at=activates_at,
    )
    session.add(row)
    return row


def ensure_keys(session: Session, settings: Settings) -> list[SigningKey]:
    """Create an immediately active key for every algorithm that has no usable one (first
    start, or every key of it expired)."""
    created = []
    now = utcnow()
    existing = set(
        session.scalars(
            select(SigningKey.alg)
            .where((SigningKey.expires_at.is_(None)) | (SigningKey.expires_at > now))
            .distinct()
        )
    )
    for alg in SUPPORTED_ALGS:
        if alg not in existing:
            created.append(create_key(session, settings, alg, utcnow()))
    return created


def rotate_keys(
    session: Session, settings: Settings, algs: tuple[str, ...] = SUPPORTED_ALGS
) -> list[SigningKey]:
    """Publish a next key per algorithm; it signs after key_activation_delay."""
    now = utcnow()
    activates_at = now + dt.timedelta(seconds=settings.key_activation_delay)
    longest_token = max(settings.id_token_lifetime, settings.access_token_lifetime)
    created = []
    for alg in algs:
        current = session.scalars(
            select(SigningKey)
            .where(SigningKey.alg == alg, SigningKey.retired_at.is_(None))
            .with_for_update()
        ).all()
        for key in current:
            key.retired_at = activates_at
            # Still verifiable until the last token it signed has expired, plus one JWKS
            # cache period for relying apps that fetched JWKS just before.
            key.expires_at = activates_at + dt.timedelta(
                seconds=longest_token + settings.jwks_max_age
            )
        created.append(create_key(session, settings, alg, activates_at))
    return created


def key_state(key: SigningKey, now: dt.datetime) -> str:
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    if key.activates_at > now:
        return "published"
    if key.retired_at is not None and key.retired_at <= now:
        return "retired"
    return "active"


@dataclass(frozen=True)
class _LoadedKey:
    kid: str
    alg: str
    key: RSAKey | ECKey
    activates_at: float
    expires_at: float | None


_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
log = logging.getLogger(__name__)
_PKCS1V15 = padding.PKCS1v15()
_ES256_SIZE = 32  # bytes of r and of s on P-256
_NOT_BASE64URL = re.compile(rb"[^A-Za-z0-9_-]")
# After a failed reload (the database away), the keys in hand serve this long before the next
# try.
KEYS_RETRY_SECONDS = 5
# Tokens whose verified signature KeyRing.verify remembers (a few KB each at most).
VERIFIED_CACHE_SIZE = 4096


def _b64(data: bytes) -> bytes:
    return urlsafe_b64encode(data).rstrip(b"=")


def _unb64(data: bytes) -> bytes:
    """base64url without padding (RFC 7515 §2), strictly: a lenient decoder skips other
    characters, so one token would have endless accepted variants."""
    if _NOT_BASE64URL.search(data) or len(data) % 4 == 1:
        raise ValueError("not base64url")
    return urlsafe_b64decode(data + b"=" * (-len(data) % 4))


def _signature(alg: str, private: Any, signing_input: bytes) -> bytes:
    """The JWS signature of RFC 7518: RS256 (PKCS#1 v1.5) or ES256 (raw r||s, not DER)."""
    if alg == "ES256":
        r, s = decode_dss_signature(private.sign(signing_input, _ECDSA_SHA256))
        return r.to_bytes(_ES256_SIZE, "big") + s.to_bytes(_ES256_SIZE, "big")
    if alg == "RS256":
        signature: bytes = private.sign(signing_input, _PKCS1V15, hashes.SHA256())
        return signature
    raise ValueError(f"unsupported algorithm {alg}")


class KeyRing:
    """In-memory, periodically refreshed view of the signing keys of one app instance."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self._settings = settings
        self._engine = engine
        self._lock = threading.Lock()
        self._loaded_at = -1e18
        self._keys: list[_LoadedKey] = []
        self._jwks_json = b""
        self._by_kid: dict[str, _LoadedKey] = {}
        # kid -> cryptography public key, for verify()
        self._public_keys: dict[str, Any] = {}
        # kid -> (encrypted private key, imported key): a reload re-imports only new keys.
        self._imported: dict[str, tuple[bytes, RSAKey | ECKey]] = {}
        # (kid, typ) -> (encoded header segment, cryptography private key)
        self._signers: dict[tuple[str, str], tuple[bytes, Any]] = {}
        # token -> (header, claims) of tokens whose signature verify() has checked (below).
        self._verified: OrderedDict[str, tuple[dict[str, Any], dict[str, Any]]] = OrderedDict()
        self._verified_lock = threading.Lock()

    def _refresh_if_stale(self) -> bool:
        """Reload the keys if they are stale; False when that was tried just now and the
        database was unavailable (the keys in hand serve on)."""
        if time.monotonic() - self._loaded_at < self._settings.keys_refresh_interval:
            return True
        if self._keys and not self._lock.acquire(blocking=False):
            return True  # another thread is reloading: the keys in hand serve meanwhile
        if not self._keys:
            self._lock.acquire()
        try:
            if time.monotonic() - self._loaded_at < self._settings.keys_refresh_interval:
                return True
            try:
                self.reload()
            except SQLAlchemyError as exc:
                if not self._keys or not is_outage(exc):
                    raise
                # The database is away: keep signing and publishing the keys in hand (no
                # rotation can happen meanwhile) and try again in a few seconds, rather
                # than make every request wait for the database once more.
                log.warning("signing keys not reloaded, the database is unavailable")
                retry = min(KEYS_RETRY_SECONDS, self._settings.keys_refresh_interval)
                self._loaded_at = time.monotonic() - self._settings.keys_refresh_interval + retry
                return False
            return True
        finally:
            self._lock.release()

    def refresh(self) -> bool:
        """Reload the keys if they are stale. False: the database was unavailable for
        that just now (idp.fastpath then answers 503 at once rather than wait again)."""
        return self._refresh_if_stale()

    def refresh_before_request(self) -> None:
        """Called before each request, outside any transaction: the first request of a
        new installation creates the keys (which needs the write lock on SQLite)."""
        self._refresh_if_stale()

    def reload(self) -> None:
        self._load()
        if {k.alg for k in self._keys} < set(SUPPORTED_ALGS):
            with Session(self._engine) as session:
                ensure_keys(session, self._settings)
                session.commit()
            self._load()

    def _load(self) -> None:
        fernet = Fernet(self._settings.effective_key_encryption_key)
        now = utcnow()
        # Its own read-only connection: called in the middle of a request that may hold
        # the SQLite write lock.
        with self._engine.connect().execution_options(**READ_ONLY) as conn:
            rows = (
                Session(bind=conn).scalars(select(SigningKey).order_by(SigningKey.created_at)).all()
            )
        keys, public = [], []
        imported: dict[str, tuple[bytes, RSAKey | ECKey]] = {}
        for row in rows:
            if row.expires_at is not None and row.expires_at <= now:
                continue
            encrypted = bytes(row.private_key_encrypted)
            known = self._imported.get(row.kid)
            if known is not None and known[0] == encrypted:
                key = known[1]
            else:
                try:
                    pem = fernet.decrypt(encrypted)
                except InvalidToken:
                    raise KeyDecryptionError(
                        f"signing key {row.kid} cannot be decrypted: wrong key_encryption_key?"
                    ) from None
                key = _import_key(row.alg, pem)
            imported[row.kid] = (encrypted, key)
            keys.append(
                _LoadedKey(
                    kid=row.kid,
                    alg=row.alg,
                    key=key,
                    activates_at=row.activates_at.timestamp(),
                    expires_at=row.expires_at.timestamp() if row.expires_at else None,
                )
            )
            public.append(row.public_jwk)
        self._imported = imported
        self._signers = {}
        self._keys = keys
        self._by_kid = {k.kid: k for k in keys}
        self._public_keys = {k.kid: k.key.public_key for k in keys}
        self._jwks_json = json.dumps({"keys": public}, separators=(",", ":")).encode()
        self._loaded_at = time.monotonic()

    def jwks_json(self) -> bytes:
        self._refresh_if_stale()
        return self._jwks_json

    def signing_key(self, alg: str) -> _LoadedKey:
        """The newest key of this algorithm whose activation time has come."""
        self._refresh_if_stale()
        now = time.time()
        best = None
        for key in self._keys:
            if (
                key.alg == alg
                and key.activates_at <= now
                and (best is None or key.activates_at > best.activates_at)
            ):
                best = key
        if best is None:
            raise LookupError(f"no active {alg} signing key; run `idp keys rotate`")
        return best

    def missing_signing_algs(self) -> list[str] | None:
        """The algorithms with no active key in what this ring holds now, or None before
        its first load. Reads no database (the readiness probe, idp/health.py)."""
        if self._loaded_at < 0:
            return None
        now = time.time()
        active = {k.alg for k in self._keys if k.activates_at <= now}
        return [alg for alg in SUPPORTED_ALGS if alg not in active]

    def verify(self, token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(header, claims) of a compact JWS signed by one of our published keys, or None.

        Only the signature is checked here; the caller checks typ, iss, exp and the rest,
        and must treat both dicts as read-only (they may be shared with later calls).
        The algorithm must be the key's own (never "none", never HMAC).

        A signature once verified stays verified for as long as its key is published, so
        the answer for the same token string is remembered (the VERIFIED_CACHE_SIZE tokens
        verified last, access tokens and ID token hints alike): an app calling userinfo or
        introspection again with its access token skips the ECDSA verification (~95 us of
        the ~170 us of a userinfo call). Only the signature check is remembered; expiry,
        revocation and the user's and membership's state are the caller's and are checked
        on every call.
        """
        self._refresh_if_stale()
        remembered = self._verified.get(token)
        if remembered is not None and remembered[0]["kid"] in self._by_kid:
            return remembered
        verified = self._verify_signature(token)
        if verified is not None:
            with self._verified_lock:
                self._verified[token] = verified
                if len(self._verified) > VERIFIED_CACHE_SIZE:
                    self._verified.popitem(last=False)  # the oldest
        return verified

    def _verify_signature(self, token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        try:
            header_b64, payload_b64, signature_b64 = token.encode("ascii").split(b".")
            header = json.loads(_unb64(header_b64))
            loaded = self._by_kid.get(header.get("kid", "")) if isinstance(header, dict) else None
            if loaded is None or header.get("alg") != loaded.alg:
                return None
            signature = _unb64(signature_b64)
            public = self._public_keys[loaded.kid]
            signing_input = header_b64 + b"." + payload_b64
            if loaded.alg == "ES256":
                if len(signature) != 2 * _ES256_SIZE:
                    return None
                der = encode_dss_signature(
                    int.from_bytes(signature[:_ES256_SIZE], "big"),
                    int.from_bytes(signature[_ES256_SIZE:], "big"),
                )
                public.verify(der, signing_input, _ECDSA_SHA256)
            else:
                public.verify(signature, signing_input, _PKCS1V15, hashes.SHA256())
            claims = json.loads(_unb64(payload_b64))
        except (ValueError, UnicodeError, InvalidSignature, binascii.Error, TypeError):
            return None
        return (header, claims) if isinstance(claims, dict) else None

    def sign(self, claims: dict[str, Any], alg: str, typ: str = "JWT") -> str:
        """A compact JWS (RFC 7515 §7.1) of the claims, signed with the current key."""
        key = self.signing_key(alg)
        signer = self._signers.get((key.kid, typ))
        if signer is None:
            # Same header as joserfc's jwt.encode: {"typ", "alg", "kid"}, compact JSON.
            header = json.dumps(
                {"typ": typ, "alg": alg, "kid": key.kid}, separators=(",", ":")
            ).encode()
            signer = (_b64(header), key.key.get_op_key("sign"))
            self._signers[(key.kid, typ)] = signer
        payload = json.dumps(claims, ensure_ascii=False, separators=(",", ":")).encode()
        signing_input = signer[0] + b"." + _b64(payload)
        signature = _signature(alg, signer[1], signing_input)
        return (signing_input + b"." + _b64(signature)).decode("ascii")
