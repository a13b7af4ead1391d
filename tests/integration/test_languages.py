"""Which language a page and a mail speak (issue 13; idp/i18n.py, docs/operations.md
"Languages"): the sign-in's ui_locales, then the person's choice (the switcher's cookie, the
account's stored language), then Accept-Language, then default_locale. The test settings
use default_locale "en"; the shipped default (lv) is checked on its own."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.i18n import LANGUAGE_COOKIE
from idp.models import Customer, Interaction, User
from idp.settings import PROJECT_ROOT
from tests.conftest import PASSWORD, Browser, RegisteredClient, auth_params, csrf_token, query
from tests.integration.demo_people import ANNA_CODE, Person, invite, local, text
from tests.integration.test_browser_binding import authorize as demo_authorize
from tests.integration.test_browser_binding import bank_answer, open_callback, press_bank

JANIS = "janis.berzins@example.lv"


def lang(response: Any) -> str:
    match = re.search(r'<html lang="([^"]+)"', text(response))
    assert match, text(response)[:300]
    return match.group(1)


def paused(client: FlaskClient, rp: RegisteredClient, **extra: str) -> str:
    """An authorization request paused for login in this browser: its interaction id."""
    params, _verifier = auth_params(rp, **extra)
    answer = client.get("/authorize", query_string=params)
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/login?")
    return query(answer.headers["Location"])["interaction"]


def switch(client: FlaskClient, code: str, next_url: str) -> Any:
    return client.get(f"/language/{code}", query_string={"next": next_url})


def fresh(db: Session, model: Any, **where: Any) -> Any:
    db.expire_all()
    row = db.scalar(select(model).filter_by(**where))
    db.commit()
    return row


# --- the shipped default -----------------------------------------------------------------------


def test_the_shipped_configuration_speaks_latvian_first() -> None:
    shipped = tomllib.loads((PROJECT_ROOT / "config" / "default.toml").read_text("utf-8"))
    assert shipped["default_locale"] == "lv"
    assert shipped["locales"] == ["lv", "ru", "en"]


def test_with_the_shipped_default_a_page_without_hints_is_latvian(
    make_app: Callable[..., Flask],
) -> None:
    client = make_app(default_locale="lv").test_client()
    page = client.get("/login")
    assert lang(page) == "lv"
    assert "Latviešu" in text(page) and "Русский" in text(page) and "English" in text(page)
    assert client.get("/.well-known/openid-configuration").get_json()["ui_locales_supported"] == [
        "lv",
        "ru",
        "en",
    ]


# --- the order ---------------------------------------------------------------------------------


def test_accept_language_beats_the_default(client: FlaskClient) -> None:
    assert lang(client.get("/login")) == "en"
    assert lang(client.get("/login", headers={"Accept-Language": "ru-RU,ru;q=0.9"})) == "ru"


def test_the_accounts_language_beats_accept_language(
    client: FlaskClient, browser: Browser, db: Session, user: User
) -> None:
    user.language = "lv"
    db.commit()
    browser.login()
    assert lang(client.get("/signed-in", headers={"Accept-Language": "ru"})) == "lv"


def test_the_cookie_beats_the_accounts_language(
    client: FlaskClient, browser: Browser, db: Session, user: User
) -> None:
    user.language = "lv"
    db.commit()
    browser.login()
    client.set_cookie(LANGUAGE_COOKIE, "ru")
    assert lang(client.get("/signed-in", headers={"Accept-Language": "en"})) == "ru"


def test_ui_locales_beat_the_cookie_for_that_sign_in_and_lv_lv_counts_as_lv(
    client: FlaskClient, confidential_client: RegisteredClient
) -> None:
    client.set_cookie(LANGUAGE_COOKIE, "ru")
    interaction = paused(client, confidential_client, ui_locales="de-DE lv-LV ru")
    assert lang(client.get("/login", query_string={"interaction": interaction})) == "lv"
    # The register page of the same sign-in, and a page of no sign-in.
    assert lang(client.get("/register", query_string={"interaction": interaction})) == "lv"
    assert lang(client.get("/login")) == "ru"


def test_the_language_of_a_sign_in_lasts_from_login_to_consent(
    client: FlaskClient, browser: Browser, user: User, make_client: Callable[..., Any]
) -> None:
    rp = make_client(name="Invoices")  # not first-party: consent is asked
    params, _verifier = auth_params(rp, ui_locales="ru")
    consent = browser.authorize(params, consent=None)
    assert consent.headers["Location"].startswith("/consent?")
    page = client.get(consent.headers["Location"], headers={"Accept-Language": "lv"})
    assert page.status_code == 200 and lang(page) == "ru"


# --- the switcher ------------------------------------------------------------------------------


def test_every_page_has_the_switcher_back_to_the_same_page(
    client: FlaskClient, confidential_client: RegisteredClient
) -> None:
    interaction = paused(client, confidential_client)
    html = text(client.get("/login", query_string={"interaction": interaction}))
    links = re.findall(r'<a href="(/language/[^"]+)" lang="(\w+)" hreflang="(\w+)"([^>]*)>', html)
    assert [(code, other) for _href, code, other, _rest in links] == [
        ("lv", "lv"),
        ("ru", "ru"),
        ("en", "en"),
    ]
    assert ['aria-current="true"' in rest for *_x, rest in links] == [False, False, True]
    href = links[1][0].replace("&amp;", "&")
    assert parse_qs(urlsplit(href).query)["next"] == [f"/login?interaction={interaction}"]
    for name in ('lang="lv">Latviešu<', 'lang="ru">Русский<', 'lang="en"'):
        assert name in html
    # Error pages too.
    missing = client.get("/no-such-page")
    assert missing.status_code == 404 and "/language/ru?next=/no-such-page" in text(missing)
    # No inline script (the switcher works without any): only static/forms.js, by its URL.
    assert (
        re.findall(r"<script[^>]*>", html) == ['<script src="/static/forms.js" defer>']
        and "style=" not in html
    )


def test_the_switcher_sets_a_long_lived_cookie_and_goes_back(client: FlaskClient) -> None:
    answer = switch(client, "ru", "/forgot-password?x=1")
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/forgot-password?x=1"
    [cookie] = [
        c for c in answer.headers.getlist("Set-Cookie") if c.startswith(LANGUAGE_COOKIE + "=")
    ]
    attributes = [part.strip() for part in cookie.split(";")]
    assert attributes[0] == f"{LANGUAGE_COOKIE}=ru"
    assert "SameSite=Lax" in attributes and "HttpOnly" in attributes and "Path=/" in attributes
    assert any(a.startswith("Max-Age=") and int(a[8:]) > 300 * 86400 for a in attributes)
    assert "Secure" not in attributes  # plain-http loopback test issuer
    page = client.get("/forgot-password?x=1")
    assert lang(page) == "ru"
    assert re.search(r'hreflang="ru" aria-current="true">Русский<', text(page))


def test_the_cookie_is_secure_for_an_https_issuer(make_app: Callable[..., Flask]) -> None:
    client = make_app(issuer="https://idp.example.lv").test_client()
    answer = client.get("/language/lv", query_string={"next": "/login"})
    [cookie] = [
        c for c in answer.headers.getlist("Set-Cookie") if c.startswith(LANGUAGE_COOKIE + "=")
    ]
    assert "Secure" in [part.strip() for part in cookie.split(";")]


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "https://evil.example/",
        "http:/evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "/\t/evil.example",
        "evil.example/login",
        "",
    ],
)
def test_the_switcher_never_leaves_the_site(client: FlaskClient, target: str) -> None:
    answer = switch(client, "lv", target)
    assert answer.status_code == 303 and answer.headers["Location"] == "/"


def test_an_unknown_language_changes_nothing(client: FlaskClient) -> None:
    answer = switch(client, "de", "/login")
    assert answer.status_code == 404
    assert not any(
        c.startswith(LANGUAGE_COOKIE + "=") for c in answer.headers.getlist("Set-Cookie")
    )
    assert lang(client.get("/login")) == "en"


def test_a_logged_in_persons_choice_is_stored_on_the_account(
    app: Flask, client: FlaskClient, browser: Browser, db: Session, user: User
) -> None:
    browser.login()
    assert switch(client, "ru", "/signed-in").status_code == 303
    assert fresh(db, User, id=user.id).language == "ru"
    # Another browser without the cookie: the account's language.
    other = app.test_client()
    Browser(other).login()
    assert lang(other.get("/signed-in")) == "ru"


def test_the_switcher_during_a_sign_in_replaces_its_ui_locales(
    client: FlaskClient, db: Session, confidential_client: RegisteredClient
) -> None:
    interaction = paused(client, confidential_client, ui_locales="lv")
    login = f"/login?interaction={interaction}"
    assert lang(client.get(login)) == "lv"
    assert switch(client, "ru", login).headers["Location"] == login
    assert lang(client.get(login)) == "ru"
    assert fresh(db, Interaction, id=interaction).params["ui_locales"] == ["ru"]
    # From a page whose URL names no interaction (the bank registration form is found by
    # a token): this browser's paused requests follow the choice too.
    switch(client, "lv", "/")
    assert lang(client.get(login)) == "lv"
    # Another browser's request is not changed by this browser's switcher.
    other = paused(client.application.test_client(), confidential_client, ui_locales="lv")
    switch(client, "en", f"/login?interaction={other}")
    assert fresh(db, Interaction, id=other).params["ui_locales"] == ["lv"]


# --- the bank round trip -----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_the_language_survives_the_bank_round_trip(demo: Flask, method: str) -> None:
    person = Person(demo)
    to_login = demo_authorize(person, ui_locales="ru")
    interaction = query(to_login.headers["Location"])["interaction"]
    assert lang(person.get(to_login.headers["Location"])) == "ru"
    callback = bank_answer(person, press_bank(person, interaction))
    back = open_callback(person, callback, method)
    assert back.status_code == 303, text(back)
    resumed = person.get(back.headers["Location"])
    assert resumed.headers["Location"].startswith("/consent?")
    consent = person.get(resumed.headers["Location"])
    assert consent.status_code == 200 and lang(consent) == "ru"


def test_the_callback_page_speaks_the_sign_ins_language_without_any_cookie(demo: Flask) -> None:
    """A form_post callback is a cross-site POST: no Lax cookie comes along (neither the
    language cookie nor the Flask session). A browser with no cookies at all opening the
    callback sees the "start again" page in the request's language."""
    person, stranger = Person(demo), Person(demo)
    to_login = demo_authorize(person, ui_locales="ru")
    interaction = query(to_login.headers["Location"])["interaction"]
    callback = bank_answer(person, press_bank(person, interaction))
    page = open_callback(stranger, callback, "POST")
    assert page.status_code == 400 and lang(page) == "ru"


