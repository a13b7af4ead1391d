"""Users of the previous portal (docs/domain.md flow 4): the CSV import that loads them.

A legacy user has no password: the first login must be by bank or eSignature asserting the
personal code loaded here (idp.accounts.upstream._legacy_user), then the contact form comes
before anything else (contact_confirmed False). The file is read and reported as every CSV
import is (idp.csv_import); functions never commit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from idp.accounts.registration import CONTRACTOR
from idp.accounts.services import AccountError, parse_address
from idp.csv_import import (
    BATCH,
    CheckedRow,
    ImportFile,
    ImportReport,
    InvalidValue,
    Progress,
    RowError,
    RowValues,
    chunks,
    clean_text,
    matching_rows,
    read_file,
    read_only_if_dry_run,
    write_if_imported,
    writing_steps,
)
from idp.identifiers import normalize_personal_code, normalize_phone
from idp.models import Customer, Membership, User
from idp.models.users import ACTIVE

# Every column must be in the header (any order), phone too though its value may be empty:
# as in the customer import, a missing column would leave it unclear whether an existing
# user's value is to be kept or cleared.
COLUMNS: tuple[str, ...] = ("email", "name", "personal_code", "customer_number", "phone")
# One user per e-mail and per personal code: the file does not say which of two rows is right.
UNIQUE: tuple[str, ...] = ("email", "personal_code")

_USERS: Table = User.__table__  # type: ignore[assignment]
_MEMBERSHIPS: Table = Membership.__table__  # type: ignore[assignment]
EMAIL_MAX: int = _USERS.c.email.type.length  # type: ignore[attr-defined]
NAME_MAX: int = _USERS.c.name.type.length  # type: ignore[attr-defined]

EMAIL_TAKEN = "an account with this e-mail already exists"
CODE_TAKEN = "this personal code belongs to another user"
NO_CUSTOMER = "no customer with this number"


@dataclass(frozen=True, slots=True)
class LegacyUserRow:
    """One previous-portal user as the file states it, validated and normalised."""

    email: str  # normalised (User.email)
    email_display: str  # as typed, trimmed
    name: str
    personal_code: str  # 11 digits, NOT verified
    customer_number: str
    phone: str | None

    def values(self) -> tuple[str, str | None, str]:
        """What an update may change: name, phone, legacy_personal_code."""
        return (self.name, self.phone, self.personal_code)


def _email(value: str) -> tuple[str, str]:
    if len(value) > EMAIL_MAX:
        raise InvalidValue(f"longer than {EMAIL_MAX} characters")
    try:
        address = parse_address(value)
        return address.normalized, address.display
    except AccountError as exc:
        raise InvalidValue(str(exc)) from None


def _name(value: str) -> str:
    name = clean_text(value, NAME_MAX)
    if not name:
        raise InvalidValue("required")
    return name


def _check_row(raw: Mapping[str, str]) -> CheckedRow[LegacyUserRow]:
    v = RowValues(raw)
    email = v.parse("email", _email, required=True)
    name = v.parse("name", _name, required=True)
    code = v.parse("personal_code", normalize_personal_code, required=True)
    number = v.parse("customer_number", str, required=True)
    phone = v.parse("phone", normalize_phone)
    row = None
    if not v.reasons and email and name and code and number:
        row = LegacyUserRow(
            email=email[0],
            email_display=email[1],
            name=name,
            personal_code=code,
            customer_number=number,
            phone=phone,
        )
    unique = {"email": (email[0],) if email else (), "personal_code": (code,) if code else ()}
    return CheckedRow(row, v.reasons, unique, number)


def read_legacy_file(data: bytes, progress: Progress | None = None) -> ImportFile[LegacyUserRow]:
    """Check every row of a previous-portal CSV file, without the database
    (idp.csv_import.read_file: an e-mail or personal code on two rows makes every such row
    an error)."""
    return read_file(data, COLUMNS, _check_row, UNIQUE, progress)


# --- import ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Existing:
    id: int
    legacy: bool
    verified_personal_code: str | None
    values: tuple[str, str | None, str | None]  # name, phone, legacy_personal_code
    customer_ids: set[int]


def _load_users(session: Session, emails: list[str]) -> dict[str, _Existing]:
    u, m = _USERS.c, _MEMBERSHIPS.c
    query = select(
        u.id, u.legacy, u.verified_personal_code, u.name, u.phone, u.legacy_personal_code
    )
    users = {
        row[-1]: _Existing(row[0], row[1], row[2], (row[3], row[4], row[5]), set())
        for row in matching_rows(session, query, u.email, emails)
    }
    legacy = {e.id: e for e in users.values() if e.legacy}
    for customer_id, user_id in matching_rows(
        session, select(m.customer_id), m.user_id, list(legacy)
    ):
        legacy[user_id].customer_ids.add(customer_id)
    return users


def _code_owners(session: Session, codes: list[str]) -> dict[str, set[int]]:
    """Personal code -> the users holding it: verified, or loaded for another legacy user."""
    u = _USERS.c
    owners: dict[str, set[int]] = defaultdict(set)
    for user_id, code in matching_rows(session, select(u.id), u.verified_personal_code, codes):
        owners[code].add(user_id)
    for user_id, code in matching_rows(
        session, select(u.id).where(u.legacy.is_(True)), u.legacy_personal_code, codes
    ):
        owners[code].add(user_id)
    return owners


def import_legacy_users(
    session: Session,
    data: bytes,
    *,
    skip_invalid: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Import previous-portal users from CSV: upsert by normalised e-mail, in the caller's
    transaction, each user the contractor of the customer its row names.

    A new row makes a legacy user without a password (active, e-mail not verified, contact
    form owed). An existing legacy user gets the file's name, phone and personal code, and
    the membership if missing (never removed, role or state never changed). Row errors,
    besides the values: an unknown customer number, an e-mail of a non-legacy account (never
    touched), a personal code of another user. A legacy user who has already logged in by
    bank or eSignature owns the data now: the row is counted unchanged and not applied.
    Nothing is written when a row has errors unless skip_invalid, nor when dry_run.
    Raises ImportFileError for a file that cannot be read at all.
    """
    parsed = read_legacy_file(data, progress)
    read_only_if_dry_run(session, dry_run)
    rows = parsed.rows
    if progress:
        progress("comparing with the database", 0, 3)
    customers = {
        number: id_
        for id_, number in matching_rows(
            session,
            select(Customer.id),
            Customer.number,
            sorted({r.customer_number for _l, r in rows}),
        )
    }
    if progress:
        progress("comparing with the database", 1, 3)
    users = _load_users(session, [r.email for _l, r in rows])
    if progress:
        progress("comparing with the database", 2, 3)
    owners = _code_owners(session, [r.personal_code for _l, r in rows])
    if progress:
        progress("comparing with the database", 3, 3)

    errors = list(parsed.errors)
    added: list[tuple[LegacyUserRow, int]] = []  # (row, customer id)
    updated: list[tuple[_Existing, LegacyUserRow, int]] = []
    unchanged = 0
    for line, row in rows:
        old = users.get(row.email)
        reasons = []
        customer_id = customers.get(row.customer_number)
        if customer_id is None:
            reasons.append(f"customer_number: {NO_CUSTOMER}")
        if old is not None and not old.legacy:
            reasons.append(f"email: {EMAIL_TAKEN}")
        if owners.get(row.personal_code, set()) - {old.id if old else -1}:
            reasons.append(f"personal_code: {CODE_TAKEN}")
        if reasons or customer_id is None:
            errors.append(RowError(line, reasons, row.customer_number))
        elif old is None:
            added.append((row, customer_id))
        elif old.verified_personal_code is not None or (
            old.values == row.values() and customer_id in old.customer_ids
        ):
            unchanged += 1
        else:
            updated.append((old, row, customer_id))
    errors.sort(key=lambda e: e.line)

    report = ImportReport(
        len(added),
        len(updated),
        unchanged,
        errors,
        dry_run=dry_run,
        refused=bool(errors) and not skip_invalid,
    )
    write_if_imported(
        report,
        lambda: _write(session, added, updated, progress),
        "the users changed during the import; nothing was written, run it again",
    )
    return report


