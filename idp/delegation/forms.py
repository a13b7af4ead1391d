"""Forms of the USERS section (Flask-WTF: every form carries a CSRF token)."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (  # type: ignore[attr-defined]  # types-WTForms predates SelectChoice (3.3)
    EmailField,
    SelectChoice,
    SelectMultipleField,
    StringField,
)
from wtforms.validators import DataRequired, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from idp.accounts.forms import AtMost, usable_email
from idp.identifiers import InvalidPersonalCode, normalize_personal_code
from idp.memberships.labels import RIGHT_LABELS
from idp.memberships.rights import GRANTABLE_TO_ADDITIONAL_USERS, Right

# The check-boxes, in a fixed order (an enumeration of rights, not loose strings).
_GRANTABLE = [r for r in Right if r in GRANTABLE_TO_ADDITIONAL_USERS]
_ONLY_LISTED_RIGHTS = _l("Tick only the rights listed on the page.")


class _RightsField(SelectMultipleField):
    """The rights an additional user may hold, as check-boxes; at least one."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(  # type: ignore[call-arg]  # types-WTForms predates these messages
            _l("Rights"),
            choices=[SelectChoice(r.value, RIGHT_LABELS[r]) for r in _GRANTABLE],
            invalid_value_message=_ONLY_LISTED_RIGHTS,
            invalid_choice_message=_ONLY_LISTED_RIGHTS,
            **kwargs,
        )

    def pre_validate(self, form: Any) -> None:
        # Not DataRequired: that would mark every check-box `required` (all of them ticked).
        # SelectMultipleField's own message names the value; this one says what to do.
        if not self.data:
            raise ValidationError(
                _l("Tick at least one right: view invoices, report meter readings or both.")
            )
        known = {r.value for r in _GRANTABLE}
        if any(value not in known for value in self.data):
            raise ValidationError(_ONLY_LISTED_RIGHTS)


class AddUserForm(FlaskForm):
    name = StringField(
        _l("Name"),
        validators=[DataRequired(message=_l("Type the person's name.")), AtMost(255)],
        description=_l("The person's first and last name."),
    )
    email = EmailField(
        _l("E-mail"),
        validators=[
            DataRequired(message=_l("Type the person's e-mail address.")),
            AtMost(320),
            usable_email,
        ],
        description=_l("The invitation with the activation link goes here."),
    )
    personal_code = StringField(
        _l("Personal code (optional)"),
        validators=[Optional(), AtMost(32)],
        description=_l(
            "For example 010190-10001. If you fill it in, the person's bank or "
            "eSignature login must prove this very personal code before they can "
            "act for you."
        ),
    )
    rights = _RightsField()

    def validate_personal_code(self, field: StringField) -> None:
        try:
            normalize_personal_code(field.data or "")
        except InvalidPersonalCode as exc:
            raise ValidationError(
                _l(
                    "This is not a valid personal code. %(reason)s Check "
                    "it, or leave the field empty.",
                    reason=exc.message,
                )
            ) from None


class RightsForm(FlaskForm):
    rights = _RightsField()
