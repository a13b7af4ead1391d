"""The USERS section (docs/domain.md flow 6; issue 5, section 4), driven like a contractor does
in the browser: list the customer's users, ADD USER, change rights, remove, resend an
invitation, read the history — and nobody else's customer, whatever they type or tamper
with. The invited person's side (password, bank, contact form) is
test_invitation_acceptance.py."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from idp.accounts.services import create_user
from idp.models import AuditEvent, Customer, EmailLink, Membership, OutboxMail, User
from tests.conftest import PASSWORD, Browser, csrf_token, first_link
from tests.integration.demo_people import local, membership, text

NUMBER = "100200300"  # the `customer` fixture; `user` (Jānis) is its contractor
INVITED = "Ilze.Kalnina@Example.lv"


@pytest.fixture
def contractor(browser: Browser, user: User) -> FlaskClient:
    """Jānis, logged in with his password (contractor of customer 100200300)."""
    assert browser.login().status_code == 302
    return browser.client


def add_user(client: FlaskClient, number: str = NUMBER, *, csrf: bool = True, **fields: Any) -> Any:
    page = client.get(f"/users/{number}/add")
    assert page.status_code == 200, text(page)
    data: dict[str, Any] = {
        "name": "Ilze Kalniņa",
        "email": INVITED,
        "personal_code": "",
        "rights": ["invoices.read"],
    }
    data.update(fields)
    if csrf:
        data["csrf_token"] = csrf_token(text(page))
    return client.post(f"/users/{number}/add", data=data)


def post_form(client: FlaskClient, page_url: str, url: str | None = None, **data: Any) -> Any:
    """Open a page with a form, then post it (with that page's CSRF token) to `url`."""
    page = client.get(page_url)
    assert page.status_code == 200, text(page)
    return client.post(url or page_url, data={"csrf_token": csrf_token(text(page)), **data})


def counts(db: Session) -> tuple[int, ...]:
    db.expire_all()
    numbers = tuple(
        db.scalar(select(func.count()).select_from(model)) or 0
        for model in (User, Membership, AuditEvent, EmailLink, OutboxMail)
    )
    db.commit()
    return numbers


def actions(db: Session) -> list[str]:
    db.expire_all()
    found = list(db.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
    db.commit()
    return found


def invite_ilze(client: FlaskClient, db: Session, mailbox: Any, **fields: Any) -> str:
    """ADD USER for Ilze; returns the link of her invitation mail."""
    answer = add_user(client, **fields)
    assert answer.status_code == 303, text(answer)
    db.commit()
    return str(mailbox.link_for(INVITED))


@dataclass(frozen=True)
class OtherCustomer:
    id: int
    number: str
    member_id: int  # Pēteris's membership


@pytest.fixture
def other_customer(app: Flask, db: Session) -> OtherCustomer:
    """Customer B: Anna is its contractor, Pēteris an active additional user. (Plain values:
    reading an expired ORM object on `db` would hold SQLite's write lock.)"""
    customer_b = Customer(
        number="500600700", kind="person", name="Anna Liepa", personal_code="01019010001"
    )
    db.add(customer_b)
    db.flush()
    passwords = app.extensions["idp.passwords"]
    create_user(
        db,
        passwords,
        email="anna@example.lv",
        name="Anna Liepa",
        password=PASSWORD,
        customer_number=customer_b.number,
    )
    peteris = create_user(
        db, passwords, email="peteris@example.lv", name="Pēteris Ozols", password=PASSWORD
    )
    membership = Membership(
        user_id=peteris.id,
        customer_id=customer_b.id,
        role="additional_user",
        rights=["invoices.read"],
        state="active",
    )
    db.add(membership)
    db.commit()
    return OtherCustomer(customer_b.id, customer_b.number, membership.id)


# --- who may open the section -----------------------------------------------------------------


def test_the_section_needs_a_login(client: FlaskClient, user: User) -> None:
    for path in ("/users", f"/users/{NUMBER}", f"/users/{NUMBER}/add"):
        answer = client.get(path)
        assert answer.status_code == 303 and answer.headers["Location"] == "/login"


def test_a_contractor_of_one_customer_goes_straight_to_its_users(contractor: FlaskClient) -> None:
    home = text(contractor.get("/"))
    assert 'href="/users"' in home
    answer = contractor.get("/users")
    assert answer.status_code == 303 and answer.headers["Location"] == f"/users/{NUMBER}"
    page = contractor.get(f"/users/{NUMBER}")
    html = text(page)
    assert page.status_code == 200
    assert "Jānis Bērziņš (you)" in html and "Account holder" in html
    assert "View invoices, Report meter readings, Manage users" in html
    assert "cannot be changed here" in html
    # The contractor has no change/remove buttons: admins handle contractors.
    assert "/rights" not in html and "/remove" not in html


def test_someone_managing_several_customers_chooses_one(
    app: Flask, db: Session, contractor: FlaskClient, user: User, other_customer: OtherCustomer
) -> None:
    customer_b = other_customer
    db.add(
        Membership(
            user_id=user.id, customer_id=customer_b.id, role="authorised_person", state="active"
        )
    )
    db.commit()
    page = contractor.get("/users")
    assert page.status_code == 200
    html = text(page)
    assert f'href="/users/{NUMBER}"' in html and f'href="/users/{customer_b.number}"' in html
    assert contractor.get(f"/users/{customer_b.number}").status_code == 200


def test_an_additional_user_gets_403_on_their_customers_users(
    client: FlaskClient, browser: Browser, db: Session, other_customer: OtherCustomer
) -> None:
    customer_b = other_customer
    assert browser.login("peteris@example.lv").status_code == 302
    assert 'href="/users"' not in text(client.get("/"))
    for path in (
        "/users",
        f"/users/{customer_b.number}",
        f"/users/{customer_b.number}/add",
        f"/users/{customer_b.number}/history",
    ):
        answer = client.get(path)
        assert answer.status_code == 403, path
        assert "Only the account holder or an authorised person manages users" in text(answer)


def test_a_contractor_cannot_see_or_touch_another_customers_users(
    contractor: FlaskClient, db: Session, other_customer: OtherCustomer
) -> None:
    customer_b = other_customer
    before = counts(db)
    own_page = contractor.get(f"/users/{NUMBER}/add")
    token = csrf_token(text(own_page))
    # B's URLs: the same 403 page as an unknown customer (nothing revealed).
    for path in (
        f"/users/{customer_b.number}",
        f"/users/{customer_b.number}/history",
        f"/users/{customer_b.number}/add",
        "/users/999999999",
    ):
        answer = contractor.get(path)
        assert answer.status_code == 403, path
        assert "Anna" not in text(answer) and "Pēteris" not in text(answer)
    for action in ("rights", "remove", "resend"):
        answer = contractor.post(
            f"/users/{customer_b.number}/{customer_b.member_id}/{action}",
            data={"csrf_token": token, "rights": ["meter_readings.submit"]},
        )
        assert answer.status_code == 403, action
    # B's membership id through A's URLs (a tampered id): not found, never acted on.
    for action in ("rights", "remove", "resend"):
        answer = contractor.post(
            f"/users/{NUMBER}/{customer_b.member_id}/{action}",
            data={"csrf_token": token, "rights": ["meter_readings.submit"]},
        )
        assert answer.status_code == 404, action
        assert contractor.get(f"/users/{NUMBER}/{customer_b.member_id}/{action}").status_code in (
            404,
            405,
        )
    assert counts(db) == before
    row = membership(db, "peteris@example.lv", customer_b.number)
    assert (row.state, row.rights) == ("active", ["invoices.read"])


# --- ADD USER --------------------------------------------------------------------------------


def test_add_user_sends_an_invitation(
    contractor: FlaskClient, db: Session, user: User, mailbox: Any
) -> None:
    answer = add_user(contractor, personal_code="010190-10001")
    assert answer.status_code == 303 and answer.headers["Location"] == f"/users/{NUMBER}"
    listing = text(contractor.get(answer.headers["Location"]))
    assert f"An invitation was sent to {INVITED}; it expires on" in listing
    assert "Ilze Kalniņa" in listing and "Invited" in listing and "View invoices" in listing
    assert "Send the invitation to Ilze Kalniņa again" in listing

    row = membership(db, INVITED)
    assert (row.role, row.rights, row.state) == ("additional_user", ["invoices.read"], "invited")
    assert row.granted_by_user_id == user.id and row.invited_personal_code == "01019010001"
    assert actions(db) == ["invited"]
    db.commit()
    message = mailbox.wait_for(INVITED)
    assert "Jānis Bērziņš" in message["Subject"]
    link = first_link(message)
    assert "/invitation/" in link
    page = contractor.get(local(link))  # (no bank is configured in this app)
    assert page.status_code == 200 and "Accept the invitation" in text(page)
    assert "Jānis Bērziņš (Janis.Berzins@Example.lv) added you, Ilze Kalniņa" in text(page)
    assert "No internet bank or eSignature login is available right now" in text(page)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"name": "x" * 300}, "Enter at most 255 characters."),
        ({"name": "  "}, "Type the person's name."),
        ({"email": ""}, "Type the person's e-mail address."),
        ({"email": "not an address"}, "This is not an e-mail address."),
        ({"email": "a" * 400 + "@example.lv"}, "Enter at most 320 characters."),
        ({"personal_code": "123"}, "This is not a valid personal code. A personal code has 11"),
        (
            {"personal_code": "010190-10002"},
            "The last digit (the check digit) does not match the others.",
        ),
        ({"personal_code": "9" * 40}, "Enter at most 32 characters."),
        ({"rights": []}, "Tick at least one right"),
        ({"rights": ["users.manage"]}, "Tick only the rights listed on the page."),
        ({"rights": ["invoices.read", "x" * 5000]}, "Tick only the rights listed on the page."),
    ],
)
def test_garbage_is_refused_with_a_clear_message_and_nothing_written(
    contractor: FlaskClient, db: Session, fields: dict[str, Any], expected: str
) -> None:
    before = counts(db)
    answer = add_user(contractor, **fields)
    assert answer.status_code == 400, text(answer)
    assert expected in text(answer)
    assert counts(db) == before


