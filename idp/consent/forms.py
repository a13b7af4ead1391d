"""The consent form: Allow or Deny (CSRF-protected)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, SubmitField


class ConsentForm(FlaskForm):
    interaction = HiddenField()
    allow = SubmitField(_l("Allow"))
    deny = SubmitField(_l("Deny"))
