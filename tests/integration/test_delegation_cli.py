"""`idp delegation …` and `idp audit list`: an admin acting on a contractor's signed
application (flows 6 and 7). Tables for people, --json for scripts, --dry-run writes and
sends nothing, and bad input is one line with a non-zero exit."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from idp.db import utcnow
from idp.delegation.services import LOCAL_TIMEZONE, end_of_local_day
from idp.i18n import local_date
from idp.models import AuditEvent, Customer, EmailLink, Membership, OutboxMail, User
from tests.conftest import ISSUER, Mailbox, SmtpServer, text_body

ILZE = "ilze@example.lv"


def run(runner: Any, *args: str) -> Any:
    return runner.invoke(args=list(args))


def add_user(runner: Any, *extra: str, email: str = ILZE) -> Any:
    return run(
        runner,
        "delegation",
        "add-user",
        "--customer",
        "100200300",
        "--email",
        email,
        "--name",
        "Ilze Kalna",
        "--rights",
        "invoices.read",
        *extra,
    )


def counts(db: Session) -> tuple[int, int, int, int, int]:
    values = tuple(
        db.scalar(select(func.count()).select_from(model)) or 0
        for model in (User, Membership, EmailLink, OutboxMail, AuditEvent)
    )
    db.commit()
    return values  # type: ignore[return-value]


def one_line_error(result: Any, text: str) -> None:
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"Error: {text}"], result.output


def test_add_user_invites_and_mails(runner: Any, db: Session, user: User, mailbox: Mailbox) -> None:
    result = add_user(runner, "--evidence", "application 2026/3", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert {k: out[k] for k in ("customer", "email", "role", "rights", "state", "new_account")} == {
        "customer": "100200300",
        "email": ILZE,
        "role": "additional_user",
        "rights": ["invoices.read"],
        "state": "invited",
        "new_account": True,
    }
    body = text_body(mailbox.wait_for(ILZE))
    assert "the utility added you" in body and ISSUER + "/invitation/" in body

    membership = db.scalar(select(Membership).where(Membership.role == "additional_user"))
    assert membership is not None and membership.evidence == "application 2026/3"
    assert membership.granted_by_user_id is None
    event = db.scalar(select(AuditEvent))
    assert event is not None and event.origin == "cli" and event.action == "invited"
    db.commit()


def test_add_user_prints_a_table_by_default(runner: Any, user: User) -> None:
    result = add_user(
        runner, "--rights", "invoices.read,meter_readings.submit", "--personal-code", "321111-11114"
    )
    assert result.exit_code == 0, result.output
    assert "rights           invoices.read, meter_readings.submit" in result.output
    assert "link_expires_at" in result.output


def test_dry_run_writes_nothing_and_sends_nothing(
    runner: Any, db: Session, user: User, smtp_server: SmtpServer, mailbox: Mailbox
) -> None:
    before = counts(db)
    result = add_user(runner, "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["dry_run"] == "nothing written, no mail sent"
    authorised = run(
        runner,
        "delegation",
        "add-authorised",
        "--customer",
        "100200300",
        "--email",
        "aivars@example.lv",
        "--name",
        "Aivars Ozols",
        "--until",
        "2099-12-31",
        "--evidence",
        "application 9",
        "--dry-run",
    )
    assert authorised.exit_code == 0, authorised.output
    revoked = run(
        runner,
        "delegation",
        "revoke",
        "--customer",
        "100200300",
        "--email",
        "janis.berzins@example.lv",
        "--dry-run",
    )
    assert revoked.exit_code == 0, revoked.output
    assert "dry_run" in revoked.output
    assert counts(db) == before
    assert db.scalar(select(Membership.state)) == "active"
    db.commit()
    assert mailbox.messages() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--customer", "999"), "There is no customer with number 999."),
        (
            ("--rights", "users.manage"),
            "An additional user cannot be given users.manage, only invoices.read, "
            "meter_readings.submit.",
        ),
        (
            ("--rights", "invoices.write"),
            "Unknown right 'invoices.write' (known rights: invoices.read, "
            "meter_readings.submit, users.manage).",
        ),
        (("--rights", ","), "Choose at least one right: invoices.read, meter_readings.submit."),
        (("--personal-code", "12345"), "Personal code: A personal code has 11 digits, not 5."),
        (
            ("--email", "nobody"),
            "'nobody': This is not an e-mail address; an address looks like name@example.lv.",
        ),
    ],
)
def test_add_user_refuses_bad_input_in_one_line(
    runner: Any, db: Session, user: User, args: tuple[str, ...], message: str
) -> None:
    before = counts(db)
    base = {
        "--customer": "100200300",
        "--email": ILZE,
        "--name": "Ilze",
        "--rights": "invoices.read",
    }
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    result = run(runner, "delegation", "add-user", *[x for kv in base.items() for x in kv])
    one_line_error(result, message)
    assert counts(db) == before


def test_a_duplicate_invitation_is_refused(runner: Any, user: User) -> None:
    assert add_user(runner).exit_code == 0
    one_line_error(
        add_user(runner),
        f"{ILZE} already acts for customer 100200300 (Additional user, Invited). "
        "Send the invitation again instead.",
    )


def test_add_authorised_is_valid_to_the_end_of_the_day_in_latvia(
    runner: Any, db: Session, user: User, mailbox: Mailbox
) -> None:
    last_day = dt.date.today() + dt.timedelta(days=60)
    result = run(
        runner,
        "delegation",
        "add-authorised",
        "--customer",
        "100200300",
        "--email",
        "Aivars@Example.lv",
        "--name",
        "Aivars Ozols",
        "--until",
        last_day.isoformat(),
        "--evidence",
        "application 2026/4",
        "--json",
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert (out["role"], out["state"]) == ("authorised_person", "invited")
    assert out["rights"] == ["invoices.read", "meter_readings.submit", "users.manage"]
    body = text_body(mailbox.wait_for("Aivars@Example.lv"))
    assert f"valid to the end of {local_date(last_day)} (Latvian time)" in body

    until = db.scalar(select(Membership.valid_until).where(Membership.role == "authorised_person"))
    assert until == end_of_local_day(last_day)
    local = until.astimezone(LOCAL_TIMEZONE)  # type: ignore[union-attr]
    assert (local.date(), local.hour, local.minute) == (last_day + dt.timedelta(days=1), 0, 0)
    db.commit()


@pytest.mark.parametrize(
    ("until", "evidence", "message"),
    [
        ("2020-01-31", "application 1", "The end of the authorisation must be in the future."),
        ("2026-02-30", "application 1", "--until 2026-02-30: not a date (YYYY-MM-DD)."),
        ("31.12.2030", "application 1", "--until 31.12.2030: not a date (YYYY-MM-DD)."),
        ("2099-12-31", " ", "Say on what evidence (e.g. the number of the signed application)."),
    ],
)
def test_add_authorised_refuses_bad_input_in_one_line(
    runner: Any, db: Session, user: User, until: str, evidence: str, message: str
) -> None:
    before = counts(db)
    result = run(
        runner,
        "delegation",
        "add-authorised",
        "--customer",
        "100200300",
        "--email",
        "aivars@example.lv",
        "--name",
        "Aivars",
        "--until",
        until,
        "--evidence",
        evidence,
    )
    one_line_error(result, message)
    assert counts(db) == before


def test_list_shows_who_acts_for_which_customer(
    runner: Any, db: Session, user: User, mailbox: Mailbox
) -> None:
    other = Customer(number="900800700", kind="company", name="Gāzes Serviss SIA")
    db.add(other)
    db.commit()
    assert add_user(runner).exit_code == 0
    assert (
        run(
            runner,
            "delegation",
            "add-user",
            "--customer",
            "900800700",
            "--email",
            ILZE,
            "--name",
            "Ilze",
            "--rights",
            "meter_readings.submit",
        ).exit_code
        == 0
    )

    everything = json.loads(run(runner, "delegation", "list", "--json").output)
    assert [(r["customer"], r["email"], r["role"], r["state"]) for r in everything] == [
        ("100200300", "Janis.Berzins@Example.lv", "contractor", "active"),
        ("100200300", ILZE, "additional_user", "invited"),
        ("900800700", ILZE, "additional_user", "invited"),
    ]
    assert everything[1]["rights"] == ["invoices.read"]
    assert everything[0]["rights"] == ["invoices.read", "meter_readings.submit", "users.manage"]

    one = json.loads(run(runner, "delegation", "list", "--customer", "900800700", "--json").output)
    assert [r["rights"] for r in one] == [["meter_readings.submit"]]
    active = json.loads(run(runner, "delegation", "list", "--state", "active", "--json").output)
    assert [r["role"] for r in active] == ["contractor"]

    table = run(runner, "delegation", "list")
    assert table.exit_code == 0
    header = table.output.splitlines()[0].split()
    assert header == [
        "CUSTOMER",
        "NAME",
        "EMAIL",
        "ROLE",
        "RIGHTS",
        "STATE",
        "VALID_UNTIL",
        "GRANTED_BY",
    ]
    one_line_error(
        run(runner, "delegation", "list", "--customer", "1"), "There is no customer with number 1."
    )


def test_revoke_ends_the_membership_and_is_audited(
    runner: Any, db: Session, user: User, mailbox: Mailbox
) -> None:
    assert add_user(runner).exit_code == 0
    result = run(
        runner,
        "delegation",
        "revoke",
        "--customer",
        "100200300",
        "--email",
        "ILZE@example.lv",
        "--reason",
        "application withdrawn",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["state"] == "revoked"
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "revoked"))
    assert event is not None and event.details["reason"] == "application withdrawn"
    db.commit()

    one_line_error(
        run(runner, "delegation", "revoke", "--customer", "100200300", "--email", ILZE),
        f"The membership of {ILZE} has already ended (state: Removed).",
    )
    one_line_error(
        run(
            runner,
            "delegation",
            "revoke",
            "--customer",
            "100200300",
            "--email",
            "nobody@example.lv",
        ),
        "nobody@example.lv does not act for customer 100200300.",
    )
    # An admin may remove a contractor (a portal user may not).
    contractor = run(
        runner,
        "delegation",
        "revoke",
        "--customer",
        "100200300",
        "--email",
        "janis.berzins@example.lv",
    )
    assert contractor.exit_code == 0, contractor.output


def ended_authorisation(db: Session, email: str, state: str) -> None:
    customer = db.scalar(select(Customer))
    assert customer is not None
    person = User(email=email, email_display=email, name=email, status="active")
    db.add(person)
    db.flush()
    db.add(
        Membership(
            user_id=person.id,
            customer_id=customer.id,
            role="authorised_person",
            state=state,
            valid_until=utcnow() - dt.timedelta(seconds=1),
        )
    )
    db.commit()


def test_expire_and_purge_expire_ended_authorisations(runner: Any, db: Session, user: User) -> None:
    ended_authorisation(db, "a@example.lv", "active")
    result = run(runner, "delegation", "expire")
    assert result.exit_code == 0 and result.output.strip() == "expired 1 membership(s)"
    assert json.loads(run(runner, "delegation", "expire", "--json").output) == {"expired": 0}

    ended_authorisation(db, "b@example.lv", "invited")
    purged = run(runner, "db", "purge", "--json")
    assert purged.exit_code == 0, purged.output
    assert json.loads(purged.output)["memberships_expired"] == 1
    assert sorted(db.scalars(select(Membership.state))) == ["active", "expired", "expired"]
    db.commit()


def test_audit_list_shows_the_history_newest_first(
    runner: Any, db: Session, user: User, mailbox: Mailbox
) -> None:
    assert add_user(runner).exit_code == 0
    assert (
        run(runner, "delegation", "revoke", "--customer", "100200300", "--email", ILZE).exit_code
        == 0
    )
    rows = json.loads(run(runner, "audit", "list", "--json").output)
    assert [r["action"] for r in rows] == ["revoked", "invited"]
    assert rows[1]["customer"] == "100200300" and rows[1]["person"] == ILZE
    assert rows[1]["actor"].startswith("admin (CLI: ") and rows[1]["origin"] == "cli"
    assert rows[1]["details"]["rights"] == ["invoices.read"]

    assert len(json.loads(run(runner, "audit", "list", "--limit", "1", "--json").output)) == 1
    table = run(runner, "audit", "list", "--customer", "100200300")
    assert table.exit_code == 0
    assert table.output.splitlines()[0].split() == [
        "WHEN",
        "ACTION",
        "CUSTOMER",
        "PERSON",
        "ACTOR",
        "ORIGIN",
        "DETAILS",
    ]
    assert '"reason": null' in table.output
    one_line_error(
        run(runner, "audit", "list", "--customer", "424242"),
        "There is no customer with number 424242.",
    )
