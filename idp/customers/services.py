"""Customer data: the rules for one customer, the CSV import, and the registration match.

Functions take the DB session explicitly and never commit: the caller owns the transaction,
so an import is all or nothing. The import is planned in memory and written with bulk Core
statements (executemany), never one ORM flush per customer.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Row, Select, Table, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload
from stdnum.exceptions import ValidationError
from stdnum.lv import pvn

from idp.db import READ_ONLY, utcnow
from idp.email_address import InvalidEmail, parse_email
from idp.models import Customer, CustomerContract, Membership, User
from idp.models.customers import COMPANY, PERSON

T = TypeVar("T")

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

_CUSTOMERS: Table = Customer.__table__  # type: ignore[assignment]
_CONTRACTS: Table = CustomerContract.__table__  # type: ignore[assignment]


def _size(table: Table, column: str) -> int:
    length: int = table.c[column].type.length  # type: ignore[attr-defined]
    return length


# Field limits are the column sizes: an oversized value is a row error, never a DB error.
NUMBER_MAX = _size(_CUSTOMERS, "number")
NAME_MAX = _size(_CUSTOMERS, "name")
EMAIL_MAX = _size(_CUSTOMERS, "email")
CONTRACT_MAX = _size(_CONTRACTS, "number")

# Hyphens people and spreadsheets put between the two parts of a personal code.
_DASHES = str.maketrans({c: "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2212"})
# E.164: "+", a country code not starting with 0, at most 15 digits in all.
_PHONE = re.compile(r"\+[1-9][0-9]{6,14}")
_PHONE_SEPARATORS = re.compile(r"[\s\-().]")
_BLANK_OR_LIST_SEPARATOR = re.compile(r"[\s;,]")

# IN lists are cut to this many values: under SQLite's bound-parameter limit on any version.
_CHUNK = 900
# More keys than this: read the whole table instead (see matching_rows).
_WHOLE_TABLE = 5000
# Rows per bulk statement when writing, so the progress bar moves.
_BATCH = 5000

# progress(phase, done, total), called now and then by the import.
Progress = Callable[[str, int, int], None]


class CustomerDataError(ValueError):
    """A customer value or file is not acceptable; the message says why, for an admin or a
    form."""


class InvalidPersonalCode(CustomerDataError):
    """Not a valid Latvian personal code."""


class InvalidRow(CustomerDataError):
    """A row with one or more problems, each "column: reason"."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


class ImportFileError(CustomerDataError):
    """The file as a whole cannot be imported (encoding, header); nothing was read."""


class ImportConflict(CustomerDataError):
    """The customer data changed in the database during the import; nothing was written."""


# --- one value -------------------------------------------------------------------------------


def normalize_personal_code(value: str) -> str:
    """A Latvian personal code as 11 digits, from `DDMMYY-CNNNK`, `32NNNN-NNNNN` or 11 digits.

    DOMAIN.md, "Facts worth knowing": the old format is a birth date, a century digit, a
    serial and a check digit; the new one (since July 2017) starts with 32 and has no date.
    The check digit is computed by stdnum.lv.pvn; the steps are those of its validate() for
    a person, taken one by one: validate() would also pass a company's number, and it cleans
    the input again at every step, which is most of an import's time for 100,000 rows. A
    birth date in the future, which stdnum lets through, is refused.
    """
    compact = "".join(value.split()).translate(_DASHES)
    if "-" in compact:
        left, _, right = compact.partition("-")
        if len(left) != 6 or len(right) != 5:
            raise InvalidPersonalCode("the hyphen goes after the sixth digit (DDMMYY-NNNNN)")
        compact = left + right
    if compact and not (compact.isascii() and compact.isdigit()):
        raise InvalidPersonalCode("only digits and one hyphen are allowed")
    if len(compact) != 11:
        raise InvalidPersonalCode(f"a personal code has 11 digits, not {len(compact)}")
    if compact[0] > "3":
        # A day never starts with 4-9: that is a company's registration number.
        raise InvalidPersonalCode("this is not a personal code (a registration number?)")
    if not compact.startswith("32"):
        # As stdnum's get_birth_date: the century digit counts from 1800 (0: 1800s, 1: 1900s).
        century = 1800 + 100 * int(compact[6])
        try:
            born = dt.date(century + int(compact[4:6]), int(compact[2:4]), int(compact[:2]))
        except ValueError:
            raise InvalidPersonalCode("the first six digits are not a date (DDMMYY)") from None
        if born > dt.date.today():
            raise InvalidPersonalCode("the birth date is in the future")
    if pvn.calc_check_digit_pers(compact[:-1]) != compact[-1]:
        raise InvalidPersonalCode("the check digit does not match")
    return compact


