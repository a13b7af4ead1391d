"""The login page. Thin: parse the form, call one service, render or redirect."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for
from flask_babel import gettext as _

from idp.accounts import cookies
from idp.accounts.forms import LoginForm
from idp.accounts.services import (
    PASSWORD_ACR,
    PASSWORD_AMR,
    authenticate_password,
    end_browser_session,
    start_browser_session,
)
from idp.db import db_session
from idp.models import BrowserSession, Interaction
from idp.oidc.authorize import interaction_params, load_interaction, may_continue_as
from idp.oidc.clients import find_client

bp = Blueprint("accounts", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str:
    session = db_session()
    settings = current_app.config["IDP_SETTINGS"]
    form = LoginForm()
    interaction_id = request.values.get("interaction", "")
    interaction = load_interaction(session, interaction_id)
    params = interaction_params(interaction) if interaction else None
    if request.method == "GET":
        form.interaction.data = interaction_id if interaction else ""
        if params and params.get("login_hint"):
            form.email.data = params.get("login_hint", "")[:320]

    error = None
    status = 200
    browser = cookies.current_browser_session()
    continue_as = browser.user if params and may_continue_as(browser, params) else None
    if continue_as is not None and request.method == "POST" and "continue" in request.form:
        return _continue_session(form, interaction, browser)
    if form.validate_on_submit():
        result = authenticate_password(
            session, settings, current_app.extensions["idp.passwords"],
            form.email.data or "", form.password.data or "", request.remote_addr or "unknown",
        )
        if result.user is not None:
            end_browser_session(session, request.cookies.get(cookies.cookie_name()))
            cookie_value, browser = start_browser_session(
                session, settings, result.user, PASSWORD_ACR, PASSWORD_AMR
            )
            if interaction is not None:
                interaction.login_sid = browser.sid
            session.commit()
            target = (url_for("oidc.resume", interaction=interaction.id) if interaction
                      else url_for("accounts.signed_in"))
            response = redirect(target, 302)
            cookies.set_session_cookie(response, cookie_value)
            return response
        session.commit()
        status = 429 if result.retry_after else 401
        if result.retry_after:
            error = _("Too many failed attempts. Wait %(seconds)s seconds and try again, or "
                      "reset your password.", seconds=result.retry_after)
        else:
            error = _("The e-mail or password is not right. Check them and try again.")
    elif request.method == "POST":
        status = 400
        error = _("Fill in both your e-mail and your password. If the page was open for a "
                  "long time, reload it and try again.")
    client_name = None
    if params is not None:
        client = find_client(session, params.get("client_id"))
        client_name = client.name if client else None
    body = render_template("accounts/login.html", form=form, error=error,
                           client_name=client_name, continue_as=continue_as)
    return Response(body, status=status, mimetype="text/html")


def _continue_session(form: LoginForm, interaction: Interaction | None,
                      browser: BrowserSession | None) -> Response:
    """prompt=select_account: the person chose the account they are logged in with.
    (The CSRF token was checked by CSRFProtect before the view ran.)"""
    if interaction is None or browser is None:
        return redirect(url_for("accounts.login", interaction=form.interaction.data or ""))
    interaction.login_sid = browser.sid
    db_session().commit()
    return redirect(url_for("oidc.resume", interaction=interaction.id), 302)


@bp.get("/")
def signed_in() -> str:
    browser = cookies.current_browser_session()
    return render_template("accounts/home.html", user=browser.user if browser else None)
