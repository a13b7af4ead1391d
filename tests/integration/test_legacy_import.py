"""Flow 4: admins load the users of the previous portal with `idp users import-legacy`.
They get no password (the first login is by bank or eSignature) and owe the contact form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from flask.testing import FlaskCliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp import cli_output
from idp.accounts.legacy import COLUMNS
from idp.models import Customer, Membership, User
from tests.conftest import PASSWORD, Browser

HEADER = ",".join(COLUMNS)
# email, name, personal_code, customer_number, phone
ANNA = "Anna.Ozola@Example.LV,Anna Ozola,010190-10001,100200300,+371 2612 3456"
PETERIS = "peteris@example.lv,Pēteris Kalns,32000000016,100200300,"
ANNA_CODE, PETERIS_CODE = "01019010001", "32000000016"


def write_csv(tmp_path: Path, *lines: str, name: str = "legacy.csv") -> str:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def run(runner: FlaskCliRunner, path: str, *options: str) -> Result:
    return runner.invoke(args=["users", "import-legacy", path, *options])


def imported(runner: FlaskCliRunner, path: str, *options: str) -> list[str]:
    result = run(runner, path, *options)
    assert result.exit_code == 0, result.output
    lines: list[str] = result.stdout.splitlines()
    return lines


def stored(db: Session) -> dict[str, tuple[User, list[tuple[str, str, str]]]]:
    """Every user by e-mail, with its memberships as (customer number, role, state)."""
    db.expire_all()
    found = {}
    for user in db.scalars(select(User)):
        memberships = [
            (c.number, m.role, m.state)
            for m, c in db.execute(
                select(Membership, Customer)
                .join(Customer, Customer.id == Membership.customer_id)
                .where(Membership.user_id == user.id)
                .order_by(Customer.number)
            )
        ]
        found[user.email] = (user, memberships)
    db.commit()  # end the read: on SQLite it holds the write lock the next command needs
    return found


@pytest.fixture
def second_customer(db: Session, customer: Customer) -> Customer:
    row = Customer(
        number="100200400", kind="company", name="SIA Kalns", registration_number="40003521600"
    )
    db.add(row)
    db.commit()
    return row


def test_previous_portal_users_are_loaded_without_password_and_owe_the_contact_form(
    runner: FlaskCliRunner, db: Session, customer: Customer, tmp_path: Path
) -> None:
    path = write_csv(tmp_path, HEADER, ANNA, PETERIS)
    assert imported(runner, path) == ["added 2, updated 0, unchanged 0, rejected 0"]

    users = stored(db)
    assert sorted(users) == ["anna.ozola@example.lv", "peteris@example.lv"]
    anna, anna_memberships = users["anna.ozola@example.lv"]
    assert (anna.email_display, anna.name, anna.phone) == (
        "Anna.Ozola@Example.LV",
        "Anna Ozola",
        "+37126123456",
    )
    assert (anna.legacy, anna.legacy_personal_code, anna.verified_personal_code) == (
        True,
        ANNA_CODE,
        None,
    )
    assert anna.password_hash is None
    assert (anna.status, anna.email_verified, anna.contact_confirmed) == ("active", False, False)
    assert anna_memberships == [("100200300", "contractor", "active")]
    peteris, peteris_memberships = users["peteris@example.lv"]
    assert (peteris.phone, peteris.legacy_personal_code, peteris.password_hash) == (
        None,
        PETERIS_CODE,
        None,
    )
    assert peteris_memberships == [("100200300", "contractor", "active")]


def test_importing_the_same_file_again_changes_nothing(
    runner: FlaskCliRunner, db: Session, customer: Customer, tmp_path: Path
) -> None:
    path = write_csv(tmp_path, HEADER, ANNA, PETERIS)
    imported(runner, path)
    before = {e: (u.subject, u.name, u.phone, m) for e, (u, m) in stored(db).items()}

    assert imported(runner, path) == ["added 0, updated 0, unchanged 2, rejected 0"]
    assert {e: (u.subject, u.name, u.phone, m) for e, (u, m) in stored(db).items()} == before


def test_a_changed_row_updates_its_legacy_user_and_adds_a_missing_membership(
    runner: FlaskCliRunner, db: Session, second_customer: Customer, tmp_path: Path
) -> None:
    imported(runner, write_csv(tmp_path, HEADER, ANNA, PETERIS))
    changed = write_csv(
        tmp_path,
        HEADER,
        "anna.ozola@example.lv,Anna Kalna,32999999995,100200300,",
        "PETERIS@example.lv,Pēteris Kalns,32000000016,100200400,",
        name="changed.csv",
    )
    assert imported(runner, changed) == ["added 0, updated 2, unchanged 0, rejected 0"]

    users = stored(db)
    anna, anna_memberships = users["anna.ozola@example.lv"]
    assert (anna.name, anna.phone, anna.legacy_personal_code) == ("Anna Kalna", None, "32999999995")
    assert anna.email_display == "Anna.Ozola@Example.LV"  # the account, not the file's case
    assert anna_memberships == [("100200300", "contractor", "active")]
    # A membership is added, never taken away.
    assert users["peteris@example.lv"][1] == [
        ("100200300", "contractor", "active"),
        ("100200400", "contractor", "active"),
    ]


def test_every_bad_row_is_reported_with_its_line_and_nothing_is_imported(
    runner: FlaskCliRunner, db: Session, customer: Customer, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path,
        HEADER,
        ANNA,
        "not-an-address,Bad Mail,32000000024,100200300,",  # 3
        "nameless@example.lv,,32000000032,100200300,",  # 4
        f"long@example.lv,{'x' * 256},15058000014,100200300,",  # 5
        "code@example.lv,Bad Code,010190-10002,100200300,",  # 6
        "nocode@example.lv,No Code,,100200300,",  # 7
        "nocustomer@example.lv,No Customer,32999999995,999,",  # 8
        "phone@example.lv,Bad Phone,32123456785,100200300,2612",  # 9
        "ANNA.OZOLA@example.lv,Anna Again,32000000016,100200300,",  # 10
        "same.code@example.lv,Same Code,01019010001,100200300,",  # 11
        "short@example.lv,Short Row,100200300",  # 12
    )
    result = run(runner, path)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "line 2: email: anna.ozola@example.lv is on lines 2, 10",
        f"line 2: personal_code: {ANNA_CODE} is on lines 2, 11",
        "line 3: email: This is not an e-mail address; an address looks like name@example.lv.",
        "line 4: name: required",
        "line 5: name: longer than 255 characters",
        "line 6: personal_code: The last digit (the check digit) does not match the others.",
        "line 7: personal_code: required",
        "line 8: customer_number: no customer with this number",
        "line 9: phone: Write the phone number in the international format, e.g. +371 20000000.",
        "line 10: email: anna.ozola@example.lv is on lines 2, 10",
        f"line 11: personal_code: {ANNA_CODE} is on lines 2, 11",
        "line 12: expected 5 fields, found 3",
        "added 0, updated 0, unchanged 0, rejected 11 (nothing written)",
    ]
    assert "nothing imported because of 11 bad row(s)" in result.stderr
    assert stored(db) == {}


def test_a_row_with_too_many_fields_says_a_delimiter_needs_quotes(
    runner: FlaskCliRunner, db: Session, customer: Customer, tmp_path: Path
) -> None:
    """As in the customer import (one reader, idp/csv_import.py): a comma inside a name is
    the usual cause of a row too long."""
    path = write_csv(tmp_path, HEADER, "anna@example.lv,Ozola, Anna,010190-10001,100200300,")
    result = run(runner, path)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == (
        "line 2: expected 5 fields, found 6 (a delimiter inside a field needs double quotes)"
    )


def test_skip_invalid_imports_the_valid_rows_and_reports_the_others(
    runner: FlaskCliRunner, db: Session, customer: Customer, tmp_path: Path
) -> None:
    path = write_csv(tmp_path, HEADER, ANNA, "x@example.lv,X,32000000024,999,", PETERIS)
    assert imported(runner, path, "--skip-invalid") == [
        "line 3: customer_number: no customer with this number",
        "added 2, updated 0, unchanged 0, rejected 1",
    ]
    assert sorted(stored(db)) == ["anna.ozola@example.lv", "peteris@example.lv"]


def test_a_dry_run_reports_without_writing(
    runner: FlaskCliRunner, db: Session, customer: Customer, tmp_path: Path
) -> None:
    path = write_csv(tmp_path, HEADER, ANNA, PETERIS)
    assert imported(runner, path, "--dry-run") == [
        "added 2, updated 0, unchanged 0, rejected 0 (nothing written)"
    ]
    assert stored(db) == {}


def test_json_output_has_the_summary_and_the_errors(
    runner: FlaskCliRunner, db: Session, customer: Customer, tmp_path: Path
) -> None:
    path = write_csv(tmp_path, HEADER, ANNA, "x@example.lv,X,32000000024,999,")
    result = run(runner, path, "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {
        "added": 1,
        "updated": 0,
        "unchanged": 0,
        "rejected": 1,
        "imported": False,
        "dry_run": False,
        "errors": [
            {
                "line": 3,
                "customer_number": "999",
                "reasons": ["customer_number: no customer with this number"],
            }
        ],
    }

    result = run(runner, path, "--json", "--skip-invalid")
    assert result.exit_code == 0
    body: dict[str, Any] = json.loads(result.stdout)
    assert (body["added"], body["rejected"], body["imported"]) == (1, 1, True)
    assert sorted(stored(db)) == ["anna.ozola@example.lv"]


def test_a_progress_bar_only_on_a_terminal_and_never_with_json(
    runner: FlaskCliRunner, customer: Customer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_csv(tmp_path, HEADER, ANNA)
    assert "checking rows" not in run(runner, path, "--dry-run").output

    monkeypatch.setattr(cli_output, "on_terminal", lambda: True)
    assert "checking rows" in run(runner, path, "--dry-run").output
    result = run(runner, path, "--dry-run", "--json")
    assert json.loads(result.stdout)["added"] == 1


def test_an_excel_file_with_byte_order_mark_and_semicolons_in_another_column_order(
    runner: FlaskCliRunner, db: Session, customer: Customer, tmp_path: Path
) -> None:
    lines = [
        "customer_number;phone;name;email;personal_code",
        "100200300;+371 2612 3456;Anna Ozola;anna.ozola@example.lv;010190-10001",
        "100200300;;Pēteris Kalns;peteris@example.lv;32000000016",
    ]
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode("utf-8") + b"\r\n")
    assert imported(runner, str(path)) == ["added 2, updated 0, unchanged 0, rejected 0"]
    assert stored(db)["peteris@example.lv"][0].name == "Pēteris Kalns"


def test_a_header_without_every_column_is_one_line_and_a_non_zero_exit(
    runner: FlaskCliRunner, customer: Customer, tmp_path: Path
) -> None:
    path = write_csv(tmp_path, "email,name,personal_code,customer_number", ANNA[:-15])
    result = run(runner, path)
    assert result.exit_code == 1
    assert "line 1: the header must name the columns" in result.output
    assert "missing: phone" in result.output


def test_an_existing_account_with_the_e_mail_is_refused_and_never_touched(
    runner: FlaskCliRunner, db: Session, user: User, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path, HEADER, "janis.berzins@example.lv,Someone Else,32000000024,100200300,", ANNA
    )
    result = run(runner, path)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == (
        "line 2: email: an account with this e-mail already exists"
    )

    assert imported(runner, path, "--skip-invalid")[-1] == (
        "added 1, updated 0, unchanged 0, rejected 1"
    )
    janis, memberships = stored(db)["janis.berzins@example.lv"]
    assert (janis.name, janis.legacy, janis.legacy_personal_code) == ("Jānis Bērziņš", False, None)
    assert janis.password_hash is not None and memberships == [
        ("100200300", "contractor", "active")
    ]


def test_a_personal_code_of_another_user_is_refused(
    runner: FlaskCliRunner, db: Session, user: User, tmp_path: Path
) -> None:
    user.verified_personal_code = "32123456785"
    db.commit()
    imported(runner, write_csv(tmp_path, HEADER, ANNA))
    path = write_csv(
        tmp_path,
        HEADER,
        "someone@example.lv,Someone,32123456785,100200300,",  # Jānis's, verified
        f"other@example.lv,Other,{ANNA_CODE},100200300,",  # Anna's, legacy
        name="taken.csv",
    )
    result = run(runner, path)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[:2] == [
        "line 2: personal_code: this personal code belongs to another user",
        "line 3: personal_code: this personal code belongs to another user",
    ]


def test_a_legacy_user_who_already_logged_in_by_bank_keeps_their_own_data(
    runner: FlaskCliRunner, db: Session, customer: Customer, tmp_path: Path
) -> None:
    imported(runner, write_csv(tmp_path, HEADER, ANNA))
    anna = stored(db)["anna.ozola@example.lv"][0]
    anna.verified_personal_code, anna.contact_confirmed, anna.phone = (
        ANNA_CODE,
        True,
        "+37129999999",
    )
    db.commit()

    assert imported(runner, write_csv(tmp_path, HEADER, ANNA, name="again.csv")) == [
        "added 0, updated 0, unchanged 1, rejected 0"
    ]
    assert stored(db)["anna.ozola@example.lv"][0].phone == "+37129999999"


def test_a_legacy_user_cannot_log_in_with_any_password(
    runner: FlaskCliRunner, db: Session, customer: Customer, browser: Browser, tmp_path: Path
) -> None:
    imported(runner, write_csv(tmp_path, HEADER, ANNA))
    for password in (PASSWORD, "the old portal password"):
        response = browser.login("anna.ozola@example.lv", password)
        assert response.status_code == 401
