"""The identifiers' rules (idp/identifiers.py, providers/personal_codes.py): personal codes as
typed and as an upstream asserts them, registration numbers, phone numbers."""

from __future__ import annotations

import pytest

from idp.identifiers import (
    InvalidIdentifier,
    InvalidPersonalCode,
    normalize_personal_code,
    normalize_phone,
    normalize_registration_number,
)
from providers.personal_codes import parse_personal_code

# --- personal codes (docs/domain.md, "Facts worth knowing") -------------------------------------


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("010190-10001", "01019010001"),  # old format DDMMYY-CNNNK, born 1990
        ("01019010001", "01019010001"),  # the same without the hyphen
        ("161175-19997", "16117519997"),
        ("290200-20009", "29020020009"),  # 29 February 2000, a leap year
        ("010180-00004", "01018000004"),  # century digit 0: born in the 1800s
        ("321234-56785", "32123456785"),  # new format (since July 2017), no birth date
        ("32123456785", "32123456785"),
        (" 010190 - 10001 ", "01019010001"),  # blanks anywhere
        ("010190\u201310001", "01019010001"),  # an en dash, as word processors type it
        ("010190\u201110001", "01019010001"),  # a non-breaking hyphen
    ],
)
def test_valid_personal_codes_are_stored_as_11_digits(typed: str, stored: str) -> None:
    assert normalize_personal_code(typed) == stored


@pytest.mark.parametrize(
    ("typed", "why"),
    [
        ("010190-10002", "check digit"),
        ("32123456784", "check digit"),
        ("161375-19997", "not a date"),  # month 13
        ("310290-10002", "not a date"),  # 31 February, check digit right
        ("290201-10004", "not a date"),  # 29 February 2001
        ("290200-10003", "not a date"),  # 29 February 1900: not a leap year
        ("010199-20005", "in the future"),  # century digit 2: 2099
        ("0101901000", "11 digits, not 10"),
        ("010190-100011", "after the sixth digit"),
        ("0101-9010001", "after the sixth digit"),
        ("010190--10001", "after the sixth digit"),
        ("010190-1000l", "only digits"),
        ("٠١٠١٩٠١٠٠٠١", "only digits"),  # Arabic-Indic digits are digits to str.isdigit
        ("40003521600", "not a personal code"),  # a company's registration number
        ("", "11 digits, not 0"),
    ],
)
def test_invalid_personal_codes_say_why(typed: str, why: str) -> None:
    with pytest.raises(InvalidPersonalCode, match=why):
        normalize_personal_code(typed)


def test_the_personal_code_error_is_a_value_error_for_forms() -> None:
    with pytest.raises(ValueError, match="check digit"):
        normalize_personal_code("010190-10002")


# --- registration numbers and phones -------------------------------------------------------


@pytest.mark.parametrize("number", ["40003521600", "4000 3521 600", "50003521602", "90011524360"])
def test_valid_registration_numbers(number: str) -> None:
    assert normalize_registration_number(number) == number.replace(" ", "")


@pytest.mark.parametrize(
    ("number", "why"),
    [
        ("40003521601", "check digit"),
        ("01019010001", "starts with a digit from 4 to 9"),
        ("4000352160", "11 digits, not 10"),
        ("LV40003521600", "only digits"),
    ],
)
def test_invalid_registration_numbers(number: str, why: str) -> None:
    with pytest.raises(InvalidIdentifier, match=why):
        normalize_registration_number(number)


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("+371 2000 0000", "+37120000000"),
        ("+371 (20) 00-00-00", "+37120000000"),
        ("+4915112345678", "+4915112345678"),
    ],
)
def test_phones_are_kept_in_international_form(typed: str, stored: str) -> None:
    assert normalize_phone(typed) == stored


@pytest.mark.parametrize(
    "typed",
    [
        "20000000",
        "00371 20000000",
        "+0 20000000",
        "++37120000000",
        "+371 2000 000O",
        "+1234567890123456",
        "+12345",
    ],
)
def test_phones_not_in_international_form_are_refused(typed: str) -> None:
    with pytest.raises(InvalidIdentifier, match="international format"):
        normalize_phone(typed)


# --- a personal code an upstream asserts (the connectors' side of the one rule) -------------


def test_an_asserted_code_with_a_wrong_date_or_check_digit_is_kept_with_the_problem() -> None:
    """docs/domain.md: a code a bank or eSignature asserts is verified; the connector logs it."""
    assert parse_personal_code("32123456784") == (
        "32123456784",
        "The last digit (the check digit) does not match the others.",
    )
    assert parse_personal_code("310290-10002")[1] == "The first six digits are not a date (DDMMYY)."
    assert (
        parse_personal_code("010199-20005")[1]
        == "The birth date in the personal code is in the future."
    )
    assert parse_personal_code("321234-56785") == ("32123456785", None)


@pytest.mark.parametrize("number", ["40003032949", "400030-32949", "90000010008"])
def test_a_company_registration_number_is_never_a_persons_code(number: str) -> None:
    """Valid registration numbers (stdnum.lv.pvn passes them): no person is linked on one."""
    with pytest.raises(InvalidPersonalCode, match="not a personal code"):
        parse_personal_code(number)
    with pytest.raises(InvalidPersonalCode, match="not a personal code"):
        normalize_personal_code(number)
