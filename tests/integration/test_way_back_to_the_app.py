"""Issue 14: the application's sign-in is never lost, no page is a dead end, and the words
fit the path the person took. Each path carries the paused authorization request
(`interaction`) along and ends at the application with a code."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from idp.demo.seed import DEMO_EMAIL, DEMO_PASSWORD, PUBLIC_CLIENT_ID
from idp.models import Interaction, User
from tests.conftest import (
    PASSWORD,
    Browser,
    RegisteredClient,
    auth_params,
    csrf_token,
    pkce_pair,
    query,
)
from tests.integration.demo_people import PETERIS_CODE, Person, local, text

ILZE_CODE = "15058510006"  # the DEMO bank knows her; she is nobody's customer
NEW_PASSWORD = "harbour violet lamp seventeen"


def paused(client: FlaskClient, rp: RegisteredClient) -> tuple[dict[str, str], str]:
    params, _ = auth_params(rp)
    to_login = client.get("/authorize", query_string=params)
    assert urlsplit(to_login.headers["Location"]).path == "/login"
    return params, query(to_login.headers["Location"])["interaction"]


def ends_at_the_app(client: FlaskClient, response: Any, rp: RegisteredClient) -> None:
    """Follow the IdP's own redirects (resume, consent) to the client's redirect URI."""
    for _ in range(6):
        location = response.headers.get("Location", "")
        assert response.status_code in (302, 303), text(response)
        if location.startswith(rp.redirect_uri):
            assert "code" in query(location)
            return
        if urlsplit(location).path == "/consent":
            page = client.get(location)
            response = client.post(
                "/consent",
                data={
                    "csrf_token": csrf_token(text(page)),
                    "interaction": query(location)["interaction"],
                    "allow": "Allow",
                },
            )
        else:
            response = client.get(local(location))
    raise AssertionError("never reached the application")


# --- forgot password -----------------------------------------------------------------------


def test_forgot_password_keeps_the_sign_in_to_the_app(
    client: FlaskClient, user: User, mailbox: Any, confidential_client: RegisteredClient
) -> None:
    _params, interaction = paused(client, confidential_client)
    login = text(client.get("/login", query_string={"interaction": interaction}))
    assert f'href="/forgot-password?interaction={interaction}"' in login
    page = client.get("/forgot-password", query_string={"interaction": interaction})
    assert f'value="{interaction}"' in text(page)
    sent = client.post(
        "/forgot-password",
        data={
            "csrf_token": csrf_token(text(page)),
            "email": user.email,
            "interaction": interaction,
        },
    )
    assert f'href="/login?interaction={interaction}"' in text(sent)
    link = mailbox.link_for(user.email_display)
    assert f"interaction={interaction}" in link
    form = client.get(local(link))
    changed = client.post(
        local(link),
        data={
            "csrf_token": csrf_token(text(form)),
            "password": NEW_PASSWORD,
            "password_confirm": NEW_PASSWORD,
        },
    )
    assert changed.status_code == 303
    assert query(changed.headers["Location"])["interaction"] == interaction
    logged_in = Browser(client).login(user.email, NEW_PASSWORD, interaction)
    ends_at_the_app(client, logged_in, confidential_client)


def test_a_reset_link_names_no_sign_in_of_another_browser(
    app: Flask, client: FlaskClient, user: User, mailbox: Any, confidential_client: RegisteredClient
) -> None:
    """Only this browser's paused request travels into the mail."""
    _params, interaction = paused(client, confidential_client)
    other = app.test_client()
    page = other.get("/forgot-password")
    other.post(
        "/forgot-password",
        data={
            "csrf_token": csrf_token(text(page)),
            "email": user.email,
            "interaction": interaction,
        },
    )
    assert "interaction=" not in mailbox.link_for(user.email_display)


# --- registration by e-mail ---------------------------------------------------------------------


