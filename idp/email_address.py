"""The one e-mail address rule: what every form, CLI command and the mail outbox accept.

It lives outside the feature packages so that idp.mail (which must not import them) and
idp.accounts use the very same rule: an address a form accepted never fails in the outbox.

The rule, after trimming and NFKC (full-width "＠" is "@", composed and decomposed letters
are one):

- exactly one "@";
- local part: a dot-atom (RFC 5322 §3.2.3): atoms of letters, digits and
  ``!#$%&'*+-/=?^_`{|}~``, joined by single dots, none at either end; no quoted strings,
  no whitespace, none of ``<>()[],;:\\"@``, nothing invisible. Non-ASCII *letters, marks
  and digits* are accepted (RFC 6531, internationalised mail): Latvian names carry
  diacritics ("jānis@…"), and the outbox sends such mail with SMTPUTF8. Other non-ASCII
  characters (punctuation, symbols, format characters) are refused: they are look-alikes
  of the separators above, not parts of names. At most 64 octets (RFC 5321 §4.5.3.1.1).
- domain: at least two labels; Unicode is converted to IDNA (punycode); every label is
  1-63 letters, digits or hyphens, neither starting nor ending with a hyphen (RFC 1035,
  RFC 5890); the top-level label is not all digits (no bare IP addresses); a trailing dot
  (fully qualified) is dropped; at most 253 characters.
- the normalised address is at most 254 octets (RFC 5321 path limit, less the brackets).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from flask_babel import LazyString
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_ngettext as _nl

_ATEXT = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~"
)
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
LOCAL_MAX = 64
DOMAIN_MAX = 253
ADDRESS_MAX = 254
_DOMAIN_INVALID = _l("The part after @ (the domain) is not valid.")


class InvalidEmail(ValueError):
    """Not a usable address; `message` says why (for a form, CLI output or a log), as a
    message id: str() gives it in the current language (English in the CLI)."""

    def __init__(self, message: LazyString) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return str(self.message)


@dataclass(frozen=True)
class EmailAddress:
    # The comparison key: lower-cased, domain in punycode (users.email).
    normalized: str
    # What mail is sent to and pages show: the local part's case and the domain's Unicode
    # spelling as typed, but trimmed, NFKC and without a trailing dot (users.email_display).
    display: str


def _local_char_ok(c: str) -> bool:
    if c.isascii():
        return c in _ATEXT
    return unicodedata.category(c)[0] in "LMN"


def parse_email(typed: str) -> EmailAddress:
    """The address if it is usable, else InvalidEmail."""
    value = unicodedata.normalize("NFKC", typed).strip()
    local, sep, domain = value.rpartition("@")
    if not sep or not local or not domain:
        raise InvalidEmail(
            _l("This is not an e-mail address; an address looks like name@example.lv.")
        )
    if not all(atom and all(_local_char_ok(c) for c in atom) for atom in local.split(".")):
        raise InvalidEmail(
            _l(
                "The part before @ may hold only letters, digits, single dots and the "
                "characters %(allowed)s.",
                allowed="!#$%&'*+-/=?^_`{|}~",
            )
        )
    if len(local.encode()) > LOCAL_MAX:
        raise InvalidEmail(
            _nl(
                "The part before @ is longer than %(num)s character.",
                "The part before @ is longer than %(num)s characters.",
                LOCAL_MAX,
            )
        )
    domain = domain.removesuffix(".")
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise InvalidEmail(_DOMAIN_INVALID) from None
    labels = ascii_domain.split(".")
    if (
        len(labels) < 2
        or not all(_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise InvalidEmail(_DOMAIN_INVALID)
    if len(ascii_domain) > DOMAIN_MAX:
        raise InvalidEmail(_l("The part after @ (the domain) is too long."))
    normalized = f"{local.lower()}@{ascii_domain}"
    if len(normalized.encode()) > ADDRESS_MAX:
        raise InvalidEmail(
            _nl(
                "The address is longer than %(num)s character.",
                "The address is longer than %(num)s characters.",
                ADDRESS_MAX,
            )
        )
    return EmailAddress(normalized=normalized, display=f"{local}@{domain}")


def is_usable(typed: str) -> bool:
    try:
        parse_email(typed)
    except InvalidEmail:
        return False
    return True
