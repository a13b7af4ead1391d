"""The form pages after the GOV.UK design system's form and error patterns (issue 14):
an error summary at the top that links to each field and takes the focus, one message per
field, aria-invalid/aria-describedby (the login form too), a show-password toggle that
static/forms.js adds from data- attributes, a "Check your mailbox" page with the address,
"send again" (at most one mail a minute) and "use another address", and phone numbers
checked by the customer import's own rule.

Every page of the every-language walk is read here too: wherever a form has errors, its
markup must follow these rules."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import pytest
from flask import Flask, render_template_string
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from idp.accounts.forms import (
    CHOOSE_PROVIDER,
    ContactForm,
    InvitationStartForm,
    UpstreamRegistrationForm,
)
from idp.customers import rows
from idp.identifiers import InvalidIdentifier, normalize_phone
from idp.models import Customer, OutboxMail, User
from tests.conftest import Browser, csrf_token
from tests.integration import test_every_language as every_language

EMAIL = "janis.berzins@example.lv"


@dataclass
class FormMarkup:
    """What a page's forms say to assistive technology."""

    ids: set[str] = field(default_factory=set)
    inputs: dict[str, dict[str, str]] = field(default_factory=dict)
    # id of each field's message element -> how many such elements carry that id.
    messages: dict[str, int] = field(default_factory=dict)
    summary: dict[str, str] | None = None
    summary_links: list[str] = field(default_factory=list)
    summary_items: int = 0
    scripts: list[str] = field(default_factory=list)


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found = FormMarkup()
        self._in_summary = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.found.ids.add(a["id"])
        if tag in ("input", "select", "textarea") and a.get("id"):
            self.found.inputs[a["id"]] = a
        if "field-error" in a.get("class", "").split():
            self.found.messages[a.get("id", "")] = self.found.messages.get(a.get("id", ""), 0) + 1
        if tag == "script":
            self.found.scripts.append(a.get("src", "INLINE"))
        if "error-summary" in a.get("class", "").split():
            self.found.summary = a
            self._in_summary = 1
        elif self._in_summary and tag not in every_language.VOID_ELEMENTS:
            self._in_summary += 1
            if tag == "li":
                self.found.summary_items += 1
            if tag == "a":
                self.found.summary_links.append(a.get("href", ""))

    def handle_endtag(self, tag: str) -> None:
        if self._in_summary:
            self._in_summary -= 1


def read(html: str) -> FormMarkup:
    reader = _Reader()
    reader.feed(html)
    return reader.found


def assert_form_patterns(html: str, where: str = "") -> FormMarkup:
    """The rules every form page keeps, with or without errors."""
    page = read(html)
    assert "INLINE" not in page.scripts, where
    for message_id, count in page.messages.items():
        assert message_id.endswith("-errors"), (where, message_id)
        assert count == 1, f"{where}: two messages for one field ({message_id})"
    for input_id, attrs in page.inputs.items():
        if attrs.get("aria-invalid") == "true":
            assert f"{input_id}-errors" in attrs.get("aria-describedby", "").split() or (
                attrs.get("type") in ("checkbox", "radio")
            ), (where, input_id)
        if attrs.get("type") == "password":
            assert attrs.get("data-show-password") and attrs.get("data-hide-password"), (
                where,
                input_id,
            )
    if page.messages:
        assert page.summary is not None, f"{where}: field messages but no error summary"
    if page.summary is not None:
        assert page.summary.get("role") == "alert", where
        assert page.summary.get("tabindex") == "-1" and "autofocus" in page.summary, where
        assert page.summary.get("aria-labelledby") in page.ids, where
        for href in page.summary_links:
            assert href.startswith("#") and href[1:] in page.ids, f"{where}: {href} leads nowhere"
        # Each field message has its link in the summary.
        for message_id in page.messages:
            target = message_id.removesuffix("-errors")
            assert f"#{target}" in page.summary_links or f"#{target}-0" in page.summary_links, (
                where,
                target,
            )
    return page


def _post(client: FlaskClient, path: str, **data: str) -> Any:
    page = client.get(path)
    return client.post(path, data={"csrf_token": csrf_token(page.get_data(as_text=True)), **data})


# --- the whole walk ---------------------------------------------------------------------------


class _CheckingWalk(every_language.Walk):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.summaries = 0

    def saw(self, name: str, response: Any, person: Any) -> Any:
        response = super().saw(name, response, person)
        if response.mimetype == "text/html":
            page = assert_form_patterns(response.get_data(as_text=True), name)
            self.summaries += page.summary is not None
        return response


def test_every_page_of_the_walk_keeps_the_form_patterns(
    demo: Flask, db: Session, mailbox: Any
) -> None:
    walk = _CheckingWalk(demo, db, mailbox, "lv")
    every_language._walk_without_an_account(walk)
    every_language._walk_a_bank_registration(walk)
    janis = every_language._walk_the_contractor(walk)
    every_language._walk_invitations(walk, janis)
    every_language._walk_the_users_section(walk, janis)
    assert walk.summaries >= 5