def test_garbage_in_the_address_is_a_friendly_page(
    contractor: FlaskClient, db: Session, mailbox: Any
) -> None:
    invite_ilze(contractor, db, mailbox)
    before = counts(db)
    for path in (
        "/users/%00",
        "/users/1%002",
        "/users/" + "9" * 5000,
        "/users/%E2%80%8B",
        "/users/%FF%FE",
    ):
        assert contractor.get(path).status_code == 403, path
    for path in (
        f"/users/{NUMBER}/99999999999999999999/rights",
        f"/users/{NUMBER}/99999999999999999999/remove",
        f"/users/{NUMBER}/0/rights",
        f"/users/{NUMBER}/-1/rights",
        f"/users/{NUMBER}/x/rights",
    ):
        assert contractor.get(path).status_code == 404, path
    assert counts(db) == before


def test_a_post_without_the_csrf_token_is_refused(
    contractor: FlaskClient, db: Session, mailbox: Any
) -> None:
    before = counts(db)
    answer = add_user(contractor, csrf=False)
    assert answer.status_code == 400 and "The form has expired" in text(answer)
    assert counts(db) == before
    invite_ilze(contractor, db, mailbox)
    # The id now: reading it after counts() (which expires the row) would open a
    # transaction of this test's session, and on SQLite hold the write lock the app needs.
    member_id = membership(db, INVITED).id
    before = counts(db)
    for action in ("rights", "remove", "resend"):
        answer = contractor.post(
            f"/users/{NUMBER}/{member_id}/{action}", data={"rights": ["meter_readings.submit"]}
        )
        assert answer.status_code == 400, action
    assert counts(db) == before