def test_create_an_account_and_its_refusal_keep_the_sign_in(
    client: FlaskClient, db: Session, customer: Any, confidential_client: RegisteredClient
) -> None:
    _params, interaction = paused(client, confidential_client)
    login = text(client.get("/login", query_string={"interaction": interaction}))
    assert f'href="/register?interaction={interaction}"' in login
    page = client.get("/register", query_string={"interaction": interaction})
    refused = client.post(
        "/register",
        data={
            "csrf_token": csrf_token(text(page)),
            "customer_number": "999999999",
            "identifier": "010190-10001",
            "name": "",
            "email": "someone@example.lv",
            "password": NEW_PASSWORD,
            "password_confirm": NEW_PASSWORD,
            "interaction": interaction,
        },
    )
    html = text(refused)
    assert refused.status_code == 422 and "We could not register you" in html
    assert f'<a href="/register?interaction={interaction}">Try again</a>' in html
    assert f'href="/login?interaction={interaction}"' in html


# --- the bank and eSignature ----------------------------------------------------------------------


def demo_sign_in(person: Person) -> str:
    """A paused request of the demo relying page in this person's browser."""
    _verifier, challenge = pkce_pair()
    started = person.client.get(
        "/authorize",
        query_string={
            "response_type": "code",
            "client_id": PUBLIC_CLIENT_ID,
            "redirect_uri": person.issuer + "/demo/callback",
            "scope": "openid profile",
            "state": "s",
            "nonce": "n",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    return query(started.headers["Location"])["interaction"]


def to_the_bank(person: Person, interaction: str, provider: str = "demo-bank") -> Any:
    page = text(person.get(f"/login?interaction={interaction}"))
    return person.client.post(
        "/login/upstream",
        data={"csrf_token": csrf_token(page), "provider": provider, "interaction": interaction},
    )


def test_a_cancelled_bank_login_is_back_on_the_login_page_with_the_sign_in(demo: Flask) -> None:
    person = Person(demo)
    interaction = demo_sign_in(person)
    back = person.at_the_bank(to_the_bank(person, interaction), None)
    assert back.status_code == 303
    assert urlsplit(back.headers["Location"]).path == "/login"
    assert query(back.headers["Location"])["interaction"] == interaction
    page = text(person.get(back.headers["Location"]))
    assert "was cancelled" in page and f'value="{interaction}"' in page
    assert "to continue to Demo relying page" in page


def test_a_bank_login_of_no_customer_is_worded_as_a_login(demo: Flask) -> None:
    person = Person(demo)
    interaction = demo_sign_in(person)
    refused = person.at_the_bank(to_the_bank(person, interaction), ILZE_CODE)
    html = text(refused)
    assert refused.status_code == 422
    assert "We could not log you in" in html and "We could not register you" not in html
    assert "Your bank confirmed who you are" in html
    # "Try again" is the login page with the sign-in, not the e-mail registration.
    assert f'<a href="/login?interaction={interaction}">Try again</a>' in html
    assert 'href="/register' not in html


def test_a_bank_registration_is_not_sent_to_a_password_form(demo: Flask, mailbox: Any) -> None:
    person = Person(demo)
    interaction = demo_sign_in(person)
    back = person.at_the_bank(to_the_bank(person, interaction), PETERIS_CODE)
    form = back.headers["Location"]
    assert "Your bank confirmed that you are Pēteris Ozols" in text(person.get(form))
    sent = person.post_page(form, email="peteris@example.lv", phone="")
    assert f'href="/login?interaction={interaction}"' in text(sent)
    link = mailbox.link_for("peteris@example.lv")
    assert f"interaction={interaction}" in link
    confirmed = person.post_page(local(link))
    assert confirmed.status_code == 303
    assert query(confirmed.headers["Location"])["interaction"] == interaction
    login = text(person.get(confirmed.headers["Location"]))
    assert "Log in with your internet bank or eSignature." in login
    assert "You can log in now." not in login


@pytest.mark.parametrize(
    ("method", "words", "not_words"),
    [
        ("esignature", "DEMO eParaksts confirmed who you are", "Your bank"),
        ("bank", "Your bank confirmed who you are", "eParaksts"),
    ],
)
def test_the_refusal_names_the_bank_or_the_esignature(
    app: Flask, method: str, words: str, not_words: str
) -> None:
    from flask import render_template

    with app.test_request_context("/upstream/callback/x"):
        html = render_template(
            "accounts/register_refused.html",
            reason="no_customer_upstream",
            support="phone 8000",
            by_login=True,
            method=method,
            provider_name="DEMO eParaksts",
            interaction=None,
        )
    assert words in html and not_words not in html


# --- the expired sign-in ------------------------------------------------------------------------


def test_the_expired_page_names_the_app_and_links_to_it(
    client: FlaskClient, db: Session, user: User, confidential_client: RegisteredClient
) -> None:
    """The paused request is gone (expired and deleted): the browser's session still knows
    which application sent it."""
    _params, interaction = paused(client, confidential_client)
    Browser(client).login(interaction=interaction)
    row = db.get(Interaction, interaction)
    assert row is not None
    db.delete(row)
    db.commit()
    for path in ("/consent", "/act-for", "/authorize/resume"):
        page = client.get(path, query_string={"interaction": interaction})
        html = text(page)
        assert page.status_code == 400
        assert "This sign-in has expired" in html and "Portal" in html
        assert '<a href="https://rp.example.lv/">Start again at Portal</a>' in html
        assert "invalid_request" not in html


# --- no dead ends ---------------------------------------------------------------------------


def test_error_pages_lead_back_to_the_app_that_sent_the_person(
    client: FlaskClient, confidential_client: RegisteredClient
) -> None:
    paused(client, confidential_client)
    for path, status in (
        ("/no-such-page", 404),
        ("/reset-password/not-a-link", 404),
        ("/register/confirm/not-a-link", 404),
        ("/logged-out", 200),
    ):
        page = client.get(path)
        assert page.status_code == status, path
        html = text(page)
        assert '<a href="https://rp.example.lv/">Back to Portal</a>' in html, path
        assert 'href="/login' in html, path


def test_error_pages_of_a_browser_without_an_app_lead_to_the_login_page(
    client: FlaskClient,
) -> None:
    for path in ("/no-such-page", "/activate/not-a-link", "/logged-out", "/consent?interaction=x"):
        html = text(client.get(path))
        assert "Back to " not in html, path
        assert 'href="/login"' in html or 'href="/"' in html, path


def test_an_expired_form_leads_back_into_the_sign_in(
    app: Flask,
    client: FlaskClient,
    user: User,
    confidential_client: RegisteredClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _params, interaction = paused(client, confidential_client)
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    expired = client.post(
        "/login",
        data={
            "csrf_token": "stale",
            "email": user.email,
            "password": PASSWORD,
            "interaction": interaction,
        },
    )
    html = text(expired)
    assert expired.status_code == 400 and "The form has expired" in html
    assert f'<a href="/login?interaction={interaction}">Continue logging in</a>' in html
    assert "Back to Portal" in html


def test_the_start_page_says_what_to_do_next(client: FlaskClient, user: User) -> None:
    Browser(client).login()
    html = text(client.get("/"))
    assert "Open the customer portal" not in html  # no portal_url outside demo mode


def test_the_demo_start_page_opens_the_customer_portal(demo: Flask) -> None:
    person = Person(demo)
    person.log_in(DEMO_EMAIL, DEMO_PASSWORD)
    html = text(person.get("/"))
    assert f'<a href="{person.issuer}/demo/">Open the customer portal</a>' in html


# --- consent in plain words ---------------------------------------------------------------------


def test_the_consent_page_says_what_the_app_will_see_with_allow_and_cancel(
    client: FlaskClient, browser: Browser, user: User, make_client: Any
) -> None:
    rp = make_client(name="Invoices")
    params, _ = auth_params(rp)
    page = browser.authorize(params, consent=None)
    html = text(client.get(page.headers["Location"]))
    assert "If you allow it, Invoices will be able to:" in html
    assert "See your name" in html and "See your e-mail address" in html
    assert 'value="Allow"' in html and 'value="Cancel"' in html and "Deny" not in html
    cancelled = browser.authorize(params, consent="deny")
    assert query(cancelled.headers["Location"])["error"] == "access_denied"


@pytest.mark.parametrize("language", ["en"])
def test_role_names_people_understand(client: FlaskClient, language: str) -> None:
    from idp.memberships.labels import ROLE_LABELS

    with client.application.test_request_context(headers={"Accept-Language": language}):
        assert str(ROLE_LABELS["contractor"]) == "Account holder"
