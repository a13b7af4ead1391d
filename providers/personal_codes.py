"""The Latvian personal code: the one rule for what is one (docs/domain.md, "Facts worth knowing").

A code a person types is refused for anything wrong with it (`normalize_personal_code`, which
idp.identifiers gives the forms and import files). A code a bank or eSignature asserts is
verified already: the connectors keep and log one whose date or check digit is wrong, but
never take a company's registration number for a person (`parse_personal_code`).

The rule lives here, not in idp, because the connectors need it and this package imports
nothing from idp (idp imports it). It imports nothing but stdnum and flask_babel: what is
wrong with a code is a message id (lazy gettext), shown in the page's language, logged in
English (`in_english`).
"""

from __future__ import annotations

import datetime as dt

from flask_babel import LazyString, force_locale
from flask_babel import lazy_gettext as _l
from stdnum.lv import pvn

# Hyphens people and spreadsheets put between the two parts of a personal code.
DASHES = str.maketrans({c: "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2212"})


class InvalidPersonalCode(ValueError):
    """Not a Latvian personal code; `message` says why (for an admin, a form or a log), as
    a message id: str() gives it in the current language (English outside a request)."""

    def __init__(self, message: LazyString) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return str(self.message)


def in_english(message: LazyString) -> str:
    """A message for a log or an admin, in English whatever the page's language."""
    with force_locale("en"):
        return str(message)


def parse_personal_code(value: str) -> tuple[str, LazyString | None]:
    """(11 digits, what is wrong with their date or check digit, or None) of a personal code
    written `DDMMYY-CNNNK`, `32NNNN-NNNNN` or as 11 digits, blanks and dashes allowed.

    InvalidPersonalCode when it cannot be a person's code at all: not 11 digits with at most
    one hyphen after the sixth, or starting with 4-9 (a company's registration number). The
    old format is a birth date, a century digit, a serial and a check digit; the new one
    (since July 2017) starts with 32 and has no date. The check digit is computed by
    stdnum.lv.pvn; the steps are those of its validate() for a person, taken one by one:
    validate() would also pass a company's number, and it cleans the input again at every
    step, which is most of an import's time for 100,000 rows. A birth date in the future,
    which stdnum lets through, is a problem too.
    """
    compact = "".join(value.split()).translate(DASHES)
    if "-" in compact:
        left, _, right = compact.partition("-")
        if len(left) != 6 or len(right) != 5:
            raise InvalidPersonalCode(_l("The hyphen goes after the sixth digit (DDMMYY-NNNNN)."))
        compact = left + right
    if compact and not (compact.isascii() and compact.isdigit()):
        raise InvalidPersonalCode(_l("A personal code may hold only digits and one hyphen."))
    if len(compact) != 11:
        raise InvalidPersonalCode(
            _l("A personal code has 11 digits, not %(count)s.", count=len(compact))
        )
    if compact[0] > "3":
        # A day never starts with 4-9: that is a company's registration number.
        raise InvalidPersonalCode(
            _l("This is not a personal code: it looks like a company's registration number.")
        )
    if not compact.startswith("32"):
        # As stdnum's get_birth_date: the century digit counts from 1800 (0: 1800s, 1: 1900s).
        century = 1800 + 100 * int(compact[6])
        try:
            born = dt.date(century + int(compact[4:6]), int(compact[2:4]), int(compact[:2]))
        except ValueError:
            return compact, _l("The first six digits are not a date (DDMMYY).")
        if born > dt.date.today():
            return compact, _l("The birth date in the personal code is in the future.")
    if pvn.calc_check_digit_pers(compact[:-1]) != compact[-1]:
        return compact, _l("The last digit (the check digit) does not match the others.")
    return compact, None


def normalize_personal_code(value: str) -> str:
    """A typed personal code as 11 digits; InvalidPersonalCode for anything wrong with it."""
    code, problem = parse_personal_code(value)
    if problem is not None:
        raise InvalidPersonalCode(problem)
    return code