def test_the_same_person_cannot_be_invited_twice(
    contractor: FlaskClient, db: Session, mailbox: Any
) -> None:
    invite_ilze(contractor, db, mailbox)
    before = counts(db)
    again = add_user(contractor, email=INVITED.upper())
    assert again.status_code == 400 and "Send the invitation again instead." in text(again)
    assert counts(db) == before


# --- change rights, remove, resend ------------------------------------------------------------


def test_change_rights(contractor: FlaskClient, db: Session, mailbox: Any) -> None:
    invite_ilze(contractor, db, mailbox)
    row = membership(db, INVITED)
    url = f"/users/{NUMBER}/{row.id}/rights"
    page = text(contractor.get(url))
    assert re.search(r'<input checked[^>]* value="invoices.read"', page)
    assert not re.search(r'<input checked[^>]* value="meter_readings.submit"', page)
    assert " required" not in page.split("<fieldset")[1]  # one ticked box is enough

    none = post_form(contractor, url, rights=[])
    assert none.status_code == 400 and "Tick at least one right" in text(none)
    assert membership(db, INVITED).rights == ["invoices.read"]

    done = post_form(contractor, url, rights=["invoices.read", "meter_readings.submit"])
    assert done.status_code == 303
    assert "are saved" in text(contractor.get(done.headers["Location"]))
    assert membership(db, INVITED).rights == ["invoices.read", "meter_readings.submit"]
    assert actions(db) == ["invited", "rights_changed"]


