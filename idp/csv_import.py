"""What every CSV import shares: reading the file (encoding, delimiter, header, records), the
row errors and the report, and the bulk helpers for comparing with the database and writing.

Used by the customer import (idp.customers.importer) and the previous-portal users' import
(idp.accounts.legacy); it imports no feature. Functions never commit: the caller owns the
transaction, so an import is all or nothing.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Row, Select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import QueryableAttribute, Session

from idp.db import READ_ONLY
from idp.identifiers import InvalidIdentifier, InvalidPersonalCode

T = TypeVar("T")
R = TypeVar("R")

# IN lists are cut to this many values: under SQLite's bound-parameter limit on any version.
CHUNK = 900
# More keys than this: read the whole table instead (see matching_rows).
WHOLE_TABLE = 5000
# Rows per bulk statement when writing, so the progress bar moves.
BATCH = 5000

# progress(phase, done, total), called now and then by an import.
Progress = Callable[[str, int, int], None]


class ImportDataError(ValueError):
    """A value or file of an import is not acceptable; the message says why, for an admin."""


class InvalidValue(ImportDataError):
    """One value of a row is not acceptable."""


class ImportFileError(ImportDataError):
    """The file as a whole cannot be imported (encoding, header); nothing was read."""


class ImportConflict(ImportDataError):
    """The data changed in the database during the import; nothing was written."""


# What a value rule raises to refuse a value; RowValues turns it into a row error.
VALUE_ERRORS = (InvalidValue, InvalidIdentifier, InvalidPersonalCode)


def clean_text(value: str, limit: int) -> str:
    """A name: NFC (a Latvian letter typed decomposed is the same letter), blanks collapsed."""
    # The checks that usually pass come first: they are C calls, the rest loops in Python.
    if not value.isprintable():
        if any(unicodedata.category(c) in ("Cc", "Cf") for c in value):
            raise InvalidValue("contains a control character (tab, line break, …)")
        value = " ".join(value.split())  # no-break and other odd spaces
    if not unicodedata.is_normalized("NFC", value):
        value = unicodedata.normalize("NFC", value)
    if "  " in value:
        value = " ".join(value.split())
    if len(value) > limit:
        raise InvalidValue(f"longer than {limit} characters")
    return value


# --- one row ---------------------------------------------------------------------------------


class RowValues:
    """The values of one row (column name -> text as in the file, trimmed: spreadsheets pad
    cells) and every reason found while parsing them, "column: reason"."""

    def __init__(self, raw: Mapping[str, str]) -> None:
        self.values = {column: value.strip() for column, value in raw.items()}
        self.reasons: list[str] = []

    def given(self, column: str) -> bool:
        return bool(self.values.get(column))

    def parse(self, column: str, parse: Callable[[str], T], *, required: bool = False) -> T | None:
        """`parse` of the value; None when it is empty (a reason if required) or refused."""
        if not self.given(column):
            if required:
                self.reasons.append(f"{column}: required")
            return None
        try:
            return parse(self.values[column])
        except VALUE_ERRORS as exc:
            self.reasons.append(f"{column}: {exc}")
            return None

    def require(self, *columns: str, why: str = "") -> None:
        self.reasons.extend(f"{c}: required{why}" for c in columns if not self.given(c))

    def forbid(self, *columns: str, why: str) -> None:
        self.reasons.extend(f"{c}: {why}" for c in columns if self.given(c))


@dataclass(slots=True)
class CheckedRow(Generic[R]):
    """One row checked on its own: the row when valid, else every reason."""

    row: R | None
    reasons: list[str]
    # The values of the file's unique columns, parsed even when the row has other problems,
    # to find duplicates across the file: column -> values.
    unique: Mapping[str, Iterable[str]]
    # Shown with the row's errors.
    customer_number: str | None


@dataclass(slots=True)
class RowError:
    line: int  # of the file, the header being line 1
    reasons: list[str]
    customer_number: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "customer_number": self.customer_number, "reasons": self.reasons}


# --- one file --------------------------------------------------------------------------------


@dataclass(slots=True)
class ImportFile(Generic[R]):
    """A file read and checked row by row, before it is compared with the database."""

    rows: list[tuple[int, R]]  # (line, row) of every valid row
    errors: list[RowError]
    delimiter: str
    # The values of each unique column on every row, valid or not, with their first line.
    lines: dict[str, dict[str, int]] = field(default_factory=dict)


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
    records: Iterator[tuple[int, list[str] | str]], columns: Sequence[str]
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


def read_file(
    data: bytes,
    columns: Sequence[str],
    check: Callable[[Mapping[str, str]], CheckedRow[R]],
    unique: Sequence[str],
    progress: Progress | None = None,
) -> ImportFile[R]:
    """Check every row of a CSV file (UTF-8, header row, `,` or `;`) with `check`, without
    the database. Every one of `columns` must be in the header (any order): a file is the
    whole truth about what it lists, and a missing column would leave it unclear whether
    that value is to be kept or cleared. A value of a `unique` column on two rows makes
    every such row an error: the file does not say which of them is right.
    """
    text = decode_csv(data)
    delimiter = csv_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    records = csv_records(reader)
    names = read_header(records, columns)
    total_lines = text.count("\n") + 1

    checked: list[tuple[int, CheckedRow[R]]] = []
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
                if len(fields) > len(names)
                else ""
            )
            errors.append(
                RowError(line, [f"expected {len(names)} fields, found {len(fields)}{hint}"])
            )
            continue
        checked.append((line, check(dict(zip(names, fields, strict=True)))))
    if progress:
        progress("checking rows", total_lines, total_lines)

    seen: dict[str, dict[str, list[int]]] = {column: defaultdict(list) for column in unique}
    for line, row in checked:
        for column, values in row.unique.items():
            for value in values:
                seen[column][value].append(line)
    extra = duplicate_reasons(seen)

    rows: list[tuple[int, R]] = []
    for line, row in checked:
        reasons = row.reasons + extra.get(line, [])
        if reasons or row.row is None:
            errors.append(RowError(line, reasons, row.customer_number))
        else:
            rows.append((line, row.row))
    errors.sort(key=lambda e: e.line)
    lines = {column: {v: found[0] for v, found in seen[column].items()} for column in unique}
    return ImportFile(rows, errors, delimiter, lines)


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


# --- the database ----------------------------------------------------------------------------


def read_only_if_dry_run(session: Session, dry_run: bool) -> None:
    """A dry run's transaction only reads: on SQLite it then does not take the write lock."""
    if dry_run and not session.in_transaction():
        session.connection(execution_options=READ_ONLY)


