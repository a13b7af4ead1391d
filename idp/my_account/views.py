"""My account: the profile, the e-mail address, the password and the ways to log in
(issue 15). Thin: the rules are in idp/my_account/services.py."""

from __future__ import annotations

from flask import Blueprint, Response

from idp.my_account import guard
from idp.web import html_page

bp = Blueprint("account", __name__, url_prefix="/account")
bp.before_request(guard.require_login)


@bp.get("")
def profile() -> Response:
    return html_page("my_account/profile.html", user=guard.person())
