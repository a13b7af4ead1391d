"""Customer data rules without a database: one row of an import file, and a whole file read
(encoding, header, CSV errors, duplicates). The identifiers' rules: test_identifiers.py."""

from __future__ import annotations

import pytest

from idp.csv_import import ImportFileError
from idp.customers.rows import COLUMNS, InvalidRow, parse_row, read_customer_file

HEADER = ",".join(COLUMNS)


def person(**values: str) -> dict[str, str]:
    row = dict.fromkeys(COLUMNS, "")
    row.update(
        customer_number="100200300",
        kind="person",
        given_name="Jānis",
        family_name="Bērziņš",
        personal_code="010190-10001",
        contract_numbers="L-1001;L-1002",
        email="janis@example.lv",
        phone="+371 2000 0000",
    )
    row.update(values)
    return row


def company(**values: str) -> dict[str, str]:
    row = dict.fromkeys(COLUMNS, "")
    row.update(
        customer_number="500600700",
        kind="company",
        company_name="SIA “Gāzes Līnija”",
        registration_number="40003521600",
        email="rekini@gaze.lv",
    )
    row.update(values)
    return row


def reasons(values: dict[str, str]) -> list[str]:
    with pytest.raises(InvalidRow) as caught:
        parse_row(values)
    return caught.value.reasons


# --- one row ---------------------------------------------------------------------------------


def test_a_person_row_with_latvian_letters() -> None:
    row = parse_row(person())
    assert (row.number, row.kind, row.name) == ("100200300", "person", "Jānis Bērziņš")
    assert (row.given_name, row.family_name) == ("Jānis", "Bērziņš")
    assert row.personal_code == "01019010001"
    assert row.registration_number is None
    assert row.contract_numbers == ("L-1001", "L-1002")
    assert row.phone == "+37120000000"


def test_a_company_row() -> None:
    row = parse_row(company())
    assert (row.kind, row.name, row.registration_number) == (
        "company",
        "SIA “Gāzes Līnija”",
        "40003521600",
    )
    assert row.given_name is row.family_name is row.personal_code is None
    assert row.contract_numbers == ()
    assert row.phone is None


def test_decomposed_latvian_letters_are_stored_composed() -> None:
    # "a" + combining macron, as some Mac exports write it, is the same "ā".
    row = parse_row(person(given_name="Ja\u0304nis", family_name="Be\u0304rzin\u0327s\u030c"))
    assert row.name == "Jānis Bērziņš"


def test_blanks_are_trimmed_and_collapsed() -> None:
    row = parse_row(
        person(
            customer_number=" 100200300 ",
            kind=" Person ",
            given_name=" Anna  Marija ",
            family_name="Ozola\u00a0",
            email="  Janis@Example.LV  ",
        )
    )
    assert (row.number, row.kind, row.name) == ("100200300", "person", "Anna Marija Ozola")
    # The e-mail is kept as typed (trimmed); the accounts rule only checks it.
    assert row.email == "Janis@Example.LV"


def test_contract_numbers_accept_semicolons_and_commas_and_ignore_empty_items() -> None:
    assert parse_row(person(contract_numbers="A1; B2,C3;;")).contract_numbers == ("A1", "B2", "C3")


def test_every_reason_of_a_row_is_reported() -> None:
    found = reasons(
        person(
            personal_code="010190-10002", email="janis@", phone="20000000", contract_numbers="A1;A1"
        )
    )
    assert found == [
        "personal_code: The last digit (the check digit) does not match the others.",
        "contract_numbers: A1 is listed twice",
        "email: This is not an e-mail address; an address looks like name@example.lv.",
        "phone: Write the phone number in the international format, e.g. +371 20000000.",
    ]


def test_required_fields_of_a_person() -> None:
    assert reasons(person(customer_number="", given_name="", personal_code="")) == [
        "customer_number: required",
        "given_name: required for a person",
        "personal_code: required for a person",
    ]


def test_required_fields_of_a_company() -> None:
    assert reasons(company(company_name=" ", registration_number="")) == [
        "company_name: required for a company",
        "registration_number: required for a company",
    ]


