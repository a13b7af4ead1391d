"""One customer as an import file states it: the columns, the rules for each value, and the
file read row by row (with idp.csv_import), before anything is compared with the database."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Table

from idp.csv_import import (
    CheckedRow,
    ImportDataError,
    ImportFile,
    InvalidValue,
    Progress,
    RowValues,
    clean_text,
    read_file,
)
from idp.email_address import InvalidEmail, parse_email
from idp.identifiers import normalize_personal_code, normalize_phone, normalize_registration_number
from idp.models import Customer, CustomerContract
from idp.models.customers import COMPANY, PERSON

# The columns of an import file, in the order the README documents them. Every one must be
# in the header (any order): a file is the whole truth about the customers it lists, and a
# missing column would leave it unclear whether that value is to be kept or cleared.
COLUMNS: tuple[str, ...] = (
    "customer_number",
    "kind",
    "given_name",
    "family_name",
    "company_name",
    "personal_code",
    "registration_number",
    "contract_numbers",
    "email",
    "phone",
)
# No two rows of a file may name the same customer or contract.
UNIQUE: tuple[str, ...] = ("customer_number", "contract_numbers")

# The customer columns an import writes and compares ("unchanged" = all equal, same contracts).
FIELDS: tuple[str, ...] = (
    "kind",
    "name",
    "given_name",
    "family_name",
    "personal_code",
    "registration_number",
    "email",
    "phone",
)

CUSTOMERS: Table = Customer.__table__  # type: ignore[assignment]
CONTRACTS: Table = CustomerContract.__table__  # type: ignore[assignment]


def _size(table: Table, column: str) -> int:
    length: int = table.c[column].type.length  # type: ignore[attr-defined]
    return length


# Field limits are the column sizes: an oversized value is a row error, never a DB error.
NUMBER_MAX = _size(CUSTOMERS, "number")
NAME_MAX = _size(CUSTOMERS, "name")
EMAIL_MAX = _size(CUSTOMERS, "email")
CONTRACT_MAX = _size(CONTRACTS, "number")

_BLANK_OR_LIST_SEPARATOR = re.compile(r"[\s;,]")


class InvalidRow(ImportDataError):
    """A row with one or more problems, each "column: reason"."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


# --- one value -------------------------------------------------------------------------------


def _number(value: str, limit: int) -> str:
    """A customer or contract number: trimmed, no blanks or list separators inside."""
    value = value.strip()
    if len(value) > limit:
        raise InvalidValue(f"longer than {limit} characters")
    if not value.isprintable() or _BLANK_OR_LIST_SEPARATOR.search(value):
        raise InvalidValue("only letters, digits and punctuation other than ';' and ','")
    return value


def _email(value: str) -> str:
    """Checked with the one address rule; kept in its display form, like User.email_display."""
    typed = value.strip()
    if len(typed) > EMAIL_MAX:
        raise InvalidValue(f"longer than {EMAIL_MAX} characters")
    try:
        return parse_email(typed).display
    except InvalidEmail as exc:
        raise InvalidValue(str(exc)) from None


def _contract_numbers(value: str) -> tuple[str, ...]:
    # Empty items ("A;;B", a trailing ";") are spreadsheet noise, not errors.
    numbers = [n.strip() for n in re.split(r"[;,]", value) if n.strip()]
    seen: set[str] = set()
    for n in numbers:
        try:
            _number(n, CONTRACT_MAX)
        except InvalidValue as exc:
            shown = n if len(n) <= CONTRACT_MAX else n[:CONTRACT_MAX] + "…"
            raise InvalidValue(f"{shown!r}: {exc}") from None
        if n in seen:
            raise InvalidValue(f"{n} is listed twice")
        seen.add(n)
    return tuple(numbers)


# --- one row ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CustomerRow:
    """One customer as a file states it, validated and normalised."""

    number: str
    kind: str
    name: str
    given_name: str | None
    family_name: str | None
    personal_code: str | None
    registration_number: str | None
    email: str | None
    phone: str | None
    contract_numbers: tuple[str, ...] = ()

    def values(self) -> tuple[str | None, ...]:
        """The customer columns, in the order of FIELDS."""
        return tuple(getattr(self, name) for name in FIELDS)


def check_row(raw: Mapping[str, str]) -> CheckedRow[CustomerRow]:
    """One row on its own (column name -> text as in the file), every reason collected."""
    v = RowValues(raw)
    v.require("customer_number")
    number = v.parse("customer_number", lambda s: _number(s, NUMBER_MAX))
    kind = v.values.get("kind", "").lower()
    if kind not in (PERSON, COMPANY):
        v.reasons.append("kind: must be 'person' or 'company'")

    person_columns = ("given_name", "family_name", "personal_code")
    company_columns = ("company_name", "registration_number")
    if kind == PERSON:
        v.require(*person_columns, why=" for a person")
        v.forbid(*company_columns, why="only for a company (kind is person)")
    elif kind == COMPANY:
        v.require(*company_columns, why=" for a company")
        v.forbid(*person_columns, why="only for a person (kind is company)")
    # With an unknown kind every given value is still checked: all reasons in one report.
    given_name = family_name = personal_code = company_name = registration_number = None
    if kind != COMPANY:
        given_name = v.parse("given_name", lambda s: clean_text(s, NAME_MAX))
        family_name = v.parse("family_name", lambda s: clean_text(s, NAME_MAX))
        personal_code = v.parse("personal_code", normalize_personal_code)
    if kind != PERSON:
        company_name = v.parse("company_name", lambda s: clean_text(s, NAME_MAX))
        registration_number = v.parse("registration_number", normalize_registration_number)
    contracts = v.parse("contract_numbers", _contract_numbers) or ()
    email = v.parse("email", _email)
    phone = v.parse("phone", normalize_phone)

    name = company_name or ""
    if kind == PERSON and given_name and family_name:
        name = f"{given_name} {family_name}"
        if len(name) > NAME_MAX:
            v.reasons.append(f"given_name, family_name: longer than {NAME_MAX} characters together")
    row = None
    if not v.reasons and number and name:
        row = CustomerRow(
            number=number,
            kind=kind,
            name=name,
            given_name=given_name,
            family_name=family_name,
            personal_code=personal_code,
            registration_number=registration_number,
            email=email,
            phone=phone,
            contract_numbers=contracts,
        )
    unique = {"customer_number": (number,) if number else (), "contract_numbers": contracts}
    return CheckedRow(row, v.reasons, unique, number)


def parse_row(values: Mapping[str, str]) -> CustomerRow:
    """Validate one row (column name → text as in the file); InvalidRow lists every reason."""
    checked = check_row(values)
    if checked.row is None:
        raise InvalidRow(checked.reasons or ["not a customer"])
    return checked.row


# --- one file --------------------------------------------------------------------------------

CustomerFile = ImportFile[CustomerRow]


def read_customer_file(data: bytes, progress: Progress | None = None) -> CustomerFile:
    """Check every row of a customer CSV file, without the database (idp.csv_import.read_file:
    a customer or contract number on two rows makes both rows errors)."""
    return read_file(data, COLUMNS, check_row, UNIQUE, progress)
