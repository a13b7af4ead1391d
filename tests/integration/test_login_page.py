"""The login page as a person meets it: an accessible form, CSRF, one answer for every
failure, throttling without lock-out, a fresh session id at every login, and safe headers."""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from idp.accounts.services import create_user
from idp.models import BrowserSession, User
from idp.security import hash_secret
from tests.conftest import PASSWORD, Browser, csrf_token

EMAIL = "janis.berzins@example.lv"
COOKIE = "idp_session"


class FormFields(HTMLParser):
    """Collects the visible inputs of a page and the ids its labels point at."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[dict[str, str | None]] = []
        self.label_targets: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "label" and attributes.get("for"):
            self.label_targets.add(str(attributes["for"]))
        elif tag in ("input", "select", "textarea") and attributes.get("type") not in (
            "hidden",
            "submit",
            "button",
        ):
            self.inputs.append(attributes)


def post_login(client: FlaskClient, email: str, password: str, **kwargs: Any) -> Any:
    page = client.get("/login", **kwargs)
    return client.post(
        "/login",
        data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "email": email,
            "password": password,
        },
        **kwargs,
    )


def session_rows(db: Session, user: User) -> list[BrowserSession]:
    db.expire_all()
    rows = list(db.scalars(select(BrowserSession).where(BrowserSession.user_id == user.id)))
    db.commit()  # end the read: on SQLite it holds the write lock the app needs next
    return rows


# --- the form ---------------------------------------------------------------------------------


def test_every_input_has_a_label_and_the_form_carries_a_csrf_token(client: FlaskClient) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    fields = FormFields()
    fields.feed(html)
    assert {f.get("name") for f in fields.inputs} == {"email", "password"}
    for field in fields.inputs:
        assert field.get("id") in fields.label_targets, f"no label for {field}"
    assert csrf_token(html)


def test_a_post_without_csrf_token_gets_a_friendly_400_page(
    client: FlaskClient, user: User
) -> None:
    response = client.post("/login", data={"email": EMAIL, "password": PASSWORD})
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "The form has expired" in html
    assert "Traceback" not in html
    assert client.get_cookie(COOKIE) is None


def test_a_post_with_a_forged_csrf_token_gets_the_same_page(
    client: FlaskClient, user: User
) -> None:
    client.get("/login")
    response = client.post(
        "/login", data={"csrf_token": "forged", "email": EMAIL, "password": PASSWORD}
    )
    assert response.status_code == 400
    assert "The form has expired" in response.get_data(as_text=True)


def _error_text(response: Any) -> str:
    match = re.search(
        r'<div class="error-summary".*?<li>(.*?)</li>', response.get_data(as_text=True), re.S
    )
    assert match, "no error message on the page"
    return match.group(1)


def test_unknown_email_and_wrong_password_get_the_same_answer(
    client: FlaskClient, user: User
) -> None:
    unknown = post_login(client, "nobody@example.lv", PASSWORD)
    wrong = post_login(client, EMAIL, PASSWORD + "!")
    assert unknown.status_code == wrong.status_code == 401
    assert _error_text(unknown) == _error_text(wrong)
    assert client.get_cookie(COOKIE) is None


def test_the_right_password_logs_in(client: FlaskClient, db: Session, user: User) -> None:
    # Typed differently from how it was registered: the address is normalised.
    response = post_login(client, "  JANIS.Berzins@EXAMPLE.lv ", PASSWORD)
    assert response.status_code == 302
    assert client.get_cookie(COOKIE) is not None
    assert len(session_rows(db, user)) == 1


# --- throttling -------------------------------------------------------------------------------


def test_the_third_failure_waits_even_with_the_right_password_and_others_are_unaffected(
    make_app: Callable[..., Flask], db: Session, user: User
) -> None:
    app = make_app(login_free_attempts=2, login_delay_base=30)
    attacker = app.test_client()
    for _attempt in range(2):
        assert post_login(attacker, EMAIL, "wrong password 123").status_code == 401

    refused = post_login(attacker, EMAIL, PASSWORD)
    assert refused.status_code == 429
    match = re.search(r"Wait (\d+) seconds", _error_text(refused))
    assert match, _error_text(refused)
    assert 0 < int(match.group(1)) <= 30
    assert attacker.get_cookie(COOKIE) is None

    # Another account, from another address, logs in as usual.
    create_user(
        db, app.extensions["idp.passwords"], email="anna@example.lv", name="Anna", password=PASSWORD
    )
    db.commit()
    other = app.test_client()
    elsewhere = {"environ_base": {"REMOTE_ADDR": "192.0.2.7"}}
    assert post_login(other, "anna@example.lv", PASSWORD, **elsewhere).status_code == 302


def test_people_behind_one_address_are_not_slowed_down_by_each_others_failures(
    client: FlaskClient, user: User
) -> None:
    # Issue 11: a mobile carrier's NAT address; twenty people there mistype or try accounts
    # that do not exist, then Jānis, from the same address, types his right password.
    shared = {"environ_base": {"REMOTE_ADDR": "100.64.0.1"}}
    for n in range(20):
        others = post_login(client, f"person{n}@example.lv", "wrong password 123", **shared)
        assert others.status_code == 401
    response = post_login(client, EMAIL, PASSWORD, **shared)
    assert response.status_code == 302
    assert client.get_cookie(COOKIE) is not None


def test_failures_on_many_accounts_from_one_address_slow_down_every_account_tried_from_it(
    make_app: Callable[..., Flask], db: Session, user: User
) -> None:
    app = make_app(login_address_free_accounts=2, login_delay_base=30)
    sprayer = app.test_client()
    spray = {"environ_base": {"REMOTE_ADDR": "198.51.100.9"}}
    for victim in ("a@example.lv", "b@example.lv"):
        assert post_login(sprayer, victim, "guess guess guess", **spray).status_code == 401
    refused = post_login(sprayer, EMAIL, PASSWORD, **spray)
    assert refused.status_code == 429
    assert "Too many failed attempts" in _error_text(refused)
    # The account itself is not locked for its owner elsewhere.
    owner = app.test_client()
    assert post_login(owner, EMAIL, PASSWORD).status_code == 302


# --- the session cookie -------------------------------------------------------------------------


def test_the_session_cookie_is_httponly_lax_and_not_secure_on_loopback_http(
    browser: Browser, user: User
) -> None:
    assert browser.login().status_code == 302
    cookie = browser.client.get_cookie(COOKIE)
    assert cookie is not None
    assert cookie.http_only
    assert cookie.same_site == "Lax"
    assert cookie.path == "/"
    assert not cookie.secure


def test_the_session_cookie_is_secure_when_the_issuer_is_https(
    make_app: Callable[..., Flask], user: User
) -> None:
    client = make_app(issuer="https://idp.example.lv").test_client()
    over_https = {"base_url": "https://idp.example.lv"}
    assert post_login(client, EMAIL, PASSWORD, **over_https).status_code == 302
    cookie = client.get_cookie(COOKIE, domain="idp.example.lv")
    assert cookie is not None
    assert cookie.secure
    assert cookie.http_only
    assert cookie.same_site == "Lax"


def test_over_https_the_form_works_without_a_referer_but_not_without_a_token(
    make_app: Callable[..., Flask], user: User
) -> None:
    # Our pages say "Referrer-Policy: no-referrer", so browsers post our forms without a
    # Referer; the CSRF token alone must decide.
    client = make_app(issuer="https://idp.example.lv").test_client()
    over_https = {"base_url": "https://idp.example.lv"}
    page = client.get("/login", **over_https)
    assert page.headers["Referrer-Policy"] == "no-referrer"
    no_token = client.post("/login", data={"email": EMAIL, "password": PASSWORD}, **over_https)
    assert no_token.status_code == 400
    with_token = client.post(
        "/login",
        data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "email": EMAIL,
            "password": PASSWORD,
        },
        **over_https,
    )
    assert with_token.status_code == 302


def test_every_login_gets_a_new_session_id_and_the_old_one_dies(
    client: FlaskClient, browser: Browser, db: Session, user: User
) -> None:
    browser.login()
    first = client.get_cookie(COOKIE)
    assert first is not None
    browser.login()
    second = client.get_cookie(COOKIE)
    assert second is not None
    assert second.value != first.value
    assert [row.id_hash for row in session_rows(db, user)] == [hash_secret(second.value)]

    # Someone holding the old value (e.g. planted before login) is not logged in.
    client.set_cookie(COOKIE, first.value)
    assert "You are logged in" not in client.get("/").get_data(as_text=True)
    client.set_cookie(COOKIE, second.value)
    assert "You are logged in" in client.get("/").get_data(as_text=True)


def test_logout_deletes_the_session_row_and_the_cookie(
    client: FlaskClient, browser: Browser, db: Session, user: User
) -> None:
    browser.login()
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None
    assert len(session_rows(db, user)) == 1

    home = client.get("/")
    response = client.post(
        "/logout/confirm", data={"csrf_token": csrf_token(home.get_data(as_text=True))}
    )
    assert response.status_code == 302
    assert session_rows(db, user) == []
    assert client.get_cookie(COOKIE) is None
    # Replaying the old cookie value does not bring the session back.
    client.set_cookie(COOKIE, cookie.value)
    assert "You are logged in" not in client.get("/").get_data(as_text=True)


def test_the_session_table_stores_only_a_hash_of_the_cookie(
    client: FlaskClient, browser: Browser, db: Session, user: User
) -> None:
    browser.login()
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None
    (row,) = session_rows(db, user)
    assert row.id_hash == hash_secret(cookie.value)
    stored = [str(getattr(row, attr.key)) for attr in inspect(BrowserSession).column_attrs]
    assert not any(cookie.value in value for value in stored)
    total = db.scalar(select(func.count()).select_from(BrowserSession))
    assert total == 1


# --- headers --------------------------------------------------------------------------------


def _assert_page_headers(response: Any) -> None:
    csp = response.headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert response.headers.get("Referrer-Policy") == "no-referrer"
    assert response.headers.get("X-Content-Type-Options") == "nosniff"
    assert "no-store" in response.headers.get("Cache-Control", "")


def test_pages_send_security_headers(client: FlaskClient, browser: Browser, user: User) -> None:
    _assert_page_headers(client.get("/login"))
    _assert_page_headers(post_login(client, EMAIL, "wrong password 123"))  # 401 page
    _assert_page_headers(client.post("/login", data={}))  # 400 CSRF page
    _assert_page_headers(client.get("/no-such-page"))  # 404 page
    browser.login()
    _assert_page_headers(client.get("/"))
