"""The words the code keeps in tables — the consent page's scope descriptions
(idp/consent/scopes.py) and the names of roles, rights and states (idp/memberships/labels.py)
— are lazy strings, so each page shows them in its own language; and moments on the pages
are written as that language writes them, in Latvian time."""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from idp import mail
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


@pytest.mark.parametrize(
    ("language", "last_day", "until", "deadline"),
    [
        (
            "lv",
            "Pilnvarojuma pēdējā derīguma diena: 2026. gada 31. decembris (pēc Latvijas laika).",
            "Pilnvarojuma derīguma termiņš: 2026. gada 1. jūlijs 15:00 (pēc Latvijas laika).",
            "līdz termiņam – 2026. gada 2. decembris 14:30 (pēc Latvijas laika)",
        ),
        (
            "ru",
            "до конца дня 31 декабря 2026\u202fг. (по латвийскому времени)",
            "действительны до 1 июля 2026\u202fг., 15:00 (по латвийскому времени)",
            "до 2 декабря 2026\u202fг., 14:30 (по латвийскому времени)",
        ),
        (
            "en",
            "valid to the end of 31 December 2026 (Latvian time)",
            "valid until 1 July 2026, 15:00 (Latvian time)",
            "Approve it by 2 December 2026, 14:30 (Latvian time)",
        ),
    ],
)
def test_a_mail_states_its_dates_as_its_own_language_writes_them(
    app: Flask, language: str, last_day: str, until: str, deadline: str
) -> None:
    # Rendered in a request of another language: the mail's own language decides.
    context = {
        "name": "Aivars Ozols",
        "customer_name": "SIA Gāze",
        "link": "http://localhost/l/x",
        "has_account": False,
        "expires_at": dt.datetime(2026, 12, 2, 12, 30, tzinfo=dt.UTC),
    }
    with app.test_request_context(headers={"Accept-Language": "en" if language != "en" else "lv"}):
        _subject, through, _html = mail.render(
            "authorisation", language, {**context, "valid_through": dt.date(2026, 12, 31)}
        )
        _subject, exact, html_body = mail.render(
            "authorisation",
            language,
            {
                **context,
                "valid_through": None,
                "valid_until": dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.UTC),
            },
        )
    # Lines are wrapped at spaces; U+202F (inside "2026 г.") is kept.
    flat = _unwrap(through), _unwrap(exact)
    assert last_day in flat[0] and deadline in flat[0]
    assert until in flat[1] and deadline in flat[1]
    assert until in _unwrap(html.unescape(html_body))


def _unwrap(text: str) -> str:
    return re.sub(r"[ \n]+", " ", text)
