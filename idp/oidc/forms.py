"""Forms of the authorization flow's own pages (CSRF-protected)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, RadioField, SubmitField
from wtforms.validators import InputRequired


class SelectCustomerForm(FlaskForm):
    interaction = HiddenField()
    # Choices are the person's current memberships, set by the view for every request.
    customer = RadioField(  # type: ignore[call-arg]  # types-WTForms predates these messages
        _l("Act for"),
        coerce=int,
        choices=[],
        validators=[InputRequired(_l("Choose a customer."))],
        # A value that is not one of the person's customers (an old or altered page).
        invalid_value_message=_l("Choose one of the customers listed."),
        invalid_choice_message=_l("Choose one of the customers listed."),
    )
    submit = SubmitField(_l("Continue"))