def test_a_contractors_rights_are_not_changed_here(
    contractor: FlaskClient, db: Session, user: User
) -> None:
    own = membership(db, user.email)
    for path in ("rights", "remove", "resend"):
        url = f"/users/{NUMBER}/{own.id}/{path}"
        if path != "resend":
            assert contractor.get(url).status_code == 403
        token = csrf_token(text(contractor.get(f"/users/{NUMBER}/add")))
        refused = contractor.post(url, data={"csrf_token": token, "rights": ["invoices.read"]})
        assert refused.status_code == 403, path
    assert membership(db, user.email).state == "active"
    assert actions(db) == []


def test_an_authorised_person_is_not_removed_here(
    contractor: FlaskClient, db: Session, customer: Customer
) -> None:
    # Registered by an admin from a signed application: only an admin removes them.
    aivars = User(
        email="aivars@example.lv", email_display="aivars@example.lv", name="Aivars", status="active"
    )
    db.add(aivars)
    db.flush()
    db.add(Membership(user_id=aivars.id, customer_id=customer.id, role="authorised_person"))
    db.commit()
    row = membership(db, "aivars@example.lv")
    token = csrf_token(text(contractor.get(f"/users/{NUMBER}/add")))
    for path in ("remove", "resend", "rights"):
        answer = contractor.post(
            f"/users/{NUMBER}/{row.id}/{path}",
            data={"csrf_token": token, "rights": ["invoices.read"]},
        )
        assert answer.status_code == 403, path
    assert membership(db, "aivars@example.lv").state == "active"
    assert actions(db) == []


def test_remove_after_a_confirmation_page(
    contractor: FlaskClient, db: Session, mailbox: Any
) -> None:
    link = invite_ilze(contractor, db, mailbox)
    row = membership(db, INVITED)
    url = f"/users/{NUMBER}/{row.id}/remove"
    confirm = contractor.get(url)
    assert confirm.status_code == 200 and "Remove Ilze Kalniņa?" in text(confirm)
    assert membership(db, INVITED).state == "invited"  # the page alone changes nothing
    done = post_form(contractor, url)
    assert done.status_code == 303
    assert "can no longer act for" in text(contractor.get(done.headers["Location"]))
    assert membership(db, INVITED).state == "revoked"
    assert contractor.get(local(link)).status_code == 404  # the invitation is dead
    again = post_form(contractor, url)
    assert again.status_code == 400 and "has already ended" in text(again)
    assert actions(db) == ["invited", "revoked"]


def test_resend_kills_the_old_link_and_the_new_one_works(
    contractor: FlaskClient, db: Session, mailbox: Any
) -> None:
    old = invite_ilze(contractor, db, mailbox)
    row = membership(db, INVITED)
    resent = post_form(contractor, f"/users/{NUMBER}", f"/users/{NUMBER}/{row.id}/resend")
    assert resent.status_code == 303
    assert "A new invitation was sent" in text(contractor.get(resent.headers["Location"]))
    db.commit()
    new = mailbox.link_for(INVITED)
    assert new != old
    assert contractor.get(local(old)).status_code == 404
    assert contractor.get(local(new)).status_code == 200
    assert actions(db) == ["invited", "invitation_resent"]


def test_only_an_invitation_is_resent(contractor: FlaskClient, db: Session, mailbox: Any) -> None:
    invite_ilze(contractor, db, mailbox)
    row = membership(db, INVITED)
    row_id = row.id
    row.state = "active"  # she accepted meanwhile
    db.commit()
    before = actions(db)
    answer = post_form(contractor, f"/users/{NUMBER}/add", f"/users/{NUMBER}/{row_id}/resend")
    assert answer.status_code == 409 and "not waiting for an invitation" in text(answer)
    assert actions(db) == before


# --- history ---------------------------------------------------------------------------------


def test_the_history_shows_who_did_what_for_whom_from_where(
    contractor: FlaskClient, db: Session, mailbox: Any
) -> None:
    invite_ilze(contractor, db, mailbox)
    row = membership(db, INVITED)
    post_form(contractor, f"/users/{NUMBER}/{row.id}/rights", rights=["meter_readings.submit"])
    post_form(contractor, f"/users/{NUMBER}/{row.id}/remove")
    page = contractor.get(f"/users/{NUMBER}/history")
    assert page.status_code == 200
    html = text(page)
    rows = html.split("<tbody>")[1].split("</tbody>")[0].split("<tr>")[1:]
    assert [r.split("<td>")[2].split("</td>")[0].split(" (")[0] for r in rows] == [
        "Removed",
        "Rights changed",
        "Invited",
    ]
    assert all(INVITED in r and "Janis.Berzins@Example.lv" in r and "127.0.0.1" in r for r in rows)
    assert "Report meter readings" in rows[1]
