"""My account: "Sessions" (where the person is logged in, logging other browsers out) and
"Apps with access" (remembered consents, withdrawing one). Thin: the rules are in
idp/my_account/sessions.py and idp/my_account/apps.py."""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from werkzeug.wrappers import Response as BaseResponse

from idp import access_history
from idp.accounts.forms import ConfirmForm
from idp.db import db_session, utcnow
from idp.my_account import apps as app_services
from idp.my_account import guard
from idp.my_account import sessions as services
from idp.web import html_page

bp = Blueprint("account_sessions", __name__, url_prefix="/account")
bp.before_request(guard.require_login)

# --- sessions ---------------------------------------------------------------------------------


@bp.get("/sessions")
def sessions() -> Response:
    browser = guard.this_browser()
    found = services.live_sessions(db_session(), browser.user_id, browser.sid, utcnow())
    return html_page(
        "my_account/sessions.html", sessions=found, method_label=access_history.method_label
    )


@bp.post("/sessions/<sid>/end")
def end_session(sid: str) -> BaseResponse:
    browser = guard.this_browser()
    db = db_session()
    ended = services.end_session(db, browser.user_id, sid, browser.sid, guard.origin())
    if ended is None:
        abort(404)
    db.commit()
    flash(_("%(device)s is logged out.", device=ended.device.label()))
    return redirect(url_for(".sessions"), 303)


@bp.post("/sessions/end-others")
def end_other_sessions() -> BaseResponse:
    browser = guard.this_browser()
    db = db_session()
    count = services.end_other_sessions(db, browser.user_id, browser.sid, guard.origin(), utcnow())
    db.commit()
    if count:
        flash(
            ngettext(
                "%(num)s other browser is logged out.",
                "%(num)s other browsers are logged out.",
                count,
            )
        )
    else:
        flash(_("You are not logged in anywhere else."))
    return redirect(url_for(".sessions"), 303)


# --- apps with access ------------------------------------------------------------------------


@bp.get("/apps")
def apps() -> Response:
    found = app_services.apps_with_access(db_session(), guard.person().id)
    return html_page("my_account/apps.html", apps=found)


@bp.route("/apps/<int:grant_id>/withdraw", methods=["GET", "POST"])
def withdraw(grant_id: int) -> BaseResponse:
    """GET asks "withdraw?" (a page that works without JavaScript); POST withdraws."""
    db = db_session()
    person = guard.person()
    access = app_services.app_access(db, person.id, grant_id)
    if access is None:
        abort(404)
    form = ConfirmForm()
    if form.validate_on_submit():
        app_services.withdraw(db, person.id, access, guard.origin())
        db.commit()
        flash(
            _(
                "%(app)s no longer has access. If you use it again, it will ask for your "
                "permission first.",
                app=access.client.name,
            )
        )
        return redirect(url_for(".apps"), 303)
    return html_page("my_account/withdraw.html", access=access, form=form)
