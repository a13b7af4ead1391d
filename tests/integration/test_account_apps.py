"""My account, "Apps with access" (issue 15): every consent the person gave is listed in
the consent page's words; withdrawing one ends the application's refresh tokens at once
and its next login asks again."""

from __future__ import annotations

import datetime as dt
import html as html_escape
import re
from collections.abc import Callable

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.accounts.services import create_user
from idp.consent.scopes import CATALOGUE
from idp.models import AccountEvent, ConsentGrant, Customer, TokenFamily, User
from tests.conftest import PASSWORD, Browser, RegisteredClient, auth_params, csrf_token
from tests.integration.account_pages import (
    FIREFOX_WINDOWS,
    logged_in,
    page,
)
from tests.integration.conftest import introspect, login_tokens, refresh

ANNA = "anna@example.lv"


@pytest.fixture
def invoice_app(make_client: Callable[..., RegisteredClient]) -> RegisteredClient:
    """A third-party application: it asks for consent (first_party is not set)."""
    return make_client(
        name="Invoice app",
        grant_types=["authorization_code", "refresh_token"],
        scopes=["openid", "profile", "email", "invoices.read"],
    )


@pytest.fixture
def portal_app(make_client: Callable[..., RegisteredClient]) -> RegisteredClient:
    return make_client(
        name="Portal", first_party=True, grant_types=["authorization_code", "refresh_token"]
    )


def plain_words(app: Flask, scope: str) -> str:
    with app.test_request_context():
        return html_escape.escape(str(CATALOGUE[scope].description))


def withdraw_links(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'href="/account/apps/(\d+)/withdraw"', html)]


def grant_of(db: Session, user: User) -> ConsentGrant | None:
    db.expire_all()
    grant = db.scalar(select(ConsentGrant).where(ConsentGrant.user_id == user.id))
    db.commit()  # end the read: SQLite lets no one else write meanwhile
    return grant


def withdraw(browser: Browser, grant_id: int) -> int:
    confirm = browser.client.get(f"/account/apps/{grant_id}/withdraw")
    if confirm.status_code != 200:
        return confirm.status_code
    response = browser.client.post(
        f"/account/apps/{grant_id}/withdraw",
        data={"csrf_token": csrf_token(confirm.get_data(as_text=True))},
    )
    if response.status_code == 303:
        assert response.headers["Location"] == "/account/apps"
    return response.status_code


def test_an_app_the_person_allowed_is_listed_in_the_consent_pages_words(
    app: Flask, db: Session, user: User, customer: Customer, invoice_app: RegisteredClient
) -> None:
    laptop = logged_in(app, FIREFOX_WINDOWS)
    login_tokens(laptop.client, laptop, invoice_app, scope="openid email invoices.read")

    html = page(laptop, "/account/apps")
    assert "Invoice app" in html
    for scope in ("openid", "email", "invoices.read"):
        assert plain_words(app, scope) in html
    assert plain_words(app, "profile") not in html  # not asked for, not allowed
    assert "Jānis Bērziņš (customer number 100200300)" in html
    assert len(withdraw_links(html)) == 1
    assert "Last changed" not in html  # allowed once: nothing changed since

    # Allowing it more later shows when.
    grant = db.scalar(select(ConsentGrant))
    assert grant is not None
    grant.created_at -= dt.timedelta(days=3)
    db.commit()
    login_tokens(laptop.client, laptop, invoice_app, scope="openid profile")
    html = page(laptop, "/account/apps")
    assert plain_words(app, "profile") in html
    assert "Last changed" in html


def test_first_party_apps_are_not_listed_and_the_page_says_why(
    app: Flask, user: User, portal_app: RegisteredClient
) -> None:
    laptop = logged_in(app, FIREFOX_WINDOWS)
    login_tokens(laptop.client, laptop, portal_app)
    html = page(laptop, "/account/apps")
    assert "You have not allowed any application to see your data." in html
    assert "do not ask for permission and are not listed here" in html
    assert withdraw_links(html) == []