def test_a_bank_registration_speaks_the_sign_ins_language_to_its_mail(
    demo: Flask, db: Session, mailbox: Any
) -> None:
    """Anna (a demo customer without an account) comes back from the bank to the
    registration form, whose URL names no interaction: it speaks the request's language,
    and so do her account and its confirmation mail."""
    person = Person(demo)
    to_login = demo_authorize(person, ui_locales="ru")
    interaction = query(to_login.headers["Location"])["interaction"]
    back = open_callback(person, bank_answer(person, press_bank(person, interaction), ANNA_CODE))
    assert back.status_code == 303 and "/register/upstream/" in back.headers["Location"]
    form_url = back.headers["Location"]
    page = person.client.get(local(form_url), headers={"Accept-Language": "lv"})
    assert page.status_code == 200 and lang(page) == "ru"
    sent = person.client.post(
        local(form_url),
        data={"csrf_token": csrf_token(text(page)), "email": "anna@example.lv", "phone": ""},
    )
    assert sent.status_code == 200 and lang(sent) == "ru"
    assert mailbox.wait_for("anna@example.lv", timeout=20)["Content-Language"] == "ru"
    assert fresh(db, User, email="anna@example.lv").language == "ru"


# --- registration: the mail and the page of its link -------------------------------------------


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


