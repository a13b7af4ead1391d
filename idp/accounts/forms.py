"""Forms of the account pages (Flask-WTF: every form carries a CSRF token)."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from flask_babel import lazy_ngettext
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, HiddenField, PasswordField, StringField
from wtforms.validators import (
    DataRequired,
    EqualTo,
    Length,
    Optional,
    StopValidation,
    ValidationError,
)

from idp.email_address import is_usable
from idp.identifiers import InvalidIdentifier, normalize_phone

# WTForms has no Latvian catalogue: every validator of every form carries its own message,
# in words that say what to do, so none falls back to WTForms' English.


class AtMost(Length):
    """Length(max=count) that says, in the page's language, how much may be typed; and
    stops there, so an overlong value gets one message, not a format one as well."""

    def __init__(self, count: int) -> None:
        super().__init__(
            max=count,
            message=lazy_ngettext(
                "Enter at most %(num)d character.", "Enter at most %(num)d characters.", count
            ),
        )

    def __call__(self, form: Any, field: Any) -> None:
        try:
            super().__call__(form, field)
        except ValidationError as exc:
            raise StopValidation(exc.args[0]) from None


# A hidden field's value comes from the page itself: a wrong one means the page was old or
# altered, which the person can only put right by loading it again.
ALTERED_PAGE = _l("This page is out of date. Reload it and try again.")


def hidden_required() -> DataRequired:
    return DataRequired(message=ALTERED_PAGE)


def hidden_at_most(count: int) -> Length:
    return Length(max=count, message=ALTERED_PAGE)


# The bank and eSignature buttons each post their provider's name.
CHOOSE_PROVIDER = _l("Choose your internet bank or eSignature with one of the buttons.")

# The message of every form that refuses an address by the one rule (idp.email_address).
NOT_AN_ADDRESS = _l(
    "This is not an e-mail address. Check it, e.g. name@example.lv: no "
    "spaces, quotes or brackets, and only letters, digits and hyphens "
    "between the dots after the @."
)


def usable_email(_form: object, field: EmailField) -> None:
    """The one address rule as a form validator (an empty field is DataRequired's)."""
    if field.data and not is_usable(field.data):
        raise ValidationError(NOT_AN_ADDRESS)


def phone_number(_form: object, field: StringField) -> None:
    """The customer import's phone rule (idp.identifiers.normalize_phone) as a form
    validator: the number is kept in the same compact international form."""
    if not (field.data or "").strip():
        field.data = ""
        return
    try:
        field.data = normalize_phone(field.data or "")
    except InvalidIdentifier as exc:
        raise ValidationError(exc.message) from None


def phone_field() -> StringField:
    return StringField(
        _l("Phone (optional)"),
        validators=[Optional(), AtMost(32), phone_number],
        description=_l("For example +371 2000 0000."),
        render_kw={"autocomplete": "tel"},
    )


def email_field(autocomplete: str) -> EmailField:
    return EmailField(
        _l("E-mail"),
        validators=[
            DataRequired(message=_l("Enter your e-mail address.")),
            AtMost(320),
            usable_email,
        ],
        render_kw={"autocomplete": autocomplete},
    )


class LoginForm(FlaskForm):
    email = EmailField(
        _l("E-mail"),
        validators=[DataRequired(message=_l("Enter your e-mail address.")), AtMost(320)],
        render_kw={"autocomplete": "username"},
    )
    password = PasswordField(
        _l("Password"),
        validators=[DataRequired(message=_l("Enter your password.")), AtMost(1024)],
        render_kw={"autocomplete": "current-password"},
    )
    interaction = HiddenField()


def new_password_fields() -> tuple[PasswordField, PasswordField]:
    password = PasswordField(
        _l("New password"),
        validators=[DataRequired(message=_l("Enter a new password.")), AtMost(1024)],
        description=_l(
            "At least 12 characters. A few unrelated words are easy to remember and hard to guess."
        ),
        render_kw={"autocomplete": "new-password"},
    )
    confirm = PasswordField(
        _l("New password again"),
        validators=[
            DataRequired(message=_l("Enter the new password once more.")),
            EqualTo(
                "password",
                message=_l("The two passwords are not the same. Type the same password twice."),
            ),
        ],
        render_kw={"autocomplete": "new-password"},
    )
    return password, confirm


class RegistrationForm(FlaskForm):
    customer_number = StringField(
        _l("Customer number or contract number"),
        validators=[
            DataRequired(message=_l("Enter your customer number or contract number.")),
            AtMost(32),
        ],
        description=_l("You find it on your invoice."),
    )
    identifier = StringField(
        _l("Personal code"),
        validators=[
            DataRequired(
                message=_l("Enter your personal code (for a company: its registration number).")
            ),
            AtMost(32),
        ],
        description=_l("For a company: its registration number."),
    )
    name = StringField(
        _l("Your name"),
        validators=[Optional(), AtMost(255)],
        description=_l("Needed only when you register for a company."),
        render_kw={"autocomplete": "name"},
    )
    email = email_field("email")
    password, password_confirm = new_password_fields()
    interaction = HiddenField()


class ForgotPasswordForm(FlaskForm):
    email = email_field("username")
    # The paused sign-in, carried into the reset link (back to the application after it).
    interaction = HiddenField(validators=[hidden_at_most(64)])


class NewPasswordForm(FlaskForm):
    password, password_confirm = new_password_fields()


class ConfirmForm(FlaskForm):
    """Only a button (and the CSRF token): opening a link never uses it up by itself."""


class UpstreamStartForm(FlaskForm):
    """A bank or eSignature button of the login page."""

    provider = HiddenField(validators=[DataRequired(message=CHOOSE_PROVIDER), hidden_at_most(32)])
    interaction = HiddenField(validators=[hidden_at_most(64)])


class UpstreamRegistrationForm(FlaskForm):
    email = email_field("email")
    phone = phone_field()


class ContactForm(FlaskForm):
    email = email_field("email")
    phone = phone_field()
    correct = BooleanField(
        _l("These are my current contact details"),
        validators=[
            DataRequired(message=_l("Tick the box to confirm that the details are right."))
        ],
    )
    interaction = HiddenField()


class ResendConfirmationForm(FlaskForm):
    """ "Send the link again" after the right password of an unconfirmed account."""

    email = HiddenField(validators=[hidden_required(), hidden_at_most(320)])
    interaction = HiddenField(validators=[hidden_at_most(64)])


class InvitationStartForm(FlaskForm):
    """An invited person who already has an account: only the bank/eSignature buttons
    (each button posts its provider's name)."""

    provider = HiddenField(validators=[DataRequired(message=CHOOSE_PROVIDER), hidden_at_most(32)])


class InvitationPasswordForm(NewPasswordForm):
    """An invited person without an account: the password typed twice, then a button."""

    provider = HiddenField(validators=[DataRequired(message=CHOOSE_PROVIDER), hidden_at_most(32)])