def normalize_registration_number(value: str) -> str:
    """A Latvian company registration number as 11 digits.

    Entities of the Register of Enterprises have 11 digits starting with 4-9 (40…/50… for
    companies, 90… for public bodies) and a check digit: their VAT number is "LV" + the
    registration number, whose check digit stdnum.lv.pvn verifies. A number starting with
    0-3 is a personal code, i.e. a private person, not a company.
    """
    compact = "".join(value.split())
    if not (compact.isascii() and compact.isdigit()):
        raise CustomerDataError("only digits are allowed")
    if len(compact) != 11:
        raise CustomerDataError(f"a registration number has 11 digits, not {len(compact)}")
    if compact[0] < "4":
        raise CustomerDataError(
            "a registration number starts with 4-9 (this looks like a personal code)"
        )
    try:
        pvn.validate(compact)
    except ValidationError:
        raise CustomerDataError("the check digit does not match") from None
    return compact


def normalize_phone(value: str) -> str:
    """A phone number in international form without separators ("+37120000000").

    A light check only (E.164 shape): the number is for contacting the customer, nothing
    is proven by it. The OIDC phone_number claim recommends E.164, hence the compact form.
    """
    compact = _PHONE_SEPARATORS.sub("", value)
    if not _PHONE.fullmatch(compact):
        raise CustomerDataError("use the international format, e.g. +371 20000000")
    return compact


def _number(value: str, limit: int) -> str:
    """A customer or contract number: trimmed, no blanks or list separators inside."""
    value = value.strip()
    if len(value) > limit:
        raise CustomerDataError(f"longer than {limit} characters")
    if not value.isprintable() or _BLANK_OR_LIST_SEPARATOR.search(value):
        raise CustomerDataError("only letters, digits and punctuation other than ';' and ','")
    return value


def clean_text(value: str, limit: int) -> str:
    """A name: NFC (a Latvian letter typed decomposed is the same letter), blanks collapsed."""
    # The checks that usually pass come first: they are C calls, the rest loops in Python.
    if not value.isprintable():
        if any(unicodedata.category(c) in ("Cc", "Cf") for c in value):
            raise CustomerDataError("contains a control character (tab, line break, …)")
        value = " ".join(value.split())  # no-break and other odd spaces
    if not unicodedata.is_normalized("NFC", value):
        value = unicodedata.normalize("NFC", value)
    if "  " in value:
        value = " ".join(value.split())
    if len(value) > limit:
        raise CustomerDataError(f"longer than {limit} characters")
    return value


def _email(value: str) -> str:
    """Checked with the one address rule; kept in its display form, like User.email_display."""
    typed = value.strip()
    if len(typed) > EMAIL_MAX:
        raise CustomerDataError(f"longer than {EMAIL_MAX} characters")
    try:
        return parse_email(typed).display
    except InvalidEmail as exc:
        raise CustomerDataError(str(exc)) from None


