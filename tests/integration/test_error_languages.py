"""A refusal of a service is a message id, not an English sentence: on a page it reads in
the page's language (the wrapping sentence and the reason inside it, placeholders
included), and the admin CLI still prints English whatever the default language."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from idp.accounts.password_policy import password_problems
from idp.delegation.services import DelegationError, _email
from idp.identifiers import InvalidIdentifier, normalize_phone
from idp.models import User
from tests.integration.demo_people import membership, text
from tests.integration.test_users_pages import INVITED, NUMBER, add_user, invite_ilze, post_form


def page_text(answer: Any) -> str:
    return html.unescape(text(answer))


@pytest.fixture
def contractor_in(browser: Any, user: User) -> Callable[[str], FlaskClient]:
    """Jānis logged in, his browser asking for the given language from then on."""

    def speaking(language: str) -> FlaskClient:
        browser.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = language
        assert browser.login().status_code == 302
        return browser.client

    return speaking


def test_a_refused_add_user_reads_in_latvian(
    contractor_in: Callable[[str], FlaskClient], db: Session, mailbox: Any
) -> None:
    contractor = contractor_in("lv")
    invite_ilze(contractor, db, mailbox)
    again = add_user(contractor, email=INVITED.upper())
    assert again.status_code == 400
    assert (
        f"Lietotājs netika pievienots. {INVITED} jau pārstāv klientu {NUMBER} "
        "(Papildu lietotājs, Uzaicināts). Tā vietā nosūtiet uzaicinājumu vēlreiz."
    ) in page_text(again)
    assert "already acts" not in page_text(again)


def test_a_personal_code_problem_on_the_add_user_form_reads_in_russian(
    contractor_in: Callable[[str], FlaskClient],
) -> None:
    answer = add_user(contractor_in("ru"), personal_code="123")
    assert answer.status_code == 400
    assert (
        "Недействительный персональный код. Персональный код состоит из 11 цифр, а не из 3. "
        "Проверьте его или оставьте поле пустым."
    ) in page_text(answer)


def test_removing_a_removed_user_is_refused_in_russian(
    contractor_in: Callable[[str], FlaskClient], db: Session, mailbox: Any
) -> None:
    contractor = contractor_in("ru")
    invite_ilze(contractor, db, mailbox)
    row_id = membership(db, INVITED).id
    url = f"/users/{NUMBER}/{row_id}/remove"
    assert post_form(contractor, url).status_code == 303
    db.commit()
    again = post_form(contractor, url)
    assert again.status_code == 400
    assert (
        f"Пользователь не удалён. Доступ пользователя {INVITED} уже прекращён (статус: Удалён)."
    ) in page_text(again)


def test_the_refused_resend_page_reads_in_latvian(
    contractor_in: Callable[[str], FlaskClient], db: Session, mailbox: Any
) -> None:
    contractor = contractor_in("lv")
    invite_ilze(contractor, db, mailbox)
    row = membership(db, INVITED)
    row.state = "active"  # she accepted meanwhile
    db.commit()
    answer = post_form(contractor, f"/users/{NUMBER}/add", f"/users/{NUMBER}/{row.id}/resend")
    assert answer.status_code == 409
    assert f"{INVITED} negaida uzaicinājumu (statuss: Aktīvs)." in page_text(answer)


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("lv", "'x@': Šī nav e-pasta adrese; e-pasta adrese izskatās, piemēram, šādi:"),
        ("ru", "'x@': Это не адрес электронной почты; адрес выглядит, например, так:"),
        ("en", "'x@': This is not an e-mail address; an address looks like name@example.lv."),
    ],
)
def test_a_nested_message_renders_its_parts_in_one_language(
    app: Flask, language: str, expected: str
) -> None:
    with app.test_request_context(headers={"Accept-Language": language}):
        with pytest.raises(DelegationError) as refused:
            _email("x@")
        assert str(refused.value).startswith(expected)


@pytest.mark.parametrize(
    ("language", "length", "expected"),
    [
        ("lv", 12, "Parolē jābūt vismaz 12 rakstzīmēm."),
        ("lv", 21, "Parolē jābūt vismaz 21 rakstzīmei."),
        ("ru", 12, "Используйте не менее 12 символов."),
        ("ru", 21, "Используйте не менее 21 символа."),
        ("en", 21, "Use at least 21 characters."),
    ],
)
def test_counts_take_the_plural_form_of_the_language(
    app: Flask, language: str, length: int, expected: str
) -> None:
    with app.test_request_context(headers={"Accept-Language": language}):
        assert password_problems("short", length)[0].startswith(expected)


def test_the_same_error_is_english_outside_a_request(app: Flask) -> None:
    with app.app_context(), pytest.raises(InvalidIdentifier) as refused:
        normalize_phone("20000000")
    with app.app_context():
        assert str(refused.value) == (
            "Write the phone number in the international format, e.g. +371 20000000."
        )
    with app.test_request_context(headers={"Accept-Language": "lv"}):
        assert str(refused.value) == (
            "Ierakstiet tālruņa numuru starptautiskā formātā, piemēram, +371 20000000."
        )


def test_the_cli_prints_english_even_when_latvian_is_the_default(
    make_app: Callable[..., Flask], app: Flask, user: User
) -> None:
    latvian = make_app(default_locale="lv")
    result = latvian.test_cli_runner().invoke(
        args=[
            "delegation",
            "add-user",
            "--customer",
            NUMBER,
            "--email",
            "nobody",
            "--name",
            "Ilze",
            "--rights",
            "invoices.read",
        ]
    )
    assert result.exit_code != 0
    assert result.output.strip() == (
        "Error: 'nobody': This is not an e-mail address; an address looks like name@example.lv."
    )