def test_registration_keeps_the_sign_ins_language_for_the_mail_and_the_link(
    app: Flask,
    client: FlaskClient,
    db: Session,
    anna: Customer,
    mailbox: Any,
    confidential_client: RegisteredClient,
) -> None:
    interaction = paused(client, confidential_client, ui_locales="ru")
    page = client.get("/register", query_string={"interaction": interaction})
    assert lang(page) == "ru"
    sent = client.post(
        "/register",
        data={
            "csrf_token": csrf_token(text(page)),
            "customer_number": anna.number,
            "identifier": "010190-10001",
            "name": "",
            "email": "anna@example.lv",
            "password": "meadow lantern copper violin",
            "password_confirm": "meadow lantern copper violin",
            "interaction": interaction,
        },
    )
    assert sent.status_code == 200 and lang(sent) == "ru"
    assert fresh(db, User, email="anna@example.lv").language == "ru"
    message = mailbox.wait_for("anna@example.lv")
    assert message["Content-Language"] == "ru"
    link = local(_link(message))
    # Opened later in another browser (the paused request is long gone): the account's.
    db.query(Interaction).delete()
    db.commit()
    elsewhere = app.test_client()
    assert lang(elsewhere.get(link, headers={"Accept-Language": "lv"})) == "ru"
    # That browser's own choice wins.
    elsewhere.set_cookie(LANGUAGE_COOKIE, "lv")
    assert lang(elsewhere.get(link)) == "lv"


