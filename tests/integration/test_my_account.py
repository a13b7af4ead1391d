"""My account (issue 15): the profile, a change of e-mail by link, a change or first
setting of the password, the ways to log in with a bank login linked from the page, and
"confirm it is you" before a change when the login is old. Each action is checked for its
mail and for its effect (the old address, the other browser, the app's refresh token)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from idp.db import utcnow
from idp.demo.seed import DEMO_EMAIL, DEMO_PASSWORD
from idp.models import AccountEvent, BrowserSession, User
from tests.conftest import PASSWORD, Browser, Mailbox, RegisteredClient, csrf_token
from tests.integration.conftest import login_tokens, refresh
from tests.integration.demo_people import ANNA_CODE, NEW_PASSWORD, Person, local, text

JANIS = "janis.berzins@example.lv"
JANIS_CODE = "32123456785"  # the demo contractor's own customer, a private person


def page(client: FlaskClient, url: str) -> Any:
    return client.get(url)


def post(client: FlaskClient, url: str, form_url: str | None = None, **data: Any) -> Any:
    """Open `form_url` (or `url`) and post its form there with the page's CSRF token."""
    html = client.get(form_url or url).get_data(as_text=True)
    return client.post(url, data={"csrf_token": csrf_token(html), **data})


def kinds(db: Session, user_id: int) -> list[str]:
    db.expire_all()
    found = list(
        db.scalars(
            select(AccountEvent.kind)
            .where(AccountEvent.user_id == user_id)
            .order_by(AccountEvent.id)
        )
    )
    db.commit()  # SQLite: a transaction of the test would hold the app's write lock
    return found


def read_user(db: Session, user_id: int) -> User:
    """The person's row as it is now (the transaction is ended at once, as above)."""
    db.expire_all()
    row = db.get(User, user_id)
    assert row is not None
    db.commit()
    return row


def age_login(db: Session, user_id: int, minutes: int = 30) -> None:
    """Make every browser session of the person look logged in `minutes` ago."""
    db.execute(
        update(BrowserSession)
        .where(BrowserSession.user_id == user_id)
        .values(auth_time=utcnow() - dt.timedelta(minutes=minutes))
    )
    db.commit()


@pytest.fixture
def janis(browser: Browser, user: User) -> FlaskClient:
    assert browser.login().status_code == 302
    return browser.client


# --- the section needs a login ------------------------------------------------------------------


def test_my_account_asks_whoever_is_not_logged_in_to_log_in(client: FlaskClient) -> None:
    for url in ("/account", "/account/email", "/account/password", "/account/logins"):
        answer = client.get(url)
        assert answer.status_code == 303
        assert answer.headers["Location"].endswith("/login")


def test_after_the_login_the_person_is_back_on_the_page_that_asked(
    client: FlaskClient, user: User
) -> None:
    assert client.get("/account/password").headers["Location"].endswith("/login")
    answer = Browser(client).login()
    assert answer.status_code == 302 and answer.headers["Location"] == "/account/password"
    # Only once: the next login goes to the start page.
    assert Browser(client).login().headers["Location"] == "/"


def test_the_start_page_offers_my_account(janis: FlaskClient) -> None:
    assert 'href="/account"' in text(janis.get("/"))


# --- profile ------------------------------------------------------------------------------------


def test_the_profile_changes_name_and_phone_and_records_it(
    janis: FlaskClient, db: Session, user: User
) -> None:
    answer = post(janis, "/account", name="  Jānis   Bērziņš-Ozols ", phone="+371 2000 0001")
    assert answer.status_code == 303
    row = read_user(db, user.id)
    assert (row.name, row.phone) == ("Jānis Bērziņš-Ozols", "+37120000001")
    assert "profile_changed" in kinds(db, user.id)
    assert "Your details are saved." in text(janis.get("/account"))


def test_a_phone_that_is_not_one_is_refused_and_nothing_changes(
    janis: FlaskClient, db: Session, user: User
) -> None:
    answer = post(janis, "/account", name="Jānis", phone="call me maybe")
    assert answer.status_code == 400
    assert 'aria-invalid="true"' in text(answer)
    assert read_user(db, user.id).phone == "+37120000000"