# --- the summary and one message per field -----------------------------------------------------


def test_the_empty_login_form_gets_a_focused_summary_linked_to_both_fields(
    client: FlaskClient, user: User
) -> None:
    response = _post(client, "/login")
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    page = assert_form_patterns(html, "login")
    assert page.summary_links == ["#email", "#password"]
    assert page.summary_items == 2  # no form-level message beside the fields' own
    for name in ("email", "password"):
        attrs = page.inputs[name]
        assert attrs["aria-invalid"] == "true"
        assert attrs["aria-describedby"] == f"{name}-errors"
    assert "Enter your e-mail address." in html and "Enter your password." in html
    assert "There is a problem" in html


def test_a_wrong_password_is_a_form_message_in_the_summary(client: FlaskClient, user: User) -> None:
    response = _post(client, "/login", email=EMAIL, password="not the password")
    page = assert_form_patterns(response.get_data(as_text=True), "login")
    assert page.summary is not None and page.summary_items == 1 and not page.summary_links
    assert "The e-mail or password is not right" in response.get_data(as_text=True)
    # The fields themselves were filled in: neither is marked.
    assert "aria-invalid" not in page.inputs["email"]


def test_the_summary_is_translated(client: FlaskClient, user: User) -> None:
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "lv"
    html = _post(client, "/login").get_data(as_text=True)
    assert "Radusies problēma" in html and "There is a problem" not in html


@pytest.mark.parametrize(
    ("path", "data", "fields"),
    [
        ("/register", {}, ["customer_number", "identifier", "email", "password"]),
        (
            "/register",
            {
                "customer_number": "x" * 40,
                "identifier": "1",
                "email": "not an address",
                "password": "short",
                "password_confirm": "other",
            },
            ["customer_number", "email", "password", "password_confirm"],
        ),
        ("/forgot-password", {}, ["email"]),
        ("/forgot-password", {"email": "a@b@c"}, ["email"]),
    ],
)
def test_each_field_gets_one_message_and_one_link(
    client: FlaskClient, path: str, data: dict[str, str], fields: list[str]
) -> None:
    response = _post(client, path, **data)
    assert response.status_code == 400
    page = assert_form_patterns(response.get_data(as_text=True), path)
    for name in fields:
        assert f"#{name}" in page.summary_links, name
        assert page.messages[f"{name}-errors"] == 1
    assert "This field is required" not in response.get_data(as_text=True)


def test_a_short_password_that_differs_gets_one_message_per_field(client: FlaskClient) -> None:
    # Too short and different: the password field's rule and the confirmation's, once each.
    response = _post(client, "/register", password="short", password_confirm="other")
    html = response.get_data(as_text=True)
    page = assert_form_patterns(html)
    assert page.messages["password-errors"] == 1
    block = re.search(r'id="password-errors" class="field-error">(.*?)</p>', html, re.S)
    assert block and block.group(1).strip()


# --- check boxes and the toggle ----------------------------------------------------------------


def test_a_check_box_comes_before_its_label(
    client: FlaskClient, user: User, browser: Browser
) -> None:
    browser.login()
    html = client.get("/contact").get_data(as_text=True)
    assert re.search(r'<div class="field choice">\s*<input[^>]*id="correct"[^>]*>\s*<label', html)


def test_password_fields_carry_the_toggle_texts_and_work_without_script(
    client: FlaskClient,
) -> None:
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "ru"
    html = client.get("/login").get_data(as_text=True)
    page = read(html)
    attrs = page.inputs["password"]
    # Without the script it is a plain password field; the script only reads these.
    assert attrs["type"] == "password"
    assert attrs["data-show-password"] == "Показать пароль"
    assert attrs["data-hide-password"] == "Скрыть пароль"
    assert "/static/forms.js" in page.scripts[0]
    script = client.get("/static/forms.js").get_data(as_text=True)
    assert "aria-pressed" in script and "data-show-password" in script
    # The script has no words of its own: every text comes from the page.
    assert "Show password" not in script and "Hide" not in script


# --- check your mailbox -----------------------------------------------------------------------


