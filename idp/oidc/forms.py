"""Forms of the authorization flow's own pages (CSRF-protected)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, RadioField, SubmitField
from wtforms.validators import InputRequired


class SelectCustomerForm(FlaskForm):
    interaction = HiddenField()
    # Choices are the person's current memberships, set by the view for every request.
    customer = RadioField(
        _l("Act for"), coerce=int, choices=[], validators=[InputRequired(_l("Choose a customer."))]
    )
    submit = SubmitField(_l("Continue"))
