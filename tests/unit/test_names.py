"""The account name from a bank's given/family name and the customer data (idp/accounts/
names.py): capitals never replace a nicer spelling of the same name."""

from __future__ import annotations

import unicodedata

import pytest

from idp.accounts.names import account_name, is_all_capitals, same_name, title_case

NFD_ANNA = unicodedata.normalize("NFD", "Anna Pastāvīgā")


@pytest.mark.parametrize(
    "given, family, customer, expected",
    [
        # Capitals, the same name in the customer data: its spelling.
        ("ANNA", "PASTĀVĪGĀ", "Anna Pastāvīgā", "Anna Pastāvīgā"),
        # ... whatever the order, spacing, Unicode form or diacritics of either.
        ("PASTĀVĪGĀ", "ANNA", "Anna Pastāvīgā", "Anna Pastāvīgā"),
        ("  ANNA ", " PASTĀVĪGĀ", "Anna   Pastāvīgā ", "Anna Pastāvīgā"),
        ("ANNA", unicodedata.normalize("NFD", "PASTĀVĪGĀ"), NFD_ANNA, "Anna Pastāvīgā"),
        ("ANNA", "PASTAVIGA", "Anna Pastāvīgā", "Anna Pastāvīgā"),
        ("ANNA MARIJA", "OZOLA-BĒRZIŅA", "Anna Marija Ozola-Bērziņa", "Anna Marija Ozola-Bērziņa"),
        # Capitals, no customer-data name: title-cased for Latvian.
        ("ANNA", "PASTĀVĪGĀ", None, "Anna Pastāvīgā"),
        ("ANNA", "OZOLA-BĒRZIŅA", "", "Anna Ozola-Bērziņa"),
        ("ĢIRTS", "ŅĒMCEVS", None, "Ģirts Ņēmcevs"),
        ("ŠARLOTE", "O'BRAIENA", None, "Šarlote O'Braiena"),
        # Capitals, another name in the customer data (e.g. married since): the bank's, title-cased.
        ("ANNA", "KALNIŅA", "Anna Pastāvīgā", "Anna Kalniņa"),
        ("ANNA", "PASTĀVĪGĀ", "Anna Pastāvīgā-Kalniņa", "Anna Pastāvīgā"),
        # The customer data in capitals too: no nicer spelling to keep.
        ("ANNA", "PASTĀVĪGĀ", "ANNA PASTĀVĪGĀ", "Anna Pastāvīgā"),
        # Not all capitals: the bank's spelling as sent (verified, written as the person does).
        ("Anna", "Pastāvīgā", "ANNA PASTĀVĪGĀ", "Anna Pastāvīgā"),
        ("anna", "pastāvīgā", "Anna Pastāvīgā", "anna pastāvīgā"),
        ("Jānis", "Bērziņš", "Janis Berzins", "Jānis Bērziņš"),
        # Nothing from the bank: the customer data's.
        ("", " ", "Anna Pastāvīgā", "Anna Pastāvīgā"),
    ],
)
def test_account_name(given: str, family: str, customer: str | None, expected: str) -> None:
    assert account_name(given, family, customer) == expected


def test_the_parts() -> None:
    assert is_all_capitals("ANNA PASTĀVĪGĀ") and is_all_capitals("ANNA-2")
    assert not is_all_capitals("Anna") and not is_all_capitals("123") and not is_all_capitals("")
    assert title_case("OZOLA-BĒRZIŅA") == "Ozola-Bērziņa"
    assert title_case("  ANNA   MARIJA  ") == "Anna Marija"
    assert same_name("PASTĀVĪGĀ  ANNA", "anna pastāvīgā")
    assert not same_name("ANNA", "ANNA ANNA") and not same_name("", "")
