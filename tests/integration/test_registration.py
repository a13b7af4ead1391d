"""Registration by e-mail (docs/domain.md flow 2), through the HTML pages, reading the real mail
that the real SMTP server received."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from idp.models import Customer, EmailLink, Membership, OutboxMail, User
from idp.models.users import ACTIVE, PENDING
from tests.conftest import Browser, RegisteredClient, auth_params, csrf_token, first_link, query

NEW_EMAIL = "Anna.Liepa@Example.lv"
NEW_PASSWORD = "meadow lantern copper violin"


@pytest.fixture
def anna(db: Session) -> Customer:
    row = Customer(
        number="500600700",
        kind="person",
        name="Anna Liepa",
        given_name="Anna",
        family_name="Liepa",
        personal_code="01019010001",
    )
    db.add(row)
    db.commit()
    return row


def form(client: FlaskClient, **fields: str) -> dict[str, str]:
    page = client.get("/register", query_string={"interaction": fields.pop("interaction", "")})
    data = {
        "csrf_token": csrf_token(page.get_data(as_text=True)),
        "customer_number": "500600700",
        "identifier": "010190-10001",
        "name": "",
        "email": NEW_EMAIL,
        "password": NEW_PASSWORD,
        "password_confirm": NEW_PASSWORD,
        "interaction": "",
    }
    data.update(fields)
    return data


def register(client: FlaskClient, **fields: str) -> Any:
    interaction = fields.get("interaction", "")
    data = form(client, **fields)
    data["interaction"] = interaction
    return client.post("/register", data=data)


def local_path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def users_named(db: Session, email: str) -> list[User]:
    db.expire_all()
    rows = list(db.scalars(select(User).where(User.email == email.lower())))
    db.commit()
    return rows


def confirm(client: FlaskClient, link: str) -> Any:
    page = client.get(local_path(link))
    assert page.status_code == 200, page.get_data(as_text=True)
    return client.post(
        local_path(link), data={"csrf_token": csrf_token(page.get_data(as_text=True))}
    )


# --- the page ---------------------------------------------------------------------------------


def test_the_login_page_leads_to_registration_and_every_input_has_a_label(
    client: FlaskClient,
) -> None:
    login = client.get("/login").get_data(as_text=True)
    assert 'href="/register"' in login and 'href="/forgot-password"' in login
    page = client.get("/register").get_data(as_text=True)
    for name in ("customer_number", "identifier", "name", "email", "password", "password_confirm"):
        assert f'<label for="{name}"' in page, name
    assert 'name="csrf_token"' in page


# --- the happy path ---------------------------------------------------------------------------


def test_registration_confirmation_and_login(
    client: FlaskClient, db: Session, anna: Customer, mailbox: Any, browser: Browser
) -> None:
    response = register(client)
    assert response.status_code == 200
    assert "Check your mailbox" in response.get_data(as_text=True)
    [user] = users_named(db, NEW_EMAIL)
    assert user.status == PENDING and not user.email_verified
    assert user.email_display == NEW_EMAIL  # as typed, for display and mail
    membership = db.scalar(select(Membership).where(Membership.user_id == user.id))
    assert membership is not None and membership.customer_id == anna.id
    assert membership.role == "contractor"
    db.commit()  # end the read: on SQLite it holds the write lock the app needs next
    # Not usable before the mailbox is proven (the right password hears why).
    early = browser.login(NEW_EMAIL, NEW_PASSWORD)
    assert early.status_code == 403
    assert "Confirm your e-mail address first" in early.get_data(as_text=True)

    message = mailbox.wait_for(NEW_EMAIL)
    assert message["Subject"] == "Confirm your e-mail address"
    link = first_link(message)
    assert "/register/confirm/" in link

    done = confirm(client, link)
    assert done.status_code == 303
    assert query(done.headers["Location"])["notice"] == "confirmed"
    notice = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "Your e-mail address is confirmed" in notice
    [user] = users_named(db, NEW_EMAIL)
    assert user.status == ACTIVE and user.email_verified
    assert browser.login(NEW_EMAIL, NEW_PASSWORD).status_code == 302
    # The link was for one use.
    assert client.get(local_path(link)).status_code == 404


def test_opening_the_link_does_not_confirm_until_the_button_is_pressed(
    client: FlaskClient, db: Session, anna: Customer, mailbox: Any
) -> None:
    """Mail scanners open links; only the POST of the page uses the link."""
    register(client)
    link = mailbox.link_for(NEW_EMAIL)
    for _ in range(3):
        assert client.get(local_path(link)).status_code == 200
    [user] = users_named(db, NEW_EMAIL)
    assert user.status == PENDING


def test_a_confirmation_link_resumes_the_login_for_the_app(
    client: FlaskClient,
    db: Session,
    anna: Customer,
    mailbox: Any,
    browser: Browser,
    confidential_client: RegisteredClient,
) -> None:
    params, _ = auth_params(confidential_client)
    to_login = client.get("/authorize", query_string=params)
    interaction = query(to_login.headers["Location"])["interaction"]
    register(client, interaction=interaction)
    link = mailbox.link_for(NEW_EMAIL)
    assert f"interaction={interaction}" in link
    done = confirm(client, link)
    assert query(done.headers["Location"])["interaction"] == interaction
    logged_in = browser.login(NEW_EMAIL, NEW_PASSWORD, interaction)
    assert logged_in.status_code == 302
    resumed = client.get(logged_in.headers["Location"])
    assert resumed.headers["Location"].startswith(confidential_client.redirect_uri)
    assert "code" in query(resumed.headers["Location"])


def test_a_confirmation_link_opened_on_another_device_confirms_without_the_request(
    app: Flask,
    client: FlaskClient,
    db: Session,
    anna: Customer,
    mailbox: Any,
    confidential_client: RegisteredClient,
) -> None:
    """The link carries the paused request of the browser that registered; on a phone it
    still confirms the account, and a login there is a plain one (no code for that
    browser's request)."""
    params, _ = auth_params(confidential_client)
    to_login = client.get("/authorize", query_string=params)
    interaction = query(to_login.headers["Location"])["interaction"]
    register(client, interaction=interaction)
    phone = app.test_client()
    done = confirm(phone, mailbox.link_for(NEW_EMAIL))
    assert done.status_code == 303
    [user] = users_named(db, NEW_EMAIL)
    assert user.status == ACTIVE
    login_page = phone.get(local_path(done.headers["Location"]))
    assert f'value="{interaction}"' not in login_page.get_data(as_text=True)
    logged_in = Browser(phone).login(NEW_EMAIL, NEW_PASSWORD)
    assert logged_in.status_code == 302 and logged_in.headers["Location"] == "/"
    # The browser that registered still resumes its own request with its own login.
    resumed = Browser(client).login(NEW_EMAIL, NEW_PASSWORD, interaction)
    assert resumed.headers["Location"].startswith("/authorize/resume")
    code = client.get(resumed.headers["Location"])
    assert "code" in query(code.headers["Location"])


# --- no match, existing accounts --------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"customer_number": "999999999"},
        {"identifier": "32123456785"},  # a valid code, but not this customer's
        {"identifier": "not a code"},
    ],
)
def test_data_that_does_not_match_a_customer_creates_nothing(
    client: FlaskClient, db: Session, anna: Customer, mailbox: Any, fields: dict[str, str]
) -> None:
    response = register(client, **fields)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "do not match our customer data" in page and "klienti@example.lv" in page
    assert users_named(db, NEW_EMAIL) == []
    assert db.scalar(select(func.count()).select_from(OutboxMail)) == 0


