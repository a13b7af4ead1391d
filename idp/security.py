"""Password hashing (argon2id), secret hashing, random tokens, and security headers."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata
from urllib.parse import unquote_to_bytes

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Flask, Response, abort, request
from werkzeug.exceptions import BadRequest

from idp.settings import Settings


def new_token(nbytes: int = 32) -> str:
    """A random, URL-safe secret (codes, refresh tokens, session ids, client secrets)."""
    return secrets.token_urlsafe(nbytes)


def hash_secret(value: str) -> str:
    """SHA-256 for high-entropy secrets we generated ourselves; never for passwords."""
    return hashlib.sha256(value.encode()).hexdigest()


def secret_matches(value: str, expected_hash: str | None) -> bool:
    return expected_hash is not None and hmac.compare_digest(hash_secret(value), expected_hash)


class Passwords:
    """argon2id with the parameters from settings.

    Passwords are NFKC-normalised before hashing and verifying, so the same password typed
    with composed or decomposed letters (ā as one character or a + combining macron) is
    the same password (NIST SP 800-63B §5.1.1.2).
    """

    def __init__(self, settings: Settings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_cost,
            parallelism=settings.argon2_parallelism,
            type=Type.ID,
        )
        # Verified against when the account does not exist, so both answers take as long.
        self._dummy_hash = self._hasher.hash(new_token())

    def hash(self, password: str) -> str:
        return self._hasher.hash(unicodedata.normalize("NFKC", password))

    def verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(
                password_hash or self._dummy_hash, unicodedata.normalize("NFKC", password)
            ) and (password_hash is not None)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)


# Pages only: no inline script, nothing framed, no Referer leaking codes or ids.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self' http: https:; frame-ancestors 'none'; base-uri 'none'; "
        "object-src 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
HSTS = ("Strict-Transport-Security", "max-age=31536000; includeSubDomains")


def security_headers(
    *, secure: bool, page: bool, image_origins: tuple[str, ...] = ()
) -> list[tuple[str, str]]:
    """The one header policy of every answer, whichever road made it (Flask's
    after-request hook or a fast path in idp/fastpath.py): nosniff always, the page
    headers on HTML, HSTS on an answer sent over https. A header the view set itself wins
    (the callers add these only where it is missing). `image_origins`: hosts a page may
    show images from besides itself (a brand_logo or brand_favicon given as an https URL)."""
    headers = list(PAGE_HEADERS.items()) if page else [("X-Content-Type-Options", "nosniff")]
    if page and image_origins:
        extra = " ".join(image_origins)
        headers = [
            (name, value.replace("img-src 'self' data:", f"img-src 'self' data: {extra}"))
            for name, value in headers
        ]
    if secure:
        headers.append(HSTS)
    return headers


class NotUtf8(BadRequest):
    """A query string or form body whose bytes are not UTF-8 (e.g. a password typed in a
    browser set to cp1257): refused before any view, so nothing is stored mangled and no
    single-use link is spent on it."""

    description = "The request is not valid UTF-8."


def is_utf8_request(query_string: bytes, form_body: bytes | None) -> bool:
    """Whether the query string and a form body are UTF-8 once percent-decoded. A
    multipart body is checked whole: no form here uploads files, so it is text too."""
    for raw in (query_string, form_body or b""):
        try:
            unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            return False
    return True


FORM_MIMETYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


def init_app(app: Flask) -> None:
    app.extensions["idp.passwords"] = Passwords(app.config["IDP_SETTINGS"])

    @app.before_request
    def _refuse_unreadable_input() -> None:
        # get_data(cache=True) keeps the bytes, and Werkzeug parses the form from them.
        body = request.get_data(cache=True) if request.mimetype in FORM_MIMETYPES else None
        if not is_utf8_request(request.query_string, body):
            raise NotUtf8()
        # No legitimate parameter contains NUL, and PostgreSQL cannot store or even compare
        # text with one: refuse it here, once, for every endpoint and page.
        if any("\x00" in k or "\x00" in v for k, v in request.values.items(multi=True)):
            abort(400)

    image_origins = app.config["IDP_SETTINGS"].brand_image_origins

    @app.after_request
    def _security_headers(response: Response) -> Response:
        for name, value in security_headers(
            secure=request.is_secure,
            page=response.mimetype == "text/html",
            image_origins=image_origins,
        ):
            response.headers.setdefault(name, value)
        return response
