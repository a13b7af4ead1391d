"""The words the code keeps in tables — the consent page's scope descriptions
(idp/consent/scopes.py) and the names of roles, rights and states (idp/memberships/labels.py)
— are lazy strings, so each page shows them in its own language; and moments on the pages
are written as that language writes them, in Latvian time."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from idp.consent.scopes import CATALOGUE
from idp.memberships.labels import (
    RIGHT_LABELS,
    ROLE_LABELS,
    STATE_LABELS,
    right_label,
    role_label,
    state_label,
)
from idp.memberships.rights import MembershipState, Right, Role
from idp.models import User
from tests.conftest import Browser, RegisteredClient, auth_params, csrf_token

NUMBER = "100200300"  # the `customer` fixture; `user` (Jānis) is its contractor
INVITED = "Ilze.Kalnina@Example.lv"
LANGUAGES = ["lv", "ru"]
# How each language writes a moment on a page (idp.i18n.local_time).
MOMENT = {
    "lv": re.compile(r"\d{4}\. gada \d{1,2}\. [a-zāčēģīķļņšūž]+ \d\d:\d\d"),
    "ru": re.compile(r"\d{1,2} [а-яё]+ \d{4}\u202fг\., \d\d:\d\d"),
}


def in_language(app: Flask, language: str, lazy: Any) -> str:
    with app.test_request_context(headers={"Accept-Language": language}):
        return html.escape(str(lazy), quote=False)


def speak(client: FlaskClient, language: str) -> None:
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = language


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_consent_page_describes_the_scopes_in_the_pages_language(
    app: Flask,
    client: FlaskClient,
    browser: Browser,
    user: User,
    make_client: Callable[..., RegisteredClient],
    language: str,
) -> None:
    speak(client, language)
    rp = make_client(name="Rēķinu lietotne")
    params, _verifier = auth_params(rp, scope="openid profile email phone")
    paused = browser.authorize(params, consent=None)
    assert paused.headers["Location"].startswith("/consent")
    page = client.get(paused.headers["Location"]).get_data(as_text=True)
    for scope in ("openid", "profile", "email", "phone"):
        words = in_language(app, language, CATALOGUE[scope].description)
        assert words != in_language(app, "en", CATALOGUE[scope].description)
        assert words in page


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_users_section_names_roles_rights_and_states_in_the_pages_language(
    app: Flask, client: FlaskClient, browser: Browser, user: User, db: Session, language: str
) -> None:
    speak(client, language)
    assert browser.login().status_code == 302
    page = client.get(f"/users/{NUMBER}/add").get_data(as_text=True)
    answer = client.post(
        f"/users/{NUMBER}/add",
        data={
            "csrf_token": csrf_token(page),
            "name": "Ilze Kalniņa",
            "email": INVITED,
            "personal_code": "",
            "rights": ["invoices.read"],
        },
    )
    assert answer.status_code == 303
    listing = client.get(answer.headers["Location"]).get_data(as_text=True)
    for label in (
        ROLE_LABELS[Role.CONTRACTOR],
        ROLE_LABELS[Role.ADDITIONAL_USER],
        RIGHT_LABELS[Right.INVOICES_READ],
        STATE_LABELS[MembershipState.ACTIVE],
        STATE_LABELS[MembershipState.INVITED],
    ):
        words = in_language(app, language, label)
        assert words != in_language(app, "en", label)
        assert words in listing
    # The notice of the invitation states its deadline as the page's language writes it.
    assert MOMENT[language].search(listing), listing

    history = client.get(f"/users/{NUMBER}/history").get_data(as_text=True)
    assert MOMENT[language].search(history)
    assert in_language(app, language, RIGHT_LABELS[Right.INVOICES_READ]) in history


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_scope_role_right_and_state_has_words_in_the_language(
    app: Flask, language: str
) -> None:
    with app.test_request_context(headers={"Accept-Language": language}):
        shown = {
            **{f"scope {n}": str(s.description) for n, s in CATALOGUE.items()},
            **{f"role {r}": role_label(r) for r in Role},
            **{f"right {r}": right_label(r) for r in Right},
            **{f"state {s}": state_label(s) for s in MembershipState},
        }
    with app.test_request_context(headers={"Accept-Language": "en"}):
        english = {
            **{f"scope {n}": str(s.description) for n, s in CATALOGUE.items()},
            **{f"role {r}": role_label(r) for r in Role},
            **{f"right {r}": right_label(r) for r in Right},
            **{f"state {s}": state_label(s) for s in MembershipState},
        }
    assert not [key for key in shown if shown[key] == english[key]]
