"""Every form speaks the page's language when it refuses a value: WTForms has no Latvian
catalogue, so each validator carries its own message, and none of WTForms' English may
reach a person. Each form is sent empty and with bad values in lv and ru; every message
must differ from the English one (it was translated), and a field shows one message for
one mistake."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict

from idp.accounts import forms as accounts
from idp.consent.forms import ConsentForm
from idp.delegation import forms as delegation
from idp.oidc.forms import SelectCustomerForm
from tests.conftest import csrf_token

FORMS: list[type[FlaskForm]] = [
    accounts.LoginForm,
    accounts.RegistrationForm,
    accounts.ForgotPasswordForm,
    accounts.NewPasswordForm,
    accounts.ConfirmForm,
    accounts.UpstreamStartForm,
    accounts.UpstreamRegistrationForm,
    accounts.ContactForm,
    accounts.ResendConfirmationForm,
    accounts.InvitationStartForm,
    accounts.InvitationPasswordForm,
    delegation.AddUserForm,
    delegation.RightsForm,
    SelectCustomerForm,
    ConsentForm,
]
LONG = "x" * 2000
# Each payload goes to every form; a form ignores the fields it does not have.
PAYLOADS: dict[str, dict[str, Any]] = {
    "empty": {},
    "too long": {
        name: LONG
        for name in (
            "email",
            "password",
            "password_confirm",
            "customer_number",
            "identifier",
            "name",
            "phone",
            "personal_code",
            "provider",
            "interaction",
        )
    },
    "bad values": {
        "email": "not an address",
        "password": "one password",
        "password_confirm": "another password",
        "personal_code": "12345",
        "rights": ["nonsense"],
        "customer": "abc",
    },
    "wrong choices": {
        "email": "name@exa mple.lv",
        "personal_code": "40003000000",  # a company's registration number
        "rights": ["invoices.read", "users.manage"],
        "customer": "999",
    },
    "no such code": {"personal_code": "010190-10009"},
}
# What WTForms and Flask-WTF say in English when a validator has no message of its own.
WTFORMS_ENGLISH = (
    "This field is required",
    "Field must be",
    "Field cannot be",
    "Not a valid",
    "Invalid",
    "invalid",
    "CSRF",
    "could not coerce",
    "Choices cannot",
)
# The same in a whole page, whose HTML says aria-invalid="true" of a refused field.
PAGE_ENGLISH = tuple(text for text in WTFORMS_ENGLISH if text.lower() != "invalid") + (
    "Invalid Choice",
    "Invalid choice",
)


def _errors(app: Flask, form_class: type[FlaskForm], data: dict[str, Any], language: str) -> Any:
    with app.test_request_context(
        "/", method="POST", data=MultiDict(data), headers={"Accept-Language": language}
    ):
        form = form_class(meta={"csrf": False})
        if isinstance(form, SelectCustomerForm):
            form.customer.choices = [(1, "Jānis Bērziņš"), (2, "SIA Gāze")]
        form.validate()
        return {name: [str(e) for e in errors] for name, errors in form.errors.items()}


@pytest.mark.parametrize("payload", PAYLOADS, ids=str)
@pytest.mark.parametrize("form_class", FORMS, ids=lambda f: f.__name__)
def test_no_form_falls_back_to_english_and_each_mistake_gets_one_message(
    app: Flask, form_class: type[FlaskForm], payload: str
) -> None:
    english = _errors(app, form_class, PAYLOADS[payload], "en")
    for language in ("lv", "ru"):
        errors = _errors(app, form_class, PAYLOADS[payload], language)
        assert errors.keys() == english.keys()
        for field, messages in errors.items():
            assert len(messages) == 1, f"{field}: {messages}"
            (message,) = messages
            assert not any(text in message for text in WTFORMS_ENGLISH), (field, message)
            assert message != english[field][0], f"{language} {field}: untranslated {message!r}"


def test_every_form_with_a_field_refuses_the_empty_form(app: Flask) -> None:
    refused = {f.__name__ for f in FORMS if _errors(app, f, {}, "lv")}
    assert refused == {f.__name__ for f in FORMS} - {"ConfirmForm", "ConsentForm"}


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("lv", ("Ievadiet e-pasta adresi.", "Ievadiet klienta numuru vai līguma numuru.")),
        ("ru", ("Введите адрес электронной почты.", "Введите номер клиента или номер договора.")),
    ],
)
def test_the_registration_page_says_what_to_fill_in(
    client: FlaskClient, language: str, expected: tuple[str, ...]
) -> None:
    headers = {"Accept-Language": language}
    page = client.get("/register", headers=headers).get_data(as_text=True)
    answer = client.post(
        "/register",
        data={"csrf_token": csrf_token(page), "email": "", "customer_number": ""},
        headers=headers,
    )
    text = answer.get_data(as_text=True)
    assert answer.status_code in (200, 400)
    for message in expected:
        assert message in text
    assert not any(english in text for english in PAGE_ENGLISH)


@pytest.mark.parametrize(
    ("language", "title"),
    [("lv", "Veidlapas derīguma laiks ir beidzies"), ("ru", "Срок действия формы истёк")],
)
@pytest.mark.parametrize("token", ["", "not-a-token"], ids=["missing", "wrong"])
def test_a_refused_csrf_token_shows_a_translated_page(
    client: FlaskClient, language: str, title: str, token: str
) -> None:
    answer = client.post(
        "/login",
        data={"csrf_token": token, "email": "a@example.lv", "password": "x"},
        headers={"Accept-Language": language},
    )
    text = answer.get_data(as_text=True)
    assert answer.status_code == 400
    assert title in text
    assert not any(english in text for english in PAGE_ENGLISH)
