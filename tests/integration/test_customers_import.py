"""Admins load the utility's customer data with `idp customers import`, look at it with
`list` and `show`, and registration matches people against it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from flask.testing import FlaskCliRunner
from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from idp import cli_output
from idp.customers.rows import COLUMNS
from idp.customers.services import find_customer_for_registration
from idp.models import Customer, User

HEADER = ",".join(COLUMNS)
JANIS = "100,person,Jānis,Bērziņš,,010190-10001,,L-100;L-101,janis@example.lv,+371 2000 0000"
GAZE = '200,company,,,"SIA ""Gāzes Līnija""",,40003521600,L-200,rekini@gaze.lv,'
ANNA = "300,person,Anna,Ozola,,32123456785,,,,"


def write_csv(tmp_path: Path, *lines: str, name: str = "customers.csv", prefix: str = "") -> str:
    path = tmp_path / name
    path.write_text(prefix + "\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def run(runner: FlaskCliRunner, *args: str) -> Result:
    return runner.invoke(args=["customers", *args])


def imported(runner: FlaskCliRunner, path: str, *options: str) -> list[str]:
    result = run(runner, "import", path, *options)
    assert result.exit_code == 0, result.output
    lines: list[str] = result.stdout.splitlines()
    return lines


def stored(db: Session) -> dict[str, Customer]:
    rows = db.scalars(select(Customer).options(selectinload(Customer.contracts)))
    found = {c.number: c for c in rows}
    db.commit()  # end the read: on SQLite it holds the write lock the next command needs
    return found


def test_a_file_of_persons_and_companies_is_imported(
    runner: FlaskCliRunner, db: Session, tmp_path: Path
) -> None:
    path = write_csv(tmp_path, HEADER, JANIS, GAZE, ANNA)
    assert imported(runner, path) == ["added 3, updated 0, unchanged 0, rejected 0"]

    customers = stored(db)
    janis, gaze, anna = customers["100"], customers["200"], customers["300"]
    assert (janis.kind, janis.name, janis.given_name, janis.family_name) == (
        "person",
        "Jānis Bērziņš",
        "Jānis",
        "Bērziņš",
    )
    assert (janis.personal_code, janis.registration_number) == ("01019010001", None)
    assert (janis.email, janis.phone) == ("janis@example.lv", "+37120000000")
    assert janis.contract_numbers == ["L-100", "L-101"]
    assert (gaze.kind, gaze.name, gaze.registration_number) == (
        "company",
        'SIA "Gāzes Līnija"',
        "40003521600",
    )
    assert gaze.personal_code is gaze.given_name is None
    assert gaze.contract_numbers == ["L-200"]
    assert (anna.contract_numbers, anna.email, anna.phone) == ([], None, None)


def test_importing_the_same_file_again_changes_nothing(
    runner: FlaskCliRunner, db: Session, tmp_path: Path
) -> None:
    path = write_csv(tmp_path, HEADER, JANIS, GAZE, ANNA)
    imported(runner, path)
    before = {n: (c.updated_at, c.contract_numbers) for n, c in stored(db).items()}

    assert imported(runner, path) == ["added 0, updated 0, unchanged 3, rejected 0"]
    assert {n: (c.updated_at, c.contract_numbers) for n, c in stored(db).items()} == before


def test_changed_rows_update_their_customers_and_replace_their_contracts(
    runner: FlaskCliRunner, db: Session, tmp_path: Path
) -> None:
    imported(runner, write_csv(tmp_path, HEADER, JANIS, GAZE))
    long_ago = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    db.execute(update(Customer).values(created_at=long_ago, updated_at=long_ago))
    db.commit()

    changed = JANIS.replace("janis@example.lv", "Janis.Berzins@Example.lv").replace(
        "L-100;L-101", "L-101;L-102"
    )
    path = write_csv(tmp_path, HEADER, changed, GAZE, ANNA, name="changed.csv")
    assert imported(runner, path) == ["added 1, updated 1, unchanged 1, rejected 0"]

    customers = stored(db)
    janis = customers["100"]
    assert janis.email == "Janis.Berzins@Example.lv"
    assert janis.contract_numbers == ["L-101", "L-102"]
    assert janis.created_at == long_ago < janis.updated_at
    assert customers["200"].updated_at == long_ago  # unchanged: not touched


def test_customers_missing_from_a_later_file_are_kept(
    runner: FlaskCliRunner, db: Session, tmp_path: Path
) -> None:
    imported(runner, write_csv(tmp_path, HEADER, JANIS, GAZE))
    assert imported(runner, write_csv(tmp_path, HEADER, ANNA, name="anna.csv")) == [
        "added 1, updated 0, unchanged 0, rejected 0"
    ]
    assert sorted(stored(db)) == ["100", "200", "300"]


def test_a_file_with_errors_imports_nothing_and_names_every_bad_line(
    runner: FlaskCliRunner, db: Session, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path,
        HEADER,
        JANIS,
        "101,person,Pēteris,Kalniņš,,010190-10002,,,peteris@,",
        "102,private,Līga,Liepiņa,,32123456785,,,,",
        GAZE,
    )
    result = run(runner, "import", path)

    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "line 3: personal_code: The last digit (the check digit) does not match the others.",
        "line 3: email: This is not an e-mail address; an address looks like name@example.lv.",
        "line 4: kind: must be 'person' or 'company'",
        "added 2, updated 0, unchanged 0, rejected 2 (nothing written)",
    ]
    assert result.stderr.strip() == (
        f"{path}: nothing imported because of 2 bad row(s) (--skip-invalid imports the valid rows)"
    )
    assert stored(db) == {}