def _hidden(html: str, form_action: str) -> list[dict[str, str]]:
    """The hidden fields of each form of the page posting to `form_action`."""
    forms = re.findall(
        rf'<form method="post" action="{re.escape(form_action)}"[^>]*>(.*?)</form>', html, re.S
    )
    return [dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', f)) for f in forms]


def test_the_reset_mail_page_shows_the_address_and_its_two_actions(
    client: FlaskClient, db: Session, user: User, mailbox: Any
) -> None:
    response = _post(client, "/forgot-password", email=EMAIL)
    html = response.get_data(as_text=True)
    assert f"The address you gave: {EMAIL}" in html
    again, change = _hidden(html, "/forgot-password")
    assert again["email"] == EMAIL and "change" not in again
    assert change["email"] == EMAIL and change["change"] == "1"
    assert "Send the message again" in html and "Use another address" in html
    mailbox.wait_for(user.email_display)
    # "Use another address": the form again, filled in, nothing sent.
    form = client.post("/forgot-password", data=change)
    assert form.status_code == 200
    page = read(form.get_data(as_text=True))
    assert page.inputs["email"]["value"] == EMAIL and page.summary is None
    # "Send again" within the minute: the same page, no second mail.
    again_page = client.post("/forgot-password", data=again)
    assert again_page.status_code == 200
    assert f"The address you gave: {EMAIL}" in again_page.get_data(as_text=True)
    assert db.scalar(select(func.count()).select_from(OutboxMail)) == 1


def test_the_registration_mail_page_resends_and_goes_back_filled_in(
    client: FlaskClient, db: Session, customer: Customer, mailbox: Any
) -> None:
    data = {
        "customer_number": customer.number,
        "identifier": customer.personal_code or "",
        "email": "new.person@example.lv",
        "password": "a long and unrelated pass phrase",
        "password_confirm": "a long and unrelated pass phrase",
        "interaction": "",
    }
    response = _post(client, "/register", **data)
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html
    assert "The address you gave: new.person@example.lv" in html
    (again,) = _hidden(html, "/register/resend")
    assert again["email"] == "new.person@example.lv"
    (change,) = _hidden(html, "/register")
    assert change["change"] == "1" and change["customer_number"] == customer.number
    assert "password" not in change  # never carried in a page
    mailbox.wait_for("new.person@example.lv")
    form = client.post("/register", data=change)
    page = read(form.get_data(as_text=True))
    assert form.status_code == 200 and page.summary is None
    assert page.inputs["email"]["value"] == "new.person@example.lv"
    assert page.inputs["identifier"]["value"] == customer.personal_code
    assert page.inputs["password"].get("value", "") == ""
    # Sent again at once: the at-most-one-a-minute rule of the confirmation mail holds.
    assert client.post("/register/resend", data=again).status_code == 200
    assert db.scalar(select(func.count()).select_from(OutboxMail)) == 1


def test_the_reset_pages_look_the_same_for_an_unknown_address(
    client: FlaskClient, user: User
) -> None:
    def page(email: str) -> str:
        html = _post(client, "/forgot-password", email=email).get_data(as_text=True)
        return re.sub(r'name="csrf_token" value="[^"]*"', "", html.replace(email, "ADDRESS"))

    assert page(EMAIL) == page("nobody.here@example.lv")


# --- phone numbers: the customer import's rule --------------------------------------------------

PHONES = ["+371 2000 0000", "+371-20000000", "(+371) 20000000", "20000000", "+0 123", "abc", "+3"]


@pytest.mark.parametrize("form_class", [ContactForm, UpstreamRegistrationForm])
def test_the_forms_check_phone_numbers_as_the_import_does(
    app: Flask, form_class: type[Any]
) -> None:
    assert rows.normalize_phone is normalize_phone  # the import's rule is this one function
    for value in PHONES:
        try:
            expected: str | None = normalize_phone(value)
        except InvalidIdentifier:
            expected = None
        with app.test_request_context(
            method="POST", data={"email": "a@example.lv", "phone": value, "correct": "y"}
        ):
            form = form_class(meta={"csrf": False})
            form.validate()
            if expected is None:
                assert form.phone.errors == [
                    "Write the phone number in the international format, e.g. +371 20000000."
                ], value
            else:
                assert not form.phone.errors, value
                assert form.phone.data == expected


def test_the_contact_form_stores_the_compact_number(
    client: FlaskClient, db: Session, user: User, browser: Browser
) -> None:
    user_id, email = user.id, user.email_display
    db.commit()
    browser.login()
    bad = _post(client, "/contact", email=email, phone="2612", correct="y")
    page = assert_form_patterns(bad.get_data(as_text=True), "contact")
    assert page.summary_links == ["#phone"]
    response = _post(client, "/contact", email=email, phone="+371 2612 3456", correct="y")
    assert response.status_code in (302, 303), response.get_data(as_text=True)
    db.expire_all()
    assert db.get(User, user_id).phone == "+37126123456"  # type: ignore[union-attr]


def test_a_form_message_that_repeats_a_hidden_fields_is_listed_once(app: Flask) -> None:
    with app.test_request_context(method="POST", data={}):
        form = InvitationStartForm(meta={"csrf": False})
        assert not form.validate()
        html = render_template_string(
            '{% from "_forms.html" import error_summary %}{{ error_summary([form], [message]) }}',
            form=form,
            message=str(CHOOSE_PROVIDER),
        )
    page = read(html)
    assert page.summary is not None and page.summary_items == 1 and not page.summary_links