def test_a_contract_number_finds_the_customer_too(
    client: FlaskClient, db: Session, anna: Customer, mailbox: Any
) -> None:
    from idp.models import CustomerContract

    db.add(CustomerContract(customer_id=anna.id, number="L-4455"))
    db.commit()
    assert register(client, customer_number="L-4455").status_code == 200
    assert len(users_named(db, NEW_EMAIL)) == 1


def test_an_address_with_an_account_gets_the_same_page_and_a_you_already_have_mail(
    client: FlaskClient, db: Session, anna: Customer, user: User, mailbox: Any
) -> None:
    # The `user` fixture is janis.berzins@example.lv; typed here as a look-alike.
    response = register(client, email="  JANIS.Berzins@EXAMPLE.lv ")
    assert response.status_code == 200
    assert "Check your mailbox" in response.get_data(as_text=True)
    assert len(users_named(db, "janis.berzins@example.lv")) == 1
    message = mailbox.wait_for("Janis.Berzins@Example.lv")  # the stored address
    assert message["Subject"] == "You already have an account"
    assert "/forgot-password" in message.get_body(("plain",)).get_content()


def test_a_customer_with_a_portal_account_is_not_registered_twice(
    client: FlaskClient, db: Session, customer: Customer, user: User, mailbox: Any
) -> None:
    response = register(
        client, customer_number=customer.number, identifier=customer.personal_code or ""
    )
    assert response.status_code == 422
    assert "already has an account" in response.get_data(as_text=True)
    assert users_named(db, NEW_EMAIL) == []


# --- passwords and bad input ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"password": "short pass", "password_confirm": "short pass"}, "at least 12"),
        ({"password_confirm": "meadow lantern copper violim"}, "not the same"),
        ({"password": "password1234", "password_confirm": "password1234"}, "too common"),
        ({"password": "Sunshine2026!!", "password_confirm": "Sunshine2026!!"}, "too common"),
        ({"password": "abcabcabcabc", "password_confirm": "abcabcabcabc"}, "too common"),
        ({"password": "x" * 129, "password_confirm": "x" * 129}, "at most 128"),
        (
            {"password": "anna.liepa@example.lv", "password_confirm": "anna.liepa@example.lv"},
            "e-mail address",
        ),
        ({"email": "not-an-address"}, "not an e-mail address"),
        ({"email": "a@@example.lv"}, "not an e-mail address"),
        ({"customer_number": ""}, "Enter your customer number or contract number."),
        ({"customer_number": "9" * 5000}, "Enter at most 32 characters."),
        ({"email": "a" * 400 + "@example.lv"}, "Enter at most 320 characters."),
    ],
)
def test_a_bad_form_is_shown_again_with_what_to_fix(
    client: FlaskClient, db: Session, anna: Customer, fields: dict[str, str], message: str
) -> None:
    response = register(client, **fields)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert db.scalar(select(func.count()).select_from(User)) == 0