def test_skip_invalid_imports_the_valid_rows_and_reports_the_others(
    runner: FlaskCliRunner, db: Session, tmp_path: Path
) -> None:
    path = write_csv(tmp_path, HEADER, JANIS, "101,person,,Kalniņš,,010190-10001,,,,", GAZE)
    assert imported(runner, path, "--skip-invalid") == [
        "line 3: given_name: required for a person",
        "added 2, updated 0, unchanged 0, rejected 1",
    ]
    assert sorted(stored(db)) == ["100", "200"]


def test_a_dry_run_reports_without_writing(
    runner: FlaskCliRunner, db: Session, tmp_path: Path
) -> None:
    path = write_csv(tmp_path, HEADER, JANIS, GAZE)
    assert imported(runner, path, "--dry-run") == [
        "added 2, updated 0, unchanged 0, rejected 0 (nothing written)"
    ]
    assert stored(db) == {}

    imported(runner, path)
    changed = write_csv(
        tmp_path, HEADER, JANIS.replace("Jānis,", "Jānis Kārlis,"), GAZE, name="changed.csv"
    )
    assert imported(runner, changed, "--dry-run") == [
        "added 0, updated 1, unchanged 1, rejected 0 (nothing written)"
    ]
    assert stored(db)["100"].name == "Jānis Bērziņš"


def test_a_dry_run_of_a_file_with_errors_fails(runner: FlaskCliRunner, tmp_path: Path) -> None:
    result = run(runner, "import", write_csv(tmp_path, HEADER, "1,person,,,,,,,,"), "--dry-run")
    assert result.exit_code == 1
    assert "line 2: given_name: required for a person" in result.stdout


def test_json_output_has_the_summary_and_the_errors(
    runner: FlaskCliRunner, db: Session, tmp_path: Path
) -> None:
    path = write_csv(tmp_path, HEADER, JANIS, "101,company,,,SIA X,,40003521601,,,", GAZE)
    result = run(runner, "import", path, "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {
        "added": 2,
        "updated": 0,
        "unchanged": 0,
        "rejected": 1,
        "imported": False,
        "dry_run": False,
        "errors": [
            {
                "line": 3,
                "customer_number": "101",
                "reasons": [
                    "registration_number: The last digit (the check digit) does not match "
                    "the others."
                ],
            }
        ],
    }

    result = run(runner, "import", path, "--json", "--skip-invalid")
    assert result.exit_code == 0
    body: dict[str, Any] = json.loads(result.stdout)
    assert (body["added"], body["rejected"], body["imported"]) == (2, 1, True)
    assert sorted(stored(db)) == ["100", "200"]


def test_a_progress_bar_only_on_a_terminal_and_never_with_json(
    runner: FlaskCliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_csv(tmp_path, HEADER, JANIS, GAZE)
    assert "checking rows" not in run(runner, "import", path, "--dry-run").output

    monkeypatch.setattr(cli_output, "on_terminal", lambda: True)
    assert "checking rows" in run(runner, "import", path, "--dry-run").output
    result = run(runner, "import", path, "--dry-run", "--json")
    assert json.loads(result.stdout)["added"] == 2


def test_an_excel_file_with_byte_order_mark_and_semicolons(
    runner: FlaskCliRunner, db: Session, tmp_path: Path
) -> None:
    lines = [
        HEADER.replace(",", ";"),
        '100;person;Jānis;Bērziņš;;010190-10001;;"L-100;L-101";janis@example.lv;',
        "200;company;;;SIA Gāze;;40003521600;L-200;;",
    ]
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode("utf-8") + b"\r\n")
    assert imported(runner, str(path)) == ["added 2, updated 0, unchanged 0, rejected 0"]
    assert stored(db)["100"].contract_numbers == ["L-100", "L-101"]


