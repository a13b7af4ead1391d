"""The consent form: Allow or Cancel (CSRF-protected; Cancel is the `deny` button, which
returns access_denied to the application)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, SubmitField


class ConsentForm(FlaskForm):
    interaction = HiddenField()
    allow = SubmitField(_l("Allow"))
    deny = SubmitField(_l("Cancel"))