def _contract_numbers(value: str) -> tuple[str, ...]:
    # Empty items ("A;;B", a trailing ";") are spreadsheet noise, not errors.
    numbers = [n.strip() for n in re.split(r"[;,]", value) if n.strip()]
    seen: set[str] = set()
    for n in numbers:
        try:
            _number(n, CONTRACT_MAX)
        except CustomerDataError as exc:
            shown = n if len(n) <= CONTRACT_MAX else n[:CONTRACT_MAX] + "…"
            raise CustomerDataError(f"{shown!r}: {exc}") from None
        if n in seen:
            raise CustomerDataError(f"{n} is listed twice")
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


@dataclass(slots=True)
class _Checked:
    row: CustomerRow | None
    reasons: list[str]
    # Parsed even when the row has other problems, to find duplicates across the file.
    number: str | None
    contracts: tuple[str, ...]


def _check_row(raw: Mapping[str, str]) -> _Checked:
    reasons: list[str] = []
    # Blanks around a value are never part of it (spreadsheets pad cells).
    values = {column: value.strip() for column, value in raw.items()}

    def given(column: str) -> bool:
        return bool(values.get(column))

    def parsed(column: str, parse: Callable[[str], T]) -> T | None:
        if not given(column):
            return None
        try:
            return parse(values[column])
        except CustomerDataError as exc:
            reasons.append(f"{column}: {exc}")
            return None

    def require(*columns: str, why: str = "") -> None:
        reasons.extend(f"{c}: required{why}" for c in columns if not given(c))

    def forbid(*columns: str, why: str) -> None:
        reasons.extend(f"{c}: {why}" for c in columns if given(c))

    require("customer_number")
    number = parsed("customer_number", lambda v: _number(v, NUMBER_MAX))
    kind = values.get("kind", "").lower()
    if kind not in (PERSON, COMPANY):
        reasons.append("kind: must be 'person' or 'company'")

    person_columns = ("given_name", "family_name", "personal_code")
    company_columns = ("company_name", "registration_number")
    if kind == PERSON:
        require(*person_columns, why=" for a person")
        forbid(*company_columns, why="only for a company (kind is person)")
    elif kind == COMPANY:
        require(*company_columns, why=" for a company")
        forbid(*person_columns, why="only for a person (kind is company)")
    # With an unknown kind every given value is still checked: all reasons in one report.
    given_name = family_name = personal_code = company_name = registration_number = None
    if kind != COMPANY:
        given_name = parsed("given_name", lambda v: clean_text(v, NAME_MAX))
        family_name = parsed("family_name", lambda v: clean_text(v, NAME_MAX))
        personal_code = parsed("personal_code", normalize_personal_code)
    if kind != PERSON:
        company_name = parsed("company_name", lambda v: clean_text(v, NAME_MAX))
        registration_number = parsed("registration_number", normalize_registration_number)
    contracts = parsed("contract_numbers", _contract_numbers) or ()
    email = parsed("email", _email)
    phone = parsed("phone", normalize_phone)

    name = company_name or ""
    if kind == PERSON and given_name and family_name:
        name = f"{given_name} {family_name}"
        if len(name) > NAME_MAX:
            reasons.append(f"given_name, family_name: longer than {NAME_MAX} characters together")
    row = None
    if not reasons and number and name:
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
    return _Checked(row, reasons, number, contracts)


def parse_row(values: Mapping[str, str]) -> CustomerRow:
    """Validate one row (column name → text as in the file); InvalidRow lists every reason."""
    checked = _check_row(values)
    if checked.row is None:
        raise InvalidRow(checked.reasons or ["not a customer"])
    return checked.row


# --- one file --------------------------------------------------------------------------------


@dataclass(slots=True)
class RowError:
    line: int  # of the file, the header being line 1
    reasons: list[str]
    customer_number: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "customer_number": self.customer_number, "reasons": self.reasons}


@dataclass(slots=True)
class CustomerFile:
    """A file read and checked row by row, before it is compared with the database."""

    rows: list[tuple[int, CustomerRow]]  # (line, row) of every valid row
    errors: list[RowError]
    delimiter: str
    # Customer numbers of every row, valid or not, with their first line.
    lines: dict[str, int] = field(default_factory=dict)