def test_withdrawing_ends_the_apps_tokens_and_it_asks_again(
    app: Flask, db: Session, user: User, customer: Customer, invoice_app: RegisteredClient
) -> None:
    laptop = logged_in(app, FIREFOX_WINDOWS)
    tokens = login_tokens(laptop.client, laptop, invoice_app)
    grant = grant_of(db, user)
    assert grant is not None

    confirm = page(laptop, f"/account/apps/{grant.id}/withdraw")
    assert "Withdraw the access of Invoice app?" in confirm
    assert "it will have to ask for your permission" in confirm
    assert grant_of(db, user) is not None  # looking at the question changes nothing

    assert withdraw(laptop, grant.id) == 303
    after = page(laptop, "/account/apps")
    assert "Invoice app no longer has access." in after
    assert withdraw_links(after) == []
    assert grant_of(db, user) is None

    answer = refresh(laptop.client, invoice_app, tokens["refresh_token"])
    assert answer.status_code == 400
    assert answer.get_json()["error"] == "invalid_grant"
    assert introspect(laptop.client, invoice_app, tokens["access_token"]) == {"active": False}
    # The next login asks for consent again.
    params, _verifier = auth_params(invoice_app)
    again = laptop.client.get("/authorize", query_string=params)
    assert again.status_code == 302
    assert again.headers["Location"].startswith("/consent")

    (event,) = db.scalars(select(AccountEvent).where(AccountEvent.kind == "consent_withdrawn"))
    (family,) = db.scalars(select(TokenFamily))
    db.commit()
    assert event.user_id == user.id
    assert event.client_name == "Invoice app"
    assert event.customer_number == customer.number
    assert event.details == {"scopes": ["email", "openid", "profile"], "apps_logged_out": 1}
    assert family.revoked_reason == "consent_withdrawn"


def test_withdrawing_for_one_customer_leaves_other_apps_alone(
    app: Flask,
    db: Session,
    user: User,
    invoice_app: RegisteredClient,
    portal_app: RegisteredClient,
    make_client: Callable[..., RegisteredClient],
) -> None:
    meter_app = make_client(name="Meter app", grant_types=["authorization_code", "refresh_token"])
    laptop = logged_in(app, FIREFOX_WINDOWS)
    login_tokens(laptop.client, laptop, invoice_app)
    on_meters = login_tokens(laptop.client, laptop, meter_app)
    on_portal = login_tokens(laptop.client, laptop, portal_app)

    html = page(laptop, "/account/apps")
    assert html.index("Invoice app") < html.index("Meter app")
    assert withdraw(laptop, withdraw_links(html)[0]) == 303
    assert refresh(laptop.client, meter_app, on_meters["refresh_token"]).status_code == 200
    assert refresh(laptop.client, portal_app, on_portal["refresh_token"]).status_code == 200
    assert "Meter app" in page(laptop, "/account/apps")


def test_another_persons_grant_or_an_unknown_one_is_not_found(
    app: Flask, db: Session, user: User, invoice_app: RegisteredClient
) -> None:
    create_user(
        db, app.extensions["idp.passwords"], email=ANNA, name="Anna Liepa", password=PASSWORD
    )
    db.commit()
    anna = logged_in(app, FIREFOX_WINDOWS, email=ANNA)
    login_tokens(anna.client, anna, invoice_app)
    (annas_grant,) = withdraw_links(page(anna, "/account/apps"))

    laptop = logged_in(app, FIREFOX_WINDOWS)
    form = page(laptop, "/account/sessions")  # a page with a form: its token
    for grant_id in (annas_grant, annas_grant + 1000, 2**31, 2**63 + 1):
        path = f"/account/apps/{grant_id}/withdraw"
        assert laptop.client.get(path).status_code == 404, grant_id
        response = laptop.client.post(path, data={"csrf_token": csrf_token(form)})
        assert response.status_code == 404, grant_id
    assert laptop.client.get("/account/apps/-1/withdraw").status_code == 404
    assert laptop.client.get("/account/apps/x/withdraw").status_code == 404
    assert withdraw_links(page(anna, "/account/apps")) == [annas_grant]


def test_withdrawing_without_the_forms_token_is_refused(
    app: Flask, db: Session, user: User, invoice_app: RegisteredClient
) -> None:
    laptop = logged_in(app, FIREFOX_WINDOWS)
    tokens = login_tokens(laptop.client, laptop, invoice_app)
    grant = grant_of(db, user)
    assert grant is not None
    response = laptop.client.post(f"/account/apps/{grant.id}/withdraw")
    assert response.status_code == 400
    assert grant_of(db, user) is not None
    assert refresh(laptop.client, invoice_app, tokens["refresh_token"]).status_code == 200