def _write(
    session: Session,
    added: list[tuple[LegacyUserRow, int]],
    updated: list[tuple[_Existing, LegacyUserRow, int]],
    progress: Progress | None,
) -> None:
    """Bulk statements, as the customer import (executemany, no ORM flush per user)."""
    u = _USERS.c
    step = writing_steps(progress, len(added) + len(updated))

    memberships: list[dict[str, Any]] = []
    set_values = update(_USERS).where(u.id == bindparam("user_id"))
    for batch in chunks(updated, BATCH):
        session.execute(
            set_values,
            [
                {
                    "user_id": old.id,
                    "name": row.name,
                    "phone": row.phone,
                    "legacy_personal_code": row.personal_code,
                }
                for old, row, _c in batch
            ],
        )
        memberships.extend(
            {"user_id": old.id, "customer_id": customer_id, "role": CONTRACTOR}
            for old, _row, customer_id in batch
            if customer_id not in old.customer_ids
        )
        step(len(batch))

    for new_batch in chunks(added, BATCH):
        session.execute(
            insert(_USERS),
            [
                {
                    "email": row.email,
                    "email_display": row.email_display,
                    "name": row.name,
                    "phone": row.phone,
                    "password_hash": None,
                    "status": ACTIVE,
                    "email_verified": False,
                    "legacy": True,
                    "contact_confirmed": False,
                    "legacy_personal_code": row.personal_code,
                }
                for row, _c in new_batch
            ],
        )
        step(len(new_batch))
    if added:
        ids = {
            email: id_
            for id_, email in matching_rows(
                session, select(u.id), u.email, [row.email for row, _c in added]
            )
        }
        memberships.extend(
            {"user_id": ids[row.email], "customer_id": customer_id, "role": CONTRACTOR}
            for row, customer_id in added
        )

    for membership_batch in chunks(memberships, BATCH):
        session.execute(insert(_MEMBERSHIPS), list(membership_batch))
