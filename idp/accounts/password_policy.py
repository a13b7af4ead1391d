"""Rules for a new password, after NIST SP 800-63B §5.1.1.2.

Length counts (at least `password_min_length`, at most 128 characters, any characters,
spaces included); there are no composition rules ("one digit, one capital"). A password is
refused when it is a known common password — also when only digits or punctuation were
added around one ("sunshine2026!") — when it repeats one short pattern ("abcabcabcabc"), or
when it is the person's own e-mail address.
"""

from __future__ import annotations

import functools
import string
import unicodedata
from pathlib import Path

from flask_babel import lazy_gettext as _l
from flask_babel import lazy_ngettext as _nl

MAX_LENGTH = 128
_COMMON_PASSWORDS = Path(__file__).with_name("common-passwords.txt")
# Stripped from both ends before the dictionary check: "Password123!" is "password".
_DECORATION = string.digits + string.punctuation + " "


@functools.cache
def common_passwords() -> frozenset[str]:
    lines = _COMMON_PASSWORDS.read_text(encoding="utf-8").splitlines()
    return frozenset(line for line in lines if line and not line.startswith("#"))


def _repeats_a_short_pattern(value: str) -> bool:
    """ "aaaaaaaaaaaa", "abcabcabcabc", "121212121212": a unit of up to 4 characters."""
    for size in range(1, 5):
        unit = value[:size]
        if len(value) % size == 0 and unit * (len(value) // size) == value:
            return True
    return False


def password_problems(password: str, min_length: int, email: str | None = None) -> list[str]:
    """What is wrong with a new password, as sentences for the form; empty when it is fine."""
    # Counted as it is hashed (idp.security.Passwords normalises with NFKC).
    value = unicodedata.normalize("NFKC", password)
    if len(value) < min_length:
        return [
            str(
                _nl(
                    "Use at least %(num)s character. A few unrelated words make a "
                    "password that is long and easy to remember.",
                    "Use at least %(num)s characters. A few unrelated words make a "
                    "password that is long and easy to remember.",
                    min_length,
                )
            )
        ]
    if len(value) > MAX_LENGTH:
        return [
            str(
                _nl("Use at most %(num)s character.", "Use at most %(num)s characters.", MAX_LENGTH)
            )
        ]
    lowered = value.lower()
    core = lowered.strip(_DECORATION)
    if (
        lowered in common_passwords()
        or (len(core) >= 3 and core in common_passwords())
        or _repeats_a_short_pattern(lowered)
    ):
        return [
            str(
                _l(
                    "This password is too common and easy to guess. Choose another one, "
                    "for example a few unrelated words."
                )
            )
        ]
    if email and lowered in {email.lower(), email.lower().partition("@")[0]}:
        return [str(_l("Do not use your e-mail address as your password."))]
    return []