def _csv_reason(exc: csv.Error) -> str:
    text = str(exc)
    if text.startswith("field larger than field limit"):
        return f"a field is longer than {csv.field_size_limit()} characters"
    return f"not valid CSV ({text}); a field with quotes must be quoted, inner quotes doubled"


def csv_records(reader: Any) -> Iterator[tuple[int, list[str] | str]]:
    """(first line, fields) of every record, or (first line, why it is not CSV)."""
    end = 0
    while True:
        try:
            fields: list[str] | str = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            fields = _csv_reason(exc)
        yield end + 1, fields
        if reader.line_num == end:  # an error that consumed nothing would repeat forever
            return
        end = reader.line_num


def decode_csv(data: bytes) -> str:
    try:
        # utf-8-sig: Excel's "CSV UTF-8" starts with a byte order mark.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ImportFileError(
            f"line {line}: not UTF-8 text (in Excel: save as 'CSV UTF-8')"
        ) from None


def csv_delimiter(text: str) -> str:
    # The column names contain neither, so the header says which one the file uses:
    # ";" from spreadsheets in Latvian (and most European) locales, "," elsewhere.
    header = text.lstrip("\r\n").split("\n", 1)[0]
    return ";" if header.count(";") > header.count(",") else ","


def read_header(
    records: Iterator[tuple[int, list[str] | str]], columns: Sequence[str] = COLUMNS
) -> list[str]:
    """The column names of the first non-blank record; every one of `columns`, no other."""
    for line, fields in records:
        if isinstance(fields, str):
            raise ImportFileError(f"line {line}: {fields}")
        if not any(f.strip() for f in fields):
            continue
        names = [f.strip().lower() for f in fields]
        unknown = [n for n in names if n not in columns]
        missing = [c for c in columns if c not in names]
        twice = sorted({n for n in names if names.count(n) > 1})
        if unknown or missing or twice:
            problems = [
                f"{what}: {', '.join(found)}"
                for what, found in (("unknown", unknown), ("missing", missing), ("twice", twice))
                if found
            ]
            raise ImportFileError(
                f"line {line}: the header must name the columns {', '.join(columns)} "
                f"(any order) — {'; '.join(problems)}"
            )
        return names
    raise ImportFileError("the file is empty: the first line must name the columns")


def read_customer_file(data: bytes, progress: Progress | None = None) -> CustomerFile:
    """Check every row of a CSV file (UTF-8, header row, `,` or `;`), without the database.

    A customer or contract number on two rows makes both rows errors: the file does not
    say which of them is right.
    """
    text = decode_csv(data)
    delimiter = csv_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    records = csv_records(reader)
    names = read_header(records)
    total_lines = text.count("\n") + 1

    checked: list[tuple[int, _Checked]] = []
    errors: list[RowError] = []
    for line, fields in records:
        if progress and line % 1000 == 0:
            progress("checking rows", line, total_lines)
        if isinstance(fields, str):
            errors.append(RowError(line, [fields]))
            continue
        if not any(f.strip() for f in fields):
            continue  # blank line, or a row of empty cells as spreadsheets export them
        if len(fields) != len(names):
            hint = (
                " (a delimiter inside a field needs double quotes)"
                if (len(fields) > len(names))
                else ""
            )
            errors.append(
                RowError(line, [f"expected {len(names)} fields, found {len(fields)}{hint}"])
            )
            continue
        checked.append((line, _check_row(dict(zip(names, fields, strict=True)))))
    if progress:
        progress("checking rows", total_lines, total_lines)

    by_number: dict[str, list[int]] = defaultdict(list)
    by_contract: dict[str, list[int]] = defaultdict(list)
    for line, check in checked:
        if check.number:
            by_number[check.number].append(line)
        for contract in check.contracts:
            by_contract[contract].append(line)
    extra = duplicate_reasons({"customer_number": by_number, "contract_numbers": by_contract})

    rows: list[tuple[int, CustomerRow]] = []
    for line, check in checked:
        reasons = check.reasons + extra.get(line, [])
        if reasons or check.row is None:
            errors.append(RowError(line, reasons, check.number))
        else:
            rows.append((line, check.row))
    errors.sort(key=lambda e: e.line)
    lines = {number: found[0] for number, found in by_number.items()}
    return CustomerFile(rows, errors, delimiter, lines)