def _link(message: Any) -> str:
    body = message.get_body(("plain",)).get_content()
    match = re.search(r"https?://\S+/(?:confirm|activate|reset|invitation)\S*", body)
    assert match, body
    return match.group(0)


# --- mails in the stored language --------------------------------------------------------------


def test_a_reset_mail_goes_in_the_accounts_language_not_the_pages(
    client: FlaskClient, db: Session, user: User, mailbox: Any
) -> None:
    user.language = "ru"
    db.commit()
    client.set_cookie(LANGUAGE_COOKIE, "lv")
    page = client.get("/forgot-password")
    assert lang(page) == "lv"
    client.post("/forgot-password", data={"csrf_token": csrf_token(text(page)), "email": JANIS})
    assert mailbox.wait_for(user.email_display)["Content-Language"] == "ru"


def test_a_reset_mail_for_an_account_without_a_language_goes_in_the_pages(
    client: FlaskClient, db: Session, user: User, mailbox: Any
) -> None:
    assert user.language is None
    client.set_cookie(LANGUAGE_COOKIE, "lv")
    page = client.get("/forgot-password")
    client.post("/forgot-password", data={"csrf_token": csrf_token(text(page)), "email": JANIS})
    assert mailbox.wait_for(user.email_display)["Content-Language"] == "lv"


def _invite_cli(runner: Any, number: str, *extra: str) -> Any:
    return runner.invoke(
        args=[
            "users",
            "invite",
            "--customer",
            number,
            "--email",
            "ilze@example.lv",
            "--name",
            "Ilze Kalniņa",
            *extra,
        ]
    )


def test_a_cli_invitation_in_the_given_locale(
    app: Flask, runner: Any, db: Session, customer: Customer, mailbox: Any
) -> None:
    result = _invite_cli(runner, customer.number, "--locale", "ru")
    assert result.exit_code == 0, result.output
    message = mailbox.wait_for("ilze@example.lv")
    assert message["Content-Language"] == "ru"
    assert fresh(db, User, email="ilze@example.lv").language == "ru"
    # The activation page speaks it too (no other choice known).
    assert lang(app.test_client().get(local(_link(message)))) == "ru"


def test_a_cli_invitation_defaults_to_default_locale_and_refuses_an_unknown_one(
    runner: Any, db: Session, customer: Customer, mailbox: Any
) -> None:
    number = customer.number
    refused = _invite_cli(runner, number, "--locale", "de")
    assert refused.exit_code == 2 and "--locale" in refused.output
    assert fresh(db, User, email="ilze@example.lv") is None
    assert _invite_cli(runner, number).exit_code == 0
    assert fresh(db, User, email="ilze@example.lv").language == "en"  # the tests' default


def test_a_delegation_cli_invitation_in_the_given_locale(
    runner: Any, db: Session, customer: Customer, mailbox: Any
) -> None:
    result = runner.invoke(
        args=[
            "delegation",
            "add-user",
            "--customer",
            customer.number,
            "--email",
            "peteris@example.lv",
            "--name",
            "Pēteris Ozols",
            "--rights",
            "invoices.read",
            "--locale",
            "lv",
        ]
    )
    assert result.exit_code == 0, result.output
    assert mailbox.wait_for("peteris@example.lv")["Content-Language"] == "lv"
    assert fresh(db, User, email="peteris@example.lv").language == "lv"


def test_an_invitation_from_the_users_page_follows_the_inviters_page(
    demo: Flask, db: Session, mailbox: Any
) -> None:
    contractor = Person(demo)
    contractor.log_in()
    assert contractor.client.get("/language/lv", query_string={"next": "/"}).status_code == 303
    link = invite(contractor, db, mailbox)
    [message] = [m for m in mailbox.messages() if "anna.liepa" in str(m["To"]).lower()]
    assert message["Content-Language"] == "lv"
    # The invited person's page speaks it, unless they choose otherwise.
    anna = Person(demo)
    assert lang(anna.get(link)) == "lv"
    anna.client.set_cookie(LANGUAGE_COOKIE, "en")
    assert lang(anna.get(link)) == "en"


def test_the_password_login_of_a_sign_in_keeps_its_language(
    client: FlaskClient, browser: Browser, user: User, confidential_client: RegisteredClient
) -> None:
    interaction = paused(client, confidential_client, ui_locales="ru")
    page = client.get("/login", query_string={"interaction": interaction})
    wrong = client.post(
        "/login",
        data={
            "csrf_token": csrf_token(text(page)),
            "email": JANIS,
            "password": PASSWORD + "x",
            "interaction": interaction,
        },
    )
    assert wrong.status_code in (400, 401) and lang(wrong) == "ru"
