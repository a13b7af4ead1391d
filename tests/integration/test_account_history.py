"""The access history (issue 15): a person's logins, wrong passwords and the applications
that received tokens for them, with how, from where and for which customer; the last
`access_history_days` only, paged; and the contractor's view of the logins acting for
their customer in the USERS section."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from idp import access_history
from idp.access_history import Kind, Origin
from idp.accounts.services import create_user
from idp.db import utcnow
from idp.models import AccountEvent, BrowserSession, Customer, Membership, User
from tests.conftest import PASSWORD, Browser, RegisteredClient, auth_params, query
from tests.integration.conftest import get_code, redeem, refresh
from tests.integration.demo_people import text

NUMBER = "100200300"  # the `customer` fixture; `user` (Jānis) is its contractor
HOME = {"REMOTE_ADDR": "192.0.2.10", "HTTP_USER_AGENT": "Mozilla/5.0 Firefox/140.0"}
ATTACKER = {"REMOTE_ADDR": "198.51.100.7", "HTTP_USER_AGENT": "curl/8.0"}
APP_SERVER = {"REMOTE_ADDR": "203.0.113.5", "HTTP_USER_AGENT": "python-requests/2.32"}


@pytest.fixture
def at_home(client: FlaskClient) -> Browser:
    client.environ_base.update(HOME)
    return Browser(client)


def _server(app: Flask) -> FlaskClient:
    """The application's server calling /token (not the person's browser)."""
    server = app.test_client()
    server.environ_base.update(APP_SERVER)
    return server


def _events(db: Session, kind: Kind | None = None) -> list[AccountEvent]:
    db.expire_all()
    statement = select(AccountEvent).order_by(AccountEvent.id)
    if kind is not None:
        statement = statement.where(AccountEvent.kind == kind.value)
    rows = list(db.scalars(statement))
    db.commit()  # end the read: SQLite lets no one write meanwhile
    return rows


def _rows(html: str) -> list[str]:
    """The table's rows, newest first (not its heading)."""
    body = re.search(r"<tbody>(.*?)</tbody>", html, re.S)
    return re.findall(r"<tr\b.*?</tr>", body.group(1), re.S) if body else []


def test_logins_wrong_passwords_and_app_logins_are_in_the_history(
    app: Flask,
    db: Session,
    at_home: Browser,
    user: User,
    customer: Customer,
    confidential_client: RegisteredClient,
) -> None:
    user_id, customer_id = user.id, customer.id  # (reading them later would lock SQLite)
    attacker = app.test_client()
    attacker.environ_base.update(ATTACKER)
    assert Browser(attacker).login(password="not the password").status_code == 401

    code, verifier, _params = get_code(at_home, confidential_client)
    tokens = redeem(_server(app), confidential_client, code, verifier)
    assert tokens.status_code == 200, text(tokens)

    failed, login, issued = _events(db)
    assert (failed.kind, failed.method, failed.ip) == ("login_failed", "password", "198.51.100.7")
    assert (login.kind, login.method, login.ip) == ("login", "password", "192.0.2.10")
    assert login.user_agent == HOME["HTTP_USER_AGENT"]
    # The /token call came from the app's server; the event names where the person was.
    assert issued.kind == "tokens_issued" and issued.method == "password"
    assert (issued.ip, issued.user_agent) == ("192.0.2.10", HOME["HTTP_USER_AGENT"])
    assert (issued.client_name, issued.customer_number) == ("Portal", NUMBER)
    assert (issued.customer_id, issued.user_id) == (customer_id, user_id)

    page = at_home.client.get("/account/history")
    assert page.status_code == 200
    html = text(page)
    rows = _rows(html)
    assert len(rows) == 3
    newest, middle, oldest = rows
    assert "Application received tokens" in newest and "Portal" in newest and NUMBER in newest
    assert "<td>Login</td>" in middle and "E-mail and password" in middle and "192.0.2.10" in middle
    assert '<span class="hint">Firefox</span>' in middle  # the browser, read from its User-Agent
    # The failure stands out.
    assert oldest.startswith('<tr class="failed">') and "<strong>Wrong password</strong>" in oldest
    assert "198.51.100.7" in oldest
    assert 'href="/account/history"' in html and 'aria-current="page"' in html


def test_a_refresh_adds_nothing_to_the_history(
    app: Flask, db: Session, at_home: Browser, user: User, confidential_client: RegisteredClient
) -> None:
    code, verifier, _params = get_code(at_home, confidential_client)
    server = _server(app)
    body = redeem(server, confidential_client, code, verifier).get_json()
    for _ in range(3):
        answer = refresh(server, confidential_client, body["refresh_token"])
        assert answer.status_code == 200, text(answer)
        body = answer.get_json()
    assert len(_events(db, Kind.TOKENS_ISSUED)) == 1


def test_without_the_login_session_the_token_request_address_is_recorded(
    app: Flask, db: Session, at_home: Browser, user: User, confidential_client: RegisteredClient
) -> None:
    code, verifier, _params = get_code(at_home, confidential_client)
    db.execute(delete(BrowserSession))  # logged out (or purged) before the app redeemed it
    db.commit()
    assert redeem(_server(app), confidential_client, code, verifier).status_code == 200
    (issued,) = _events(db, Kind.TOKENS_ISSUED)
    # Never the app's HTTP library as the person's browser.
    assert (issued.ip, issued.user_agent) == ("203.0.113.5", None)


