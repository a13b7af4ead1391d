"""The rules for the identifiers people type: personal codes, company registration numbers,
phone numbers.

Forms, services and import files of every feature use them, so this module imports no
feature. The personal-code rule itself is providers/personal_codes.py: the connectors apply
the same rule to the codes banks and eSignature assert, and they import nothing from idp.
"""

from __future__ import annotations

import re

from flask_babel import LazyString
from flask_babel import lazy_gettext as _l
from stdnum.exceptions import ValidationError
from stdnum.lv import pvn

from providers.personal_codes import DASHES, InvalidPersonalCode, normalize_personal_code

__all__ = [
    "InvalidIdentifier",
    "InvalidPersonalCode",
    "compact_identifier",
    "normalize_personal_code",
    "normalize_phone",
    "normalize_registration_number",
]

# E.164: "+", a country code not starting with 0, at most 15 digits in all.
_PHONE = re.compile(r"\+[1-9][0-9]{6,14}")
_PHONE_SEPARATORS = re.compile(r"[\s\-().]")


class InvalidIdentifier(ValueError):
    """A registration number or phone number that is not acceptable; `message` says why,
    for an admin or a form, as a message id: str() gives it in the current language
    (English in the CLI)."""

    def __init__(self, message: LazyString) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return str(self.message)


def normalize_registration_number(value: str) -> str:
    """A Latvian company registration number as 11 digits.

    Entities of the Register of Enterprises have 11 digits starting with 4-9 (40…/50… for
    companies, 90… for public bodies) and a check digit: their VAT number is "LV" + the
    registration number, whose check digit stdnum.lv.pvn verifies. A number starting with
    0-3 is a personal code, i.e. a private person, not a company.
    """
    compact = "".join(value.split())
    if not (compact.isascii() and compact.isdigit()):
        raise InvalidIdentifier(_l("A registration number may hold only digits."))
    if len(compact) != 11:
        raise InvalidIdentifier(
            _l("A registration number has 11 digits, not %(count)s.", count=len(compact))
        )
    if compact[0] < "4":
        raise InvalidIdentifier(
            _l(
                "A registration number starts with a digit from 4 to 9; this looks like a "
                "personal code."
            )
        )
    try:
        pvn.validate(compact)
    except ValidationError:
        raise InvalidIdentifier(
            _l("The last digit (the check digit) does not match the others.")
        ) from None
    return compact


def normalize_phone(value: str) -> str:
    """A phone number in international form without separators ("+37120000000").

    A light check only (E.164 shape): the number is for contacting the customer, nothing
    is proven by it. The OIDC phone_number claim recommends E.164, hence the compact form.
    """
    compact = _PHONE_SEPARATORS.sub("", value)
    if not _PHONE.fullmatch(compact):
        raise InvalidIdentifier(
            _l("Write the phone number in the international format, e.g. +371 20000000.")
        )
    return compact


def compact_identifier(value: str) -> str:
    """A personal code or registration number as typed for a match, blanks and hyphens
    dropped; nothing is refused (a wrong value simply matches nothing)."""
    return "".join(value.split()).translate(DASHES).replace("-", "")
