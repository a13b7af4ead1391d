"""Forms of "My account" (Flask-WTF: every form carries a CSRF token). The fields and
their messages are those of the registration pages (idp/accounts/forms.py): one rule for
an address, a phone number, a name and a new password."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired

from idp.accounts.forms import (
    CHOOSE_PROVIDER,
    AtMost,
    email_field,
    hidden_at_most,
    new_password_fields,
    phone_field,
)


class ProfileForm(FlaskForm):
    name = StringField(
        _l("Your name"),
        validators=[DataRequired(message=_l("Enter your name.")), AtMost(255)],
        render_kw={"autocomplete": "name"},
    )
    phone = phone_field()


class EmailChangeForm(FlaskForm):
    email = email_field("email")


def _current_password() -> PasswordField:
    return PasswordField(
        _l("Current password"),
        validators=[DataRequired(message=_l("Enter your current password.")), AtMost(1024)],
        render_kw={"autocomplete": "current-password"},
    )


class PasswordChangeForm(FlaskForm):
    current = _current_password()
    password, password_confirm = new_password_fields()


class PasswordSetForm(FlaskForm):
    password, password_confirm = new_password_fields()


class ConfirmPasswordForm(FlaskForm):
    """ "Confirm it is you" with the password; `next` is the page that asked."""

    password = _current_password()
    next = HiddenField(validators=[hidden_at_most(2048)])


class UpstreamButtonForm(FlaskForm):
    """A bank or eSignature button of "My account" (each button posts its provider)."""

    provider = HiddenField(validators=[DataRequired(message=CHOOSE_PROVIDER), hidden_at_most(32)])
    next = HiddenField(validators=[hidden_at_most(2048)])