def test_duplicate_numbers_in_a_file_reject_every_row_having_them(
    runner: FlaskCliRunner, db: Session, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path,
        HEADER,
        JANIS,
        JANIS.replace("L-100;L-101", "L-300"),
        GAZE.replace("L-200", "L-101"),
        ANNA,
    )
    assert imported(runner, path, "--skip-invalid") == [
        "line 2: customer_number: 100 is on lines 2, 3",
        "line 2: contract_numbers: L-101 is on lines 2, 4",
        "line 3: customer_number: 100 is on lines 2, 3",
        "line 4: contract_numbers: L-101 is on lines 2, 4",
        "added 1, updated 0, unchanged 0, rejected 3",
    ]
    assert sorted(stored(db)) == ["300"]


def test_a_contract_of_another_customer_is_an_error(
    runner: FlaskCliRunner, db: Session, tmp_path: Path
) -> None:
    imported(runner, write_csv(tmp_path, HEADER, JANIS))
    path = write_csv(tmp_path, HEADER, ANNA.replace(",,,,", ",,L-101,,"), name="anna.csv")
    result = run(runner, "import", path)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == (
        "line 2: contract_numbers: L-101 belongs to customer 100"
    )
    assert stored(db)["100"].contract_numbers == ["L-100", "L-101"]


def test_a_contract_moves_when_its_holder_gives_it_up_in_the_same_file(
    runner: FlaskCliRunner, db: Session, tmp_path: Path
) -> None:
    imported(runner, write_csv(tmp_path, HEADER, JANIS, ANNA))
    path = write_csv(
        tmp_path,
        HEADER,
        JANIS.replace("L-100;L-101", "L-100"),
        ANNA.replace(",,,,", ",,L-101,,"),
        name="moved.csv",
    )
    assert imported(runner, path) == ["added 0, updated 2, unchanged 0, rejected 0"]
    customers = stored(db)
    assert customers["100"].contract_numbers == ["L-100"]
    assert customers["300"].contract_numbers == ["L-101"]


def test_a_contract_stays_when_the_row_giving_it_up_is_rejected(
    runner: FlaskCliRunner, db: Session, tmp_path: Path
) -> None:
    imported(runner, write_csv(tmp_path, HEADER, JANIS, ANNA))
    bad_janis = JANIS.replace("L-100;L-101", "L-100").replace("janis@example.lv", "janis@")
    path = write_csv(
        tmp_path, HEADER, bad_janis, ANNA.replace(",,,,", ",,L-101,,"), name="moved.csv"
    )
    assert imported(runner, path, "--skip-invalid") == [
        "line 2: email: This is not an e-mail address; an address looks like name@example.lv.",
        "line 3: contract_numbers: L-101 belongs to customer 100 (its row is rejected)",
        "added 0, updated 0, unchanged 0, rejected 2",
    ]
    assert stored(db)["100"].contract_numbers == ["L-100", "L-101"]


