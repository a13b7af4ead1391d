"""Consent: a third-party app asks once per person, in plain words; first-party apps never
ask; the answer is a record per user and client."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from idp.consent import services
from idp.consent.scopes import CATALOGUE
from idp.db import session_factory
from idp.models import Client, ConsentGrant, User
from tests.conftest import Browser, RegisteredClient, auth_params, csrf_token, query


def plain_words(app: Flask, scope: str) -> str:
    with app.test_request_context():
        return html.escape(str(CATALOGUE[scope].description))


def is_code_for(response: Any, rp: RegisteredClient) -> bool:
    location = response.headers.get("Location", "")
    return (
        response.status_code == 302
        and location.startswith(rp.redirect_uri)
        and "code" in query(location)
    )


def goes_to_consent(response: Any) -> bool:
    return response.status_code == 302 and response.headers["Location"].startswith("/consent")


def test_the_consent_page_lists_the_requested_scopes_in_plain_words(
    app: Flask,
    client: FlaskClient,
    browser: Browser,
    user: User,
    make_client: Callable[..., RegisteredClient],
) -> None:
    rp = make_client(name="Invoice app")
    params, _verifier = auth_params(rp, scope="openid email")
    paused = browser.authorize(params, consent=None)
    assert goes_to_consent(paused)

    page = client.get(paused.headers["Location"])
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Invoice app" in text
    assert plain_words(app, "openid") in text
    assert plain_words(app, "email") in text
    # Only what was asked for: the client may get a phone number but did not ask.
    assert plain_words(app, "phone") not in text
    assert plain_words(app, "profile") not in text
    assert csrf_token(text)
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]


def test_allow_is_remembered_for_the_same_person_and_client(
    browser: Browser,
    db: Session,
    user: User,
    make_client: Callable[..., RegisteredClient],
) -> None:
    rp = make_client(name="Invoice app")
    first, _verifier = auth_params(rp)
    assert is_code_for(browser.authorize(first, consent="allow"), rp)

    grant = db.scalar(select(ConsentGrant).where(ConsentGrant.user_id == user.id))
    db.commit()
    assert grant is not None
    assert sorted(grant.scopes) == ["email", "openid", "profile"]

    second, _verifier = auth_params(rp)
    assert is_code_for(browser.authorize(second, consent=None), rp)


def test_a_different_client_asks_again(
    browser: Browser,
    user: User,
    make_client: Callable[..., RegisteredClient],
) -> None:
    invoices = make_client(name="Invoice app")
    meters = make_client(name="Meter app", redirect_uris=["https://meters.example.lv/cb"])
    params, _verifier = auth_params(invoices)
    assert is_code_for(browser.authorize(params), invoices)

    params, _verifier = auth_params(meters)
    assert goes_to_consent(browser.authorize(params, consent=None))


def test_asking_for_a_scope_not_allowed_before_asks_again(
    browser: Browser,
    user: User,
    make_client: Callable[..., RegisteredClient],
) -> None:
    rp = make_client(name="Invoice app")
    params, _verifier = auth_params(rp, scope="openid email")
    assert is_code_for(browser.authorize(params), rp)

    params, _verifier = auth_params(rp, scope="openid email phone")
    assert goes_to_consent(browser.authorize(params, consent=None))


def test_a_scope_the_client_may_not_get_is_neither_shown_nor_asked_for_again(
    app: Flask,
    client: FlaskClient,
    browser: Browser,
    user: User,
    make_client: Callable[..., RegisteredClient],
) -> None:
    rp = make_client(name="Invoice app", scopes=["openid", "email"])
    params, _verifier = auth_params(rp, scope="openid email phone")
    paused = browser.authorize(params, consent=None)
    assert goes_to_consent(paused)
    assert plain_words(app, "phone") not in client.get(paused.headers["Location"]).get_data(
        as_text=True
    )
    assert is_code_for(browser.authorize(params), rp)

    params, _verifier = auth_params(rp, scope="openid email phone")
    assert is_code_for(browser.authorize(params, consent=None), rp)


def test_a_first_party_client_never_shows_the_consent_page(
    browser: Browser,
    db: Session,
    user: User,
    confidential_client: RegisteredClient,
) -> None:
    params, _verifier = auth_params(confidential_client, prompt="consent")
    assert is_code_for(browser.authorize(params, consent=None), confidential_client)
    params, _verifier = auth_params(confidential_client)
    assert is_code_for(browser.authorize(params, consent=None), confidential_client)
    assert db.scalar(select(ConsentGrant)) is None


def test_deny_sends_access_denied_back_and_remembers_nothing(
    browser: Browser,
    db: Session,
    user: User,
    make_client: Callable[..., RegisteredClient],
) -> None:
    rp = make_client(name="Invoice app")
    params, _verifier = auth_params(rp)
    response = browser.authorize(params, consent="deny")
    assert response.status_code == 302
    answer = query(response.headers["Location"])
    assert answer["error"] == "access_denied"
    assert answer["state"] == params["state"]
    assert db.scalar(select(ConsentGrant)) is None


def test_a_consent_post_without_csrf_token_gets_a_400_page(
    client: FlaskClient,
    browser: Browser,
    db: Session,
    user: User,
    make_client: Callable[..., RegisteredClient],
) -> None:
    rp = make_client(name="Invoice app")
    params, _verifier = auth_params(rp)
    paused = browser.authorize(params, consent=None)
    interaction = query(paused.headers["Location"])["interaction"]

    response = client.post("/consent", data={"interaction": interaction, "allow": "Allow"})
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert "The form has expired" in response.get_data(as_text=True)
    assert db.scalar(select(ConsentGrant)) is None


def test_allowing_again_or_in_two_tabs_keeps_one_grant_with_every_scope(
    app: Flask, db: Session, user: User, confidential_client: RegisteredClient
) -> None:
    """Consent is remembered once per user, client and customer, also for a person who acts
    for no customer (NULL, which a plain unique constraint lets repeat): a second "Allow",
    as from another tab that found no grant either, adds its scopes to the one row."""
    client = db.scalar(select(Client).where(Client.client_id == confidential_client.client_id))
    assert client is not None
    user_id, client_id = user.id, client.id
    db.commit()
    for scope in ("openid profile", "openid email"):
        with session_factory(app)() as session:  # each "tab" its own transaction
            services.remember(session, user_id, client_id, None, scope)
            session.commit()
    rows = db.scalars(select(ConsentGrant).where(ConsentGrant.user_id == user_id)).all()
    assert [sorted(r.scopes) for r in rows] == [["email", "openid", "profile"]]
    assert services.missing_scopes(db, user_id, client_id, None, "openid email profile") == []
    db.commit()
    with pytest.raises(IntegrityError):  # the database keeps it so, whoever writes
        db.add(
            ConsentGrant(user_id=user_id, client_id=client_id, customer_id=None, scopes=["openid"])
        )
        db.flush()
    db.rollback()