@pytest.mark.parametrize(
    "email",
    [
        "<script>@example.lv",
        "a@-example.lv",
        "a@example-.lv",
        "a@exa_mple.lv",
        '"quoted"@example.lv',
        "a b@example.lv",
        "anna@example.lv\nBcc: victim@example.lv",
        "anna@example.lv\r\nSubject: hi",
        "anna@" + "x" * 64 + ".lv",
    ],
)
def test_an_unusable_address_gets_the_form_again_and_nothing_is_written_or_mailed(
    client: FlaskClient, db: Session, anna: Customer, mailbox: Any, email: str
) -> None:
    """One address rule for the forms and the outbox: what the outbox would refuse never
    gets past the form (it used to answer 500 from mail.enqueue)."""
    response = register(client, email=email)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'action="/register"' in page or 'name="customer_number"' in page
    assert "This is not an e-mail address." in page
    db.expire_all()
    for table in (User, Membership, EmailLink, OutboxMail):
        assert db.scalar(select(func.count()).select_from(table)) == 0, table
    db.commit()
    assert mailbox.messages() == []


def test_any_characters_make_a_password(
    client: FlaskClient, db: Session, anna: Customer, mailbox: Any, browser: Browser
) -> None:
    """No composition rules; Latvian letters and spaces are fine, and the composed and
    decomposed forms of a letter are the same password (NFKC)."""
    composed = "ābele čūska ķirsis"
    decomposed = "a\u0304bele c\u030cu\u0304ska k\u0327irsis"
    assert register(client, password=composed, password_confirm=composed).status_code == 200
    confirm(client, mailbox.link_for(NEW_EMAIL))
    assert browser.login(NEW_EMAIL, decomposed).status_code == 302


def test_missing_csrf_token_is_refused_without_a_500(
    client: FlaskClient, anna: Customer, db: Session
) -> None:
    response = client.post("/register", data={"customer_number": "500600700"})
    assert response.status_code == 400
    assert db.scalar(select(func.count()).select_from(User)) == 0


# --- twice, and at the same time ------------------------------------------------------------------


def test_a_double_submission_makes_one_account_and_one_mail(
    client: FlaskClient, db: Session, anna: Customer, mailbox: Any
) -> None:
    first = form(client)
    assert client.post("/register", data=first).status_code == 200
    assert client.post("/register", data=first).status_code == 200
    assert len(users_named(db, NEW_EMAIL)) == 1
    link = mailbox.link_for(NEW_EMAIL)
    assert db.scalar(select(func.count()).select_from(EmailLink)) == 1
    db.commit()
    assert confirm(client, link).status_code == 303


def test_registering_again_before_confirming_sends_a_new_link_and_voids_the_old(
    app: Flask, client: FlaskClient, db: Session, anna: Customer, mailbox: Any
) -> None:
    register(client)
    old = mailbox.link_for(NEW_EMAIL)
    # Past the pause that swallows double submissions.
    db.execute(
        EmailLink.__table__.update().values(
            created_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        )
    )
    db.commit()
    register(client)
    new = mailbox.link_for(NEW_EMAIL)
    assert new != old
    assert client.get(local_path(old)).status_code == 404
    assert confirm(client, new).status_code == 303


def test_two_registrations_racing_for_one_address_end_with_one_account(
    app: Flask, db: Session, anna: Customer, mailbox: Any
) -> None:
    clients = [app.test_client() for _ in range(2)]
    forms = [form(c) for c in clients]
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def submit(c: FlaskClient, data: dict[str, str]) -> None:
        barrier.wait()
        statuses.append(c.post("/register", data=data).status_code)

    threads = [
        threading.Thread(target=submit, args=pair) for pair in zip(clients, forms, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert statuses == [200, 200]
    assert len(users_named(db, NEW_EMAIL)) == 1


def test_the_link_in_the_mail_is_not_stored_in_clear(
    db: Session, client: FlaskClient, anna: Customer, mailbox: Any
) -> None:
    register(client)
    link = mailbox.link_for(NEW_EMAIL)
    token = link.rsplit("/", 1)[1]
    db.expire_all()
    for row in db.scalars(select(OutboxMail)):
        assert token.encode() not in row.body_encrypted
    for row in db.scalars(select(EmailLink)):
        assert token not in (row.token_hash, row.state_hash)
    db.commit()


def test_mail_uses_the_language_of_the_page(
    client: FlaskClient, db: Session, anna: Customer, mailbox: Any
) -> None:
    register(client, email="lv@example.lv")
    [user] = users_named(db, "lv@example.lv")
    assert user.language == "en"
    body = mailbox.wait_for("lv@example.lv").get_body(("plain",)).get_content()
    assert "Hello Anna Liepa" in body