def test_a_profile_post_without_the_csrf_token_is_refused(janis: FlaskClient) -> None:
    assert janis.post("/account", data={"name": "X"}).status_code == 400


# --- e-mail -------------------------------------------------------------------------------------


def test_a_new_address_changes_only_when_its_link_is_used(
    app: Flask, janis: FlaskClient, db: Session, user: User, mailbox: Mailbox
) -> None:
    answer = post(janis, "/account/email", email="Janis.New@Example.lv")
    assert answer.status_code == 200
    assert "Janis.New@Example.lv" in text(answer)
    db.commit()
    link = mailbox.link_for("janis.new@example.lv")
    notice = mailbox.wait_for(JANIS)
    assert "Janis.New@Example.lv" in str(notice.get_body(("plain",)).get_content())  # type: ignore[union-attr]

    # Until the link is used, the old address logs in and the new one does not.
    other = Browser(app.test_client())
    assert other.login(JANIS).status_code == 302
    assert other.login("janis.new@example.lv").status_code == 401

    # Opening the link only asks; the button changes the address, once.
    opened = janis.get(local(link))
    assert opened.status_code == 200 and "Janis.New@Example.lv" in text(opened)
    assert read_user(db, user.id).email == JANIS
    done = janis.post(local(link), data={"csrf_token": csrf_token(text(opened))})
    assert done.status_code == 200
    row = read_user(db, user.id)
    assert (row.email, row.email_display, row.email_verified) == (
        "janis.new@example.lv",
        "Janis.New@Example.lv",
        True,
    )
    assert janis.get(local(link)).status_code == 404
    assert Browser(app.test_client()).login("janis.new@example.lv").status_code == 302
    assert Browser(app.test_client()).login(JANIS).status_code == 401
    assert {"email_change_requested", "email_changed"} <= set(kinds(db, user.id))