def test_an_upstream_login_method_is_read_from_the_code() -> None:
    assert access_history.login_method(["ext", "bank"]) == "bank"
    assert access_history.login_method(["ext", "sc"]) == "esignature"
    assert access_history.login_method(["pwd"]) == "password"


def _add_events(db: Session, user: User, ages: list[dt.timedelta], kind: Kind) -> None:
    now = utcnow()
    for age in ages:
        event = access_history.record(db, kind, user.id, Origin("192.0.2.99"), method="password")
        event.at = now - age
    db.commit()


def test_only_the_retention_period_is_shown(
    app: Flask, db: Session, at_home: Browser, user: User
) -> None:
    days = app.config["IDP_SETTINGS"].access_history_days
    _add_events(db, user, [dt.timedelta(days=days, hours=1)], Kind.LOGIN)
    _add_events(db, user, [dt.timedelta(days=days + 5)], Kind.PASSWORD_CHANGED)
    _add_events(db, user, [dt.timedelta(days=days - 1)], Kind.EMAIL_CHANGED)
    assert at_home.login().status_code == 302
    html = text(at_home.client.get("/account/history"))
    rows = _rows(html)
    assert len(rows) == 2  # this login and the e-mail change
    assert "E-mail changed" in rows[1] and "Password changed" not in html
    assert f"for the last {days} days" in html


def test_the_history_is_paged(app: Flask, db: Session, at_home: Browser, user: User) -> None:
    size = access_history.PAGE_SIZE
    _add_events(db, user, [dt.timedelta(hours=n + 1) for n in range(2 * size + 9)], Kind.LOGIN)
    assert at_home.login().status_code == 302  # one more: 2 pages and 10 rows
    client = at_home.client
    first = text(client.get("/account/history"))
    assert len(_rows(first)) == size
    assert 'href="/account/history?page=2"' in first and "page=0" not in first
    second = text(client.get("/account/history?page=2"))
    assert len(_rows(second)) == size
    assert 'href="/account/history?page=1"' in second
    assert 'href="/account/history?page=3"' in second
    third = text(client.get("/account/history?page=3"))
    assert len(_rows(third)) == 10 and "page=4" not in third
    for junk in ("4", "0", "-1", "abc", "1.5", "99999999999", "２", "1e3", ""):
        assert client.get("/account/history", query_string={"page": junk}).status_code == 404


def test_the_history_needs_a_login(client: FlaskClient, user: User) -> None:
    answer = client.get("/account/history")
    assert answer.status_code == 303 and answer.headers["Location"] == "/login"


# --- the contractor's view in USERS -----------------------------------------------------------


@pytest.fixture
def ilze(app: Flask, db: Session, customer: Customer, user: User) -> User:
    """An additional user of Jānis's customer (she may only view invoices)."""
    row = create_user(
        db,
        app.extensions["idp.passwords"],
        email="ilze@example.lv",
        name="Ilze Kalniņa",
        password=PASSWORD,
    )
    db.add(
        Membership(
            user_id=row.id,
            customer_id=customer.id,
            role="additional_user",
            rights=["invoices.read"],
            state="active",
        )
    )
    db.commit()
    return row


def test_the_contractor_sees_the_logins_of_the_people_acting_for_the_customer(
    app: Flask,
    db: Session,
    user: User,
    ilze: User,
    confidential_client: RegisteredClient,
) -> None:
    other = Customer(number="500600700", kind="person", name="Anna Liepa")
    db.add(other)
    db.commit()
    ilze_browser = Browser(app.test_client())
    ilze_browser.client.environ_base.update(HOME)
    params, verifier = auth_params(confidential_client)
    answer = ilze_browser.authorize(params, email="ilze@example.lv")
    assert answer.status_code == 302, text(answer)
    code = query(answer.headers["Location"])["code"]
    assert redeem(_server(app), confidential_client, code, verifier).status_code == 200
    # Someone else's login for another customer is not the contractor's to see.
    access_history.record(
        db, Kind.TOKENS_ISSUED, ilze.id, Origin("192.0.2.77"), method="bank", customer=other
    )
    db.commit()

    janis = Browser(app.test_client())
    assert janis.login().status_code == 302
    members = text(janis.client.get(f"/users/{NUMBER}"))
    assert f'href="/users/{NUMBER}/logins"' in members
    page = janis.client.get(f"/users/{NUMBER}/logins")
    assert page.status_code == 200
    html = text(page)
    (row,) = _rows(html)
    assert "Ilze Kalniņa" in row and "ilze@example.lv" in row and "Portal" in row
    assert "E-mail and password" in row and "192.0.2.10" in row
    assert "192.0.2.77" not in html
    for junk in ("abc", "0", "2"):
        answer = janis.client.get(f"/users/{NUMBER}/logins", query_string={"page": junk})
        assert answer.status_code == 404, junk

    # Ilze acts for the customer but does not manage its users: the USERS 403 page.
    answer = ilze_browser.client.get(f"/users/{NUMBER}/logins")
    assert answer.status_code == 403
    assert "Only the account holder or an authorised person manages users" in text(answer)
    assert janis.client.get("/users/500600700/logins").status_code == 403
    assert len(_events(db, Kind.TOKENS_ISSUED)) == 2
    assert db.scalar(select(func.count()).select_from(AccountEvent)) >= 3
    db.commit()