def test_oversized_and_malformed_rows_are_row_errors_not_database_errors(
    runner: FlaskCliRunner, db: Session, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path,
        HEADER,
        f"101,person,{'Ā' * 300},Kalniņš,,010190-10001,,,,",
        f"102,person,Anna,Ozola,,32123456785,,{'K' * 33},,",
        f"{'9' * 33},company,,,SIA X,,40003521600,,,",
        '103,person,"Anna"Marija,Ozola,,32123456785,,,,',
        "104,person,Anna,Ozola,,32123456785",
        JANIS,
    )
    lines = imported(runner, path, "--skip-invalid")
    assert lines[:3] == [
        "line 2: given_name: longer than 255 characters",
        f"line 3: contract_numbers: '{'K' * 32}…': longer than 32 characters",
        "line 4: customer_number: longer than 32 characters",
    ]
    assert lines[3].startswith("line 5: not valid CSV")
    assert lines[4:] == [
        "line 6: expected 10 fields, found 6",
        "added 1, updated 0, unchanged 0, rejected 5",
    ]
    assert sorted(stored(db)) == ["100"]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (
            "customer_number;kind\n1;person\n",
            ["line 1: the header must name the columns", "missing: given_name"],
        ),
        ("", ["the file is empty"]),
    ],
)
def test_a_bad_file_is_one_line_and_a_non_zero_exit(
    runner: FlaskCliRunner, tmp_path: Path, content: str, words: list[str]
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    result = run(runner, "import", str(path))
    assert result.exit_code != 0
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    for word in words:
        assert word in result.stderr


def test_a_file_not_in_utf8_is_refused_with_its_line(
    runner: FlaskCliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "cp1257.csv"
    path.write_bytes(f"{HEADER}\n{JANIS}\n".encode("cp1257"))
    result = run(runner, "import", str(path))
    assert result.exit_code != 0
    assert result.stderr.strip() == (
        f"Error: {path}: line 2: not UTF-8 text (in Excel: save as 'CSV UTF-8')"
    )


def test_list_and_show(runner: FlaskCliRunner, user: User, tmp_path: Path) -> None:
    imported(runner, write_csv(tmp_path, HEADER, JANIS, GAZE, ANNA))

    rows = json.loads(run(runner, "list", "--json").stdout)
    assert [r["number"] for r in rows] == ["100", "100200300", "200", "300"]
    assert rows[0]["contract_numbers"] == ["L-100", "L-101"]
    assert len(json.loads(run(runner, "list", "--json", "--limit", "2").stdout)) == 2
    table = run(runner, "list").stdout.splitlines()
    assert table[0].split() == [
        "NUMBER",
        "KIND",
        "NAME",
        "PERSONAL_CODE",
        "REGISTRATION_NUMBER",
        "EMAIL",
        "CONTRACT_NUMBERS",
    ]
    assert "Jānis Bērziņš" in table[1]

    shown = json.loads(run(runner, "show", "200", "--json").stdout)
    assert shown["name"] == 'SIA "Gāzes Līnija"'
    assert shown["registration_number"] == "40003521600"
    assert shown["contract_numbers"] == ["L-200"]
    assert shown["users"] == []

    # The `user` fixture is the contractor of customer 100200300.
    shown = json.loads(run(runner, "show", "100200300", "--json").stdout)
    assert shown["users"] == [
        {
            "email": "Janis.Berzins@Example.lv",
            "name": "Jānis Bērziņš",
            "role": "contractor",
            "state": "active",
        }
    ]
    text = run(runner, "show", "100200300").stdout
    assert "personal_code" in text and "contractor" in text


def test_show_an_unknown_customer_is_one_line(runner: FlaskCliRunner) -> None:
    result = run(runner, "show", "nope")
    assert result.exit_code != 0
    assert result.stderr.strip() == "Error: no customer with number nope"


def test_registration_matches_customer_or_contract_number_and_the_identifier(
    runner: FlaskCliRunner, db: Session, tmp_path: Path
) -> None:
    imported(runner, write_csv(tmp_path, HEADER, JANIS, GAZE))

    def match(number: str, identifier: str) -> str | None:
        found = find_customer_for_registration(db, number, identifier)
        return found.number if found else None

    assert match("100", "01019010001") == "100"
    assert match(" 100 ", "010190-10001") == "100"
    assert match("L-101", "010190 10001") == "100"
    assert match("200", "40003521600") == "200"
    assert match("L-200", " 4000 3521 600 ") == "200"
    # Any mismatch is None, whichever half is wrong.
    assert match("100", "010190-10002") is None
    assert match("L-200", "01019010001") is None
    assert match("200", "01019010001") is None
    assert match("100", "40003521600") is None
    assert match("999", "01019010001") is None
    assert match("", "01019010001") is None
    assert match("100", "") is None
    assert match("1" * 5000, "01019010001") is None


def test_registration_tries_both_a_customer_number_and_a_contract_number(
    runner: FlaskCliRunner, db: Session, tmp_path: Path
) -> None:
    # "200" is the company's customer number and also a contract number of Jānis.
    imported(runner, write_csv(tmp_path, HEADER, JANIS.replace("L-100;", "200;"), GAZE))
    assert find_customer_for_registration(db, "200", "40003521600").number == "200"
    janis = find_customer_for_registration(db, "200", "010190-10001")
    assert janis is not None and janis.number == "100"