def test_fields_of_the_other_kind_are_refused() -> None:
    assert reasons(person(company_name="SIA X", registration_number="40003521600")) == [
        "company_name: only for a company (kind is person)",
        "registration_number: only for a company (kind is person)",
    ]
    assert reasons(company(personal_code="010190-10001")) == [
        "personal_code: only for a person (kind is company)"
    ]


def test_an_unknown_kind_still_checks_everything_given() -> None:
    assert reasons(person(kind="private", personal_code="123")) == [
        "kind: must be 'person' or 'company'",
        "personal_code: A personal code has 11 digits, not 3.",
    ]


@pytest.mark.parametrize(
    ("column", "value", "limit"),
    [
        ("customer_number", "1" * 33, 32),
        ("given_name", "Ā" * 256, 255),
        ("family_name", "x" * 10_000, 255),
        ("email", "a" * 310 + "@example.lv", 320),
    ],
)
def test_oversized_fields_are_row_errors(column: str, value: str, limit: int) -> None:
    assert reasons(person(**{column: value})) == [f"{column}: longer than {limit} characters"]


def test_an_oversized_company_name_is_a_row_error() -> None:
    assert reasons(company(company_name="Ā" * 256)) == ["company_name: longer than 255 characters"]


def test_an_oversized_contract_number_is_shown_shortened() -> None:
    assert reasons(person(contract_numbers="A1;" + "K" * 40)) == [
        f"contract_numbers: '{'K' * 32}…': longer than 32 characters"
    ]


def test_names_fitting_alone_but_not_together_are_refused() -> None:
    assert reasons(person(given_name="G" * 200, family_name="F" * 100)) == [
        "given_name, family_name: longer than 255 characters together"
    ]


@pytest.mark.parametrize("name", ["Jānis\x00", "Jā\tnis", "Jā\nnis", "Jā\u200bnis"])
def test_control_characters_in_names_are_refused(name: str) -> None:
    assert reasons(person(given_name=name)) == [
        "given_name: contains a control character (tab, line break, …)"
    ]


@pytest.mark.parametrize("number", ["100 200", "100;200", "100\x00"])
def test_a_customer_number_has_no_blanks_or_separators(number: str) -> None:
    assert reasons(person(customer_number=number)) == [
        "customer_number: only letters, digits and punctuation other than ';' and ','"
    ]


# --- a whole file ----------------------------------------------------------------------------


def csv_bytes(*lines: str, encoding: str = "utf-8") -> bytes:
    return "\n".join(lines).encode(encoding) + b"\n"


PERSON_LINE = "100,person,Jānis,Bērziņš,,010190-10001,,L-1,janis@example.lv,+37120000000"
COMPANY_LINE = "200,company,,,SIA Gāze,,40003521600,L-2,,"


def test_a_file_with_a_byte_order_mark_and_semicolons() -> None:
    data = "\ufeff" + HEADER.replace(",", ";") + "\n" + PERSON_LINE.replace(",", ";") + "\n"
    parsed = read_customer_file(data.encode("utf-8"))
    assert parsed.delimiter == ";"
    assert [(line, row.number) for line, row in parsed.rows] == [(2, "100")]
    assert parsed.errors == []


def test_header_names_are_trimmed_case_insensitive_and_in_any_order() -> None:
    columns = list(reversed(COLUMNS))
    header = ",".join(f" {c.upper()} " for c in columns)
    values = dict(zip(COLUMNS, PERSON_LINE.split(","), strict=True))
    line = ",".join(values[c] for c in columns)
    parsed = read_customer_file(csv_bytes(header, line))
    assert parsed.rows[0][1].name == "Jānis Bērziņš"