# --- import ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Existing:
    id: int
    values: tuple[str | None, ...]
    contracts: dict[str, int] = field(default_factory=dict)  # number -> contract id


@dataclass(slots=True)
class ImportReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    dry_run: bool = False
    # The file had errors and skip_invalid was not given: nothing was imported.
    refused: bool = False
    # True when the database was changed (in the caller's transaction, still to commit).
    written: bool = False

    @property
    def rejected(self) -> int:
        return len(self.errors)

    @property
    def imported(self) -> bool:
        """The valid rows are in the database now (also when none of them changed)."""
        return not (self.dry_run or self.refused)

    def summary(self) -> str:
        return (
            f"added {self.added}, updated {self.updated}, unchanged {self.unchanged}, "
            f"rejected {self.rejected}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "imported": self.imported,
            "dry_run": self.dry_run,
            "errors": [e.as_dict() for e in self.errors],
        }


def chunks(values: Sequence[T], size: int = _CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def matching_rows(
    session: Session, query: Select[Any], column: ColumnElement[Any], keys: Sequence[Any]
) -> Iterator[Row[Any]]:
    """The rows of `query`, with `column` added last, whose `column` is one of `keys`.

    Many keys: one scan of the whole table, filtered here. IN-list chunks would be scanned
    once per chunk whenever the planner picks a sequential scan (PostgreSQL does on a
    freshly loaded table whose statistics are stale): minutes for 100,000 customers.
    """
    query = query.add_columns(column)
    if len(keys) > _WHOLE_TABLE:
        wanted = set(keys)
        yield from (row for row in session.execute(query) if row[-1] in wanted)
        return
    for chunk in chunks(keys):
        yield from session.execute(query.where(column.in_(chunk)))


def _load_existing(session: Session, numbers: Sequence[str]) -> dict[str, _Existing]:
    """The customers of the file already in the database, with their contracts."""
    c, cc = _CUSTOMERS.c, _CONTRACTS.c
    query = select(c.id, *(c[name] for name in FIELDS))
    existing = {
        row[-1]: _Existing(row[0], tuple(row[1:-1]))
        for row in matching_rows(session, query, c.number, numbers)
    }
    by_id = {e.id: e for e in existing.values()}
    for contract_id, number, customer_id in matching_rows(
        session, select(cc.id, cc.number), cc.customer_id, list(by_id)
    ):
        by_id[customer_id].contracts[number] = contract_id
    return existing


def _contract_owners(session: Session, contracts: Sequence[str]) -> dict[str, str]:
    """Contract number -> the number of the customer holding it now."""
    c, cc = _CUSTOMERS.c, _CONTRACTS.c
    query = select(c.number).join_from(_CONTRACTS, _CUSTOMERS, c.id == cc.customer_id)
    return {
        contract: owner for owner, contract in matching_rows(session, query, cc.number, contracts)
    }


def _reject_taken_contracts(
    parsed: CustomerFile, accepted: dict[str, tuple[int, CustomerRow]], owners: dict[str, str]
) -> list[RowError]:
    """Reject rows naming a contract another customer holds, unless that customer's row in
    the same file gives it up: then the contract moves. Rejecting that row keeps the
    contract where it is, so rows depending on it are checked again (a worklist)."""
    claimants: dict[str, list[str]] = defaultdict(list)  # holder -> rows taking its contracts
    for number, (_line, row) in accepted.items():
        for contract in row.contract_numbers:
            holder = owners.get(contract)
            if holder is not None and holder != number:
                claimants[holder].append(number)
    errors: list[RowError] = []
    queue = list(accepted)
    while queue:
        number = queue.pop()
        if number not in accepted:
            continue
        line, row = accepted[number]
        reasons = []
        for contract in row.contract_numbers:
            holder = owners.get(contract)
            if holder is None or holder == number or holder in accepted:
                continue
            because = " (its row is rejected)" if holder in parsed.lines else ""
            reasons.append(f"contract_numbers: {contract} belongs to customer {holder}{because}")
        if reasons:
            del accepted[number]
            errors.append(RowError(line, reasons, number))
            queue.extend(claimants.get(number, ()))
    return errors


def import_customers(
    session: Session,
    data: bytes,
    *,
    skip_invalid: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Import a customer CSV file: upsert by customer number, in the caller's transaction.

    Nothing is written when a row has errors, unless skip_invalid (then the valid rows are
    written and the others reported), or when dry_run. Customers absent from the file are
    left alone. An updated customer's contracts become exactly those of the file; an
    unchanged one (every field and the contract set equal) is not touched, updated_at
    included. Raises ImportFileError for a file that cannot be read at all.
    """
    parsed = read_customer_file(data, progress)
    if dry_run and not session.in_transaction():
        # On SQLite a read-only transaction does not take the write lock.
        session.connection(execution_options=READ_ONLY)
    accepted = {row.number: (line, row) for line, row in parsed.rows}
    if progress:
        progress("comparing with the database", 0, 2)
    existing = _load_existing(session, list(accepted))
    if progress:
        progress("comparing with the database", 1, 2)
    contracts = [n for _line, row in parsed.rows for n in row.contract_numbers]
    errors = parsed.errors + _reject_taken_contracts(
        parsed, accepted, _contract_owners(session, contracts)
    )
    if progress:
        progress("comparing with the database", 2, 2)
    errors.sort(key=lambda e: e.line)

    added: list[CustomerRow] = []
    updated: list[tuple[_Existing, CustomerRow]] = []
    unchanged = 0
    for _line, row in sorted(accepted.values(), key=lambda item: item[0]):
        old = existing.get(row.number)
        if old is None:
            added.append(row)
        elif old.values == row.values() and old.contracts.keys() == set(row.contract_numbers):
            unchanged += 1
        else:
            updated.append((old, row))
    report = ImportReport(
        len(added),
        len(updated),
        unchanged,
        errors,
        dry_run=dry_run,
        refused=bool(errors) and not skip_invalid,
    )
    if not report.imported or not (added or updated):
        return report
    try:
        _write(session, added, updated, progress)
    except IntegrityError:
        # Only a concurrent writer can cause this: every constraint was checked above.
        raise ImportConflict(
            "the customer data changed during the import; nothing was written, run it again"
        ) from None
    report.written = True
    return report


def _write(
    session: Session,
    added: list[CustomerRow],
    updated: list[tuple[_Existing, CustomerRow]],
    progress: Progress | None,
) -> None:
    """Bulk statements only: executemany is pipelined by psycopg and cheap on SQLite, where
    100,000 ORM flushes (or INSERT … RETURNING, 4x slower on PostgreSQL) would not be."""
    c = _CUSTOMERS.c
    now = utcnow()
    total = len(added) + len(updated)
    done = 0

    def step(count: int) -> None:
        nonlocal done
        done += count
        if progress:
            progress("writing", done, total)

    # Contracts an updated customer gives up go first: one moving to another customer in
    # the same file must be free before it is inserted again (customer_contracts.number is
    # unique).
    stale = [
        contract_id
        for old, row in updated
        for number, contract_id in old.contracts.items()
        if number not in row.contract_numbers
    ]
    for chunk in chunks(stale):
        session.execute(delete(_CONTRACTS).where(_CONTRACTS.c.id.in_(chunk)))

    new_contracts: list[dict[str, Any]] = []
    set_values = update(_CUSTOMERS).where(c.id == bindparam("customer_id"))
    for batch in chunks(updated, _BATCH):
        session.execute(
            set_values,
            [
                {
                    "customer_id": old.id,
                    "updated_at": now,
                    **dict(zip(FIELDS, row.values(), strict=True)),
                }
                for old, row in batch
            ],
        )
        new_contracts.extend(
            {"customer_id": old.id, "number": n}
            for old, row in batch
            for n in row.contract_numbers
            if n not in old.contracts
        )
        step(len(batch))

    for batch in chunks(added, _BATCH):
        session.execute(
            insert(_CUSTOMERS),
            [
                {
                    "number": row.number,
                    "created_at": now,
                    "updated_at": now,
                    **dict(zip(FIELDS, row.values(), strict=True)),
                }
                for row in batch
            ],
        )
        step(len(batch))
    if any(row.contract_numbers for row in added):
        ids = {
            number: id_
            for id_, number in matching_rows(
                session, select(c.id), c.number, [row.number for row in added]
            )
        }
        new_contracts.extend(
            {"customer_id": ids[row.number], "number": n}
            for row in added
            for n in row.contract_numbers
        )

    for batch in chunks(new_contracts, _BATCH):
        session.execute(insert(_CONTRACTS), list(batch))


def duplicate_reasons(columns: Mapping[str, Mapping[str, list[int]]]) -> dict[int, list[str]]:
    """Row errors for values that stand on more than one line of a file: column -> value ->
    the lines it is on. Every such line gets the reason, since the file does not say which
    one is right."""
    extra: dict[int, list[str]] = defaultdict(list)
    for column, occurrences in columns.items():
        for value, lines in occurrences.items():
            if len(lines) > 1:
                on = ", ".join(map(str, lines))
                for line in lines:
                    extra[line].append(f"{column}: {value} is on lines {on}")
    return extra


# --- reading and matching --------------------------------------------------------------------


def get_customer(session: Session, number: str) -> Customer | None:
    return session.scalar(
        select(Customer)
        .where(Customer.number == number.strip())
        .options(selectinload(Customer.contracts))
    )


def list_customers(session: Session, limit: int | None = None) -> list[Customer]:
    query = select(Customer).order_by(Customer.number).options(selectinload(Customer.contracts))
    if limit:
        query = query.limit(limit)
    return list(session.scalars(query))


def customer_users(session: Session, customer: Customer) -> list[tuple[Membership, User]]:
    """The portal users linked to a customer, with their membership (role, state)."""
    query = (
        select(Membership, User)
        .join(User, User.id == Membership.user_id)
        .where(Membership.customer_id == customer.id)
        .order_by(User.email)
    )
    return [(membership, user) for membership, user in session.execute(query)]


def _compact_identifier(value: str) -> str:
    return "".join(value.split()).translate(_DASHES).replace("-", "")


def find_customer_for_registration(
    session: Session, number: str, identifier: str
) -> Customer | None:
    """The customer a person registering by e-mail may act for, or None.

    DOMAIN.md flow 2: the data typed must match the customer data. `number` is the customer
    number or one of its contract numbers; `identifier` the personal code of a private person
    (with or without the hyphen) or the registration number of a company. Any mismatch gives
    the same None, so a form cannot tell which half was wrong.
    """
    number = number.strip()
    code = _compact_identifier(identifier)
    if not number or not code or len(number) > max(NUMBER_MAX, CONTRACT_MAX):
        return None
    candidates = [
        session.scalar(select(Customer).where(Customer.number == number)),
        # A value may be one customer's number and another's contract: try both.
        session.scalar(
            select(Customer).join(CustomerContract).where(CustomerContract.number == number)
        ),
    ]
    for customer in candidates:
        if customer is None:
            continue
        expected = (
            customer.personal_code if customer.kind == PERSON else customer.registration_number
        )
        if expected and expected == code:
            return customer
    return None