def chunks(values: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def matching_rows(
    session: Session,
    query: Select[*tuple[Any, ...]],
    column: ColumnElement[Any] | QueryableAttribute[Any],
    keys: Sequence[Any],
) -> Iterator[Row[*tuple[Any, ...]]]:
    """The rows of `query`, with `column` added last, whose `column` is one of `keys`.

    Many keys: one scan of the whole table, filtered here. IN-list chunks would be scanned
    once per chunk whenever the planner picks a sequential scan (PostgreSQL does on a
    freshly loaded table whose statistics are stale): minutes for 100,000 customers.
    """
    query = query.add_columns(column)
    if len(keys) > WHOLE_TABLE:
        wanted = set(keys)
        yield from (row for row in session.execute(query) if row[-1] in wanted)
        return
    for chunk in chunks(keys):
        yield from session.execute(query.where(column.in_(chunk)))


def writing_steps(progress: Progress | None, total: int) -> Callable[[int], None]:
    """step(count): `count` more rows written, reported as the "writing" phase."""
    done = 0

    def step(count: int) -> None:
        nonlocal done
        done += count
        if progress:
            progress("writing", done, total)

    return step


# --- the report ------------------------------------------------------------------------------


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


def write_if_imported(report: ImportReport, write: Callable[[], None], conflict: str) -> None:
    """Call `write` when the report imports rows and some of them change, and mark the
    report written. Every constraint was checked before, so an IntegrityError can only come
    from a concurrent writer: ImportConflict(conflict), with nothing written."""
    if not report.imported or not (report.added or report.updated):
        return
    try:
        write()
    except IntegrityError:
        raise ImportConflict(conflict) from None
    report.written = True