def test_line_numbers_count_header_blank_lines_and_quoted_line_breaks() -> None:
    data = csv_bytes(
        HEADER,
        PERSON_LINE,
        "",
        '300,company,,,"SIA\nDivrindu",,40003521600,L-3,,',  # lines 4-5
        "400,person,Anna,Ozola,,010190-10002,,,,",  # line 6: bad check digit
        ",,,,,,,,,",  # spreadsheet filler: skipped
    )
    parsed = read_customer_file(data)
    assert [(e.line, e.reasons) for e in parsed.errors] == [
        (4, ["company_name: contains a control character (tab, line break, …)"]),
        (6, ["personal_code: The last digit (the check digit) does not match the others."]),
    ]
    assert [line for line, _row in parsed.rows] == [2]


def test_malformed_csv_rows_are_reported_and_the_rest_is_read() -> None:
    data = csv_bytes(
        HEADER,
        '100,person,"Jānis"x,Bērziņš,,010190-10001,,,,',  # text after a closing quote
        "101,person,Anna,Ozola,,010190-10001,,,",  # 9 fields
        "102,person,Anna,Ozola,,010190-10001,,,,,",  # 11 fields
        COMPANY_LINE,
    )
    parsed = read_customer_file(data)
    lines = {e.line: e.reasons[0] for e in parsed.errors}
    assert lines[2].startswith("not valid CSV")
    assert lines[3] == "expected 10 fields, found 9"
    assert lines[4] == (
        "expected 10 fields, found 11 (a delimiter inside a field needs double quotes)"
    )
    assert [row.number for _line, row in parsed.rows] == ["200"]


def test_an_unterminated_quote_is_one_error() -> None:
    parsed = read_customer_file(csv_bytes(HEADER, COMPANY_LINE, '300,"person,Anna', "x,y"))
    assert [(e.line, e.reasons[0].startswith("not valid CSV")) for e in parsed.errors] == [
        (3, True)
    ]


def test_a_field_over_the_csv_limit_is_a_row_error() -> None:
    huge = "x" * 200_000
    parsed = read_customer_file(csv_bytes(HEADER, f'100,person,"{huge}",B,,,,,,', COMPANY_LINE))
    assert parsed.errors[0].line == 2
    assert parsed.errors[0].reasons == ["a field is longer than 131072 characters"]
    assert [row.number for _line, row in parsed.rows] == ["200"]


def test_duplicate_numbers_make_every_row_having_them_an_error() -> None:
    parsed = read_customer_file(
        csv_bytes(
            HEADER,
            "100,person,Jānis,Bērziņš,,010190-10001,,L-1;L-2,,",
            "100,person,Anna,Ozola,,32123456785,,L-3,,",
            "200,company,,,SIA Gāze,,40003521600,L-2,,",
            "300,company,,,SIA Cits,,50003521602,L-9,,",
        )
    )
    assert [(e.line, e.reasons) for e in parsed.errors] == [
        (2, ["customer_number: 100 is on lines 2, 3", "contract_numbers: L-2 is on lines 2, 4"]),
        (3, ["customer_number: 100 is on lines 2, 3"]),
        (4, ["contract_numbers: L-2 is on lines 2, 4"]),
    ]
    assert [row.number for _line, row in parsed.rows] == ["300"]


@pytest.mark.parametrize(
    ("header", "words"),
    [
        (
            HEADER.replace("personal_code", "personal code"),
            ["unknown: personal code", "missing: personal_code"],
        ),
        (HEADER.replace(",phone", ""), ["missing: phone"]),
        (HEADER + ",email", ["twice: email"]),
    ],
)
def test_a_bad_header_is_one_error_for_the_file(header: str, words: list[str]) -> None:
    with pytest.raises(ImportFileError) as caught:
        read_customer_file(csv_bytes(header, PERSON_LINE))
    message = str(caught.value)
    assert message.startswith("line 1: the header must name the columns customer_number, ")
    for word in words:
        assert word in message


def test_an_empty_file_is_an_error() -> None:
    with pytest.raises(ImportFileError, match="empty"):
        read_customer_file(b"\n\n")


def test_a_file_not_in_utf8_names_the_line() -> None:
    data = csv_bytes(HEADER, COMPANY_LINE, PERSON_LINE, encoding="cp1257")
    with pytest.raises(ImportFileError, match=r"^line 2: not UTF-8"):
        read_customer_file(data)