def test_an_address_of_another_account_gets_a_notice_not_a_link(
    app: Flask, janis: FlaskClient, db: Session, user: User, mailbox: Mailbox
) -> None:
    from idp.accounts.services import create_user

    create_user(
        db, app.extensions["idp.passwords"], email="anna@example.lv", name="Anna", password=PASSWORD
    )
    db.commit()
    answer = post(janis, "/account/email", email="anna@example.lv")
    # The page says what it says for a free address: it tells nobody whose address it is.
    assert answer.status_code == 200
    db.commit()
    taken = mailbox.wait_for("anna@example.lv")
    assert "already belongs to an account" in str(taken.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    assert "/account/email/confirm/" not in str(taken)
    assert read_user(db, user.id).email == JANIS


def test_the_same_address_and_a_second_link_within_a_minute_are_refused(
    janis: FlaskClient, db: Session, user: User
) -> None:
    assert post(janis, "/account/email", email=JANIS.upper()).status_code == 400
    assert post(janis, "/account/email", email="new@example.lv").status_code == 200
    assert post(janis, "/account/email", email="newer@example.lv").status_code == 429


def test_a_change_of_address_after_an_old_login_asks_to_confirm_it_is_you(
    janis: FlaskClient, db: Session, user: User
) -> None:
    age_login(db, user.id)
    asked = janis.get("/account/email")
    assert asked.status_code == 303
    assert "/account/confirm-login?next=/account/email" in asked.headers["Location"]
    confirm = local(asked.headers["Location"])
    wrong = post(janis, "/account/confirm-login", confirm, password="wrong", next="/account/email")
    assert wrong.status_code == 401
    assert janis.get("/account/email").status_code == 303  # still not confirmed
    right = post(janis, "/account/confirm-login", confirm, password=PASSWORD, next="/account/email")
    assert right.status_code == 303 and right.headers["Location"].endswith("/account/email")
    assert janis.get("/account/email").status_code == 200


def test_confirm_it_is_you_never_sends_the_person_off_the_section(
    janis: FlaskClient, db: Session, user: User
) -> None:
    age_login(db, user.id)
    for target in ("https://evil.example/", "//evil.example/", "/login"):
        answer = post(
            janis,
            "/account/confirm-login",
            "/account/confirm-login",
            password=PASSWORD,
            next=target,
        )
        assert answer.headers["Location"].endswith("/account"), target
        age_login(db, user.id)


def test_a_used_or_unknown_change_link_gets_the_link_page(client: FlaskClient) -> None:
    assert client.get("/account/email/confirm/nonsense").status_code == 404
    assert client.get("/account/email/confirm/" + "x" * 500).status_code == 404
    # A POST without the page's CSRF token is refused before the link is even looked at.
    assert client.post("/account/email/confirm/nonsense").status_code == 400


# --- password -----------------------------------------------------------------------------------


def test_a_changed_password_ends_the_other_browsers_and_the_apps_tokens(
    app: Flask,
    janis: FlaskClient,
    db: Session,
    user: User,
    mailbox: Mailbox,
    confidential_client: RegisteredClient,
) -> None:
    elsewhere = Browser(app.test_client())
    tokens = login_tokens(elsewhere.client, elsewhere, confidential_client)
    assert elsewhere.client.get("/account").status_code == 200

    answer = post(
        janis,
        "/account/password",
        current=PASSWORD,
        password=NEW_PASSWORD,
        password_confirm=NEW_PASSWORD,
    )
    assert answer.status_code == 303
    db.commit()
    notice = mailbox.wait_for(JANIS)
    assert "was changed" in str(notice.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    # This browser stays; the other one is asked to log in; the app's refresh token is dead.
    assert janis.get("/account/password").status_code == 200
    assert elsewhere.client.get("/account").headers["Location"].endswith("/login")
    refused = refresh(elsewhere.client, confidential_client, tokens["refresh_token"])
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_grant"
    assert Browser(app.test_client()).login(JANIS, NEW_PASSWORD).status_code == 302
    assert Browser(app.test_client()).login(JANIS, PASSWORD).status_code == 401
    assert "password_changed" in kinds(db, user.id)


def test_a_wrong_current_password_or_a_weak_new_one_changes_nothing(
    janis: FlaskClient, db: Session, user: User
) -> None:
    before = read_user(db, user.id).password_hash
    wrong = post(
        janis,
        "/account/password",
        current="not it",
        password=NEW_PASSWORD,
        password_confirm=NEW_PASSWORD,
    )
    assert wrong.status_code == 400
    assert "not your current password" in text(wrong)
    weak = post(
        janis, "/account/password", current=PASSWORD, password="short", password_confirm="short"
    )
    assert weak.status_code == 400
    assert read_user(db, user.id).password_hash == before
    # The wrong current password counts like a wrong one at the login page.
    assert "login_failed" in kinds(db, user.id)


def test_guessing_the_current_password_is_slowed_down_as_at_the_login(
    janis: FlaskClient, db: Session, user: User
) -> None:
    statuses = [
        post(
            janis,
            "/account/password",
            current=f"guess {n}",
            password=NEW_PASSWORD,
            password_confirm=NEW_PASSWORD,
        ).status_code
        for n in range(8)
    ]
    assert statuses[-1] == 429, statuses


# --- a person with no password: bank logins, linking, setting a password -------------------------


def bank_login(
    person: Person, code: str, start: str = "/account/logins", provider: str = "demo-bank"
) -> Any:
    """Press a bank button on a "My account" page and pick `code` at the DEMO bank."""
    html = text(person.get(start))
    to_bank = person.client.post(
        "/account/upstream",
        data={
            "csrf_token": csrf_token(html),
            "provider": provider,
            "next": html.split('name="next" type="hidden" value="')[1].split('"')[0]
            if 'name="next" type="hidden" value="' in html
            else start,
        },
    )
    return person.at_the_bank(to_bank, code)


def test_an_email_account_links_its_own_bank_login_and_never_shows_the_whole_code(
    demo: Flask, db: Session
) -> None:
    janis = Person(demo)
    janis.log_in(DEMO_EMAIL, DEMO_PASSWORD)
    before = text(janis.get("/account/logins"))
    assert "not linked" in before
    back = bank_login(janis, JANIS_CODE)
    assert back.status_code == 303 and back.headers["Location"].endswith("/account/logins")
    page = text(janis.get("/account/logins"))
    assert "now linked" in page
    assert JANIS_CODE not in page and JANIS_CODE[-2:] in page
    db.expire_all()
    user = db.scalar(select(User).where(User.email == DEMO_EMAIL))
    assert user is not None and user.verified_personal_code == JANIS_CODE
    assert "upstream_linked" in kinds(db, user.id)
    # The name is now the one the bank confirmed: the profile saves the phone alone.
    profile = text(janis.get("/account"))
    assert 'name="name"' not in profile
    saved = janis.client.post(
        "/account", data={"csrf_token": csrf_token(profile), "phone": "+371 2000 0007"}
    )
    assert saved.status_code == 303
    assert read_user(db, user.id).phone == "+37120000007"


def test_someone_elses_bank_login_links_nothing(demo: Flask, db: Session) -> None:
    janis = Person(demo)
    janis.log_in(DEMO_EMAIL, DEMO_PASSWORD)
    back = bank_login(janis, ANNA_CODE)
    assert back.status_code == 303
    assert "another person" in text(janis.get(local(back.headers["Location"])))
    db.expire_all()
    user = db.scalar(select(User).where(User.email == DEMO_EMAIL))
    assert user is not None and user.verified_personal_code is None


def test_a_bank_only_person_sets_a_password_after_a_fresh_bank_login(
    demo: Flask, db: Session, mailbox: Mailbox
) -> None:
    janis = Person(demo)
    janis.log_in(DEMO_EMAIL, DEMO_PASSWORD)
    bank_login(janis, JANIS_CODE)  # linked; now make the account bank-only
    db.execute(update(User).where(User.email == DEMO_EMAIL).values(password_hash=None))
    db.commit()
    user = db.scalar(select(User).where(User.email == DEMO_EMAIL))
    assert user is not None
    age_login(db, user.id)

    asked = janis.get("/account/password")
    assert asked.status_code == 303 and "/account/confirm-login" in asked.headers["Location"]
    confirm_page = local(asked.headers["Location"])
    assert 'name="password"' not in text(janis.get(confirm_page))  # no password to type
    back = bank_login(janis, JANIS_CODE, start=confirm_page)
    assert back.headers["Location"].endswith("/account/password")
    form = janis.get("/account/password")
    assert form.status_code == 200 and "Set a password" in text(form)
    done = janis.client.post(
        "/account/password",
        data={
            "csrf_token": csrf_token(text(form)),
            "password": NEW_PASSWORD,
            "password_confirm": NEW_PASSWORD,
        },
    )
    assert done.status_code == 303
    db.commit()
    assert mailbox.wait_for(DEMO_EMAIL)["Subject"] == "A password was set for your account"
    fresh = Person(demo)
    fresh.log_in(DEMO_EMAIL, NEW_PASSWORD)
    assert "password_set" in kinds(db, user.id)


def test_a_bank_login_of_another_person_does_not_confirm_it_is_you(
    demo: Flask, db: Session
) -> None:
    janis = Person(demo)
    janis.log_in(DEMO_EMAIL, DEMO_PASSWORD)
    bank_login(janis, JANIS_CODE)
    user = db.scalar(select(User).where(User.email == DEMO_EMAIL))
    assert user is not None
    age_login(db, user.id)
    asked = janis.get("/account/email")
    confirm_page = local(asked.headers["Location"])
    bank_login(janis, ANNA_CODE, start=confirm_page)
    assert janis.get("/account/email").status_code == 303  # still asks
    db.expire_all()
    assert (
        db.scalar(
            select(func.count()).select_from(User).where(User.verified_personal_code == ANNA_CODE)
        )
        == 0
    )
