"""My account: the profile, the e-mail address, the password, the ways to log in and
"confirm it is you" (issue 15). Thin: the rules are in idp/my_account/services.py and,
for bank logins, idp/accounts/upstream.py.

A change of e-mail, setting a first password and the data download need a recent login
(guard.login_is_recent); changing a password asks for the current one instead, which
proves as much.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, flash, redirect, request, url_for
from flask import session as flask_session
from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse

from idp.accounts import cookies, upstream
from idp.accounts.forms import ConfirmForm
from idp.accounts.links import PATHS, Purpose
from idp.accounts.password_policy import password_problems
from idp.accounts.services import authenticate_password, reconfirm_browser_session
from idp.accounts.upstream_views import ACCOUNT_RETURN_KEY, connector_named, unavailable_page
from idp.accounts.views import link_invalid_page
from idp.db import db_session
from idp.i18n import current_language
from idp.models import UpstreamLink, UpstreamProviderConfig
from idp.my_account import guard, services
from idp.my_account.forms import (
    ConfirmPasswordForm,
    EmailChangeForm,
    PasswordChangeForm,
    PasswordSetForm,
    ProfileForm,
    UpstreamButtonForm,
)
from idp.security import Passwords, new_token
from idp.upstream_providers.services import enabled_providers
from idp.web import app_settings, html_page, local_path
from providers.base import UpstreamError

bp = Blueprint("account", __name__, url_prefix="/account")
bp.before_request(guard.require_login)
# The link from the mail to a new address: it works without a login (it may be opened on
# a phone), so it has no guard.
links_bp = Blueprint("account_links", __name__)


def _passwords() -> Passwords:
    passwords: Passwords = current_app.extensions["idp.passwords"]
    return passwords


def _wait_message(seconds: int) -> str:
    """A password check refused by the login throttle (change and "confirm it is you")."""
    message: str = ngettext(
        "Too many wrong passwords. Wait %(num)s second and try again.",
        "Too many wrong passwords. Wait %(num)s seconds and try again.",
        seconds,
    )
    return message


# --- profile and e-mail ----------------------------------------------------------------------


@bp.route("", methods=["GET", "POST"])
def profile() -> BaseResponse:
    user = guard.person()
    form = ProfileForm(obj=user) if request.method == "GET" else ProfileForm()
    if user.verified_personal_code is not None:
        del form.name  # the name the bank confirmed stands (services.update_profile)
    if form.validate_on_submit():
        session = db_session()
        changed = services.update_profile(
            session,
            user,
            guard.origin(),
            name=form.name.data if "name" in form else None,
            phone=form.phone.data or "",
        )
        session.commit()
        flash(_("Your details are saved.") if changed else _("Nothing changed."))
        return redirect(url_for("account.profile"), 303)
    return html_page(
        "my_account/profile.html",
        status=400 if request.method == "POST" else 200,
        user=user,
        form=form,
    )


@bp.route("/email", methods=["GET", "POST"])
def change_email() -> BaseResponse:
    browser = guard.this_browser()
    if not guard.login_is_recent(browser):
        return guard.confirm_login_first()
    form = EmailChangeForm()
    status = 200
    if form.validate_on_submit():
        session = db_session()
        outcome = services.request_email_change(
            session,
            app_settings(),
            browser.user,
            form.email.data or "",
            guard.origin(),
            current_language(),
        )
        if outcome is services.EmailChange.SAME:
            form.email.errors = [
                _("This is already your e-mail address. Type the new address you want to use.")
            ]
            status = 400
        elif outcome is services.EmailChange.TOO_SOON:
            form.email.errors = [
                _("We sent a link less than a minute ago. Wait a minute and try again.")
            ]
            status = 429
        else:
            session.commit()
            return html_page("my_account/email_sent.html", new_email=form.email.data)
    elif request.method == "POST":
        status = 400
    return html_page("my_account/email.html", status=status, form=form, user=browser.user)


@links_bp.route(PATHS[Purpose.CHANGE_EMAIL], methods=["GET", "POST"])
def confirm_email_change(token: str) -> BaseResponse:
    """Opening the link only shows a button; pressing it uses the link (mail scanners that
    prefetch links cannot change an address)."""
    session = db_session()
    link = services.pending_email_change(session, token)
    if link is None:
        return link_invalid_page()
    form = ConfirmForm()
    if request.method == "GET" or not form.validate_on_submit():
        return html_page("my_account/email_confirm.html", form=form, new_email=link.new_email)
    outcome, _user = services.confirm_email_change(session, token, guard.origin())
    if outcome is services.EmailChanged.INVALID:
        session.rollback()
        return link_invalid_page()
    session.commit()
    return html_page(
        "my_account/email_changed.html",
        status=409 if outcome is services.EmailChanged.TAKEN else 200,
        taken=outcome is services.EmailChanged.TAKEN,
        new_email=link.new_email,
        logged_in=cookies.current_browser_session() is not None,
    )


# --- password ----------------------------------------------------------------------------------


@bp.route("/password", methods=["GET", "POST"])
def password() -> BaseResponse:
    browser = guard.this_browser()
    user = browser.user
    session = db_session()
    settings = app_settings()
    if user.password_hash is None:
        # A first password: only after a fresh bank or eSignature login.
        if not guard.login_is_recent(browser):
            return guard.confirm_login_first()
        form: PasswordChangeForm | PasswordSetForm = PasswordSetForm()
    else:
        form = PasswordChangeForm()
    status = 200
    if request.method == "POST":
        status = 400
        valid = form.validate_on_submit()
        problems = password_problems(
            form.password.data or "", settings.password_min_length, user.email
        )
        if form.password.data and problems:
            form.password.errors = [*form.password.errors, *problems]
            valid = False
        if valid and isinstance(form, PasswordChangeForm):
            outcome, wait = services.change_password(
                session,
                settings,
                _passwords(),
                browser,
                form.current.data or "",
                form.password.data or "",
                guard.origin(),
            )
            if outcome is services.PasswordChange.CHANGED:
                session.commit()
                flash(_("Your password is changed. You are logged out everywhere else."))
                return redirect(url_for("account.password"), 303)
            session.commit()  # the failure counts, as at the login page
            if outcome is services.PasswordChange.WAIT:
                status = 429
                form.current.errors = [_wait_message(wait)]
            else:
                form.current.errors = [
                    _("This is not your current password. Check it and try again.")
                ]
        elif valid:
            services.set_password(
                session, _passwords(), browser, form.password.data or "", guard.origin()
            )
            session.commit()
            flash(_("Your password is set. You can now log in with your e-mail and password."))
            return redirect(url_for("account.password"), 303)
    return html_page("my_account/password.html", status=status, form=form, user=user)


# --- confirm it is you -------------------------------------------------------------------------


def _next_page(value: str | None) -> str:
    """Where "confirm it is you" goes back to: a page of this section, else the profile."""
    target = local_path(value)
    return target if target.startswith("/account") else url_for("account.profile")


@bp.route("/confirm-login", methods=["GET", "POST"])
def confirm_login() -> BaseResponse:
    browser = guard.this_browser()
    user = browser.user
    session = db_session()
    form = ConfirmPasswordForm()
    if request.method == "GET":
        form.next.data = _next_page(request.args.get("next"))
    status = 200
    if user.password_hash is not None and form.validate_on_submit():
        result = authenticate_password(
            session,
            app_settings(),
            _passwords(),
            user.email,
            form.password.data or "",
            guard.origin().ip,
        )
        if result.user is not None and result.user.id == user.id:
            reconfirm_browser_session(
                session, browser, browser.acr, ["pwd"], guard.origin(), "password"
            )
            session.commit()
            return redirect(_next_page(form.next.data), 303)
        session.commit()
        status = 429 if result.retry_after else 401
        form.password.errors = [
            _wait_message(result.retry_after)
            if result.retry_after
            else _("This is not your current password. Check it and try again.")
        ]
    elif request.method == "POST":
        status = 400
    return html_page(
        "my_account/confirm_login.html",
        status=status,
        form=form,
        user=user,
        providers=enabled_providers(session, app_settings()),
        upstream_form=UpstreamButtonForm(formdata=None, next=form.next.data),
    )


@bp.post("/upstream")
def upstream_start() -> BaseResponse:
    """A bank or eSignature button of "My account": to confirm it is you, or to link the
    account to that login. The callback (idp/accounts/upstream_views.py) checks that it is
    this person and brings them back to `next`."""
    form = UpstreamButtonForm()
    if not form.validate_on_submit():
        return redirect(url_for("account.logins"), 303)
    connector = connector_named(form.provider.data or "")
    if connector is None:
        return unavailable_page(form.provider.data or "", "no such enabled provider")
    session = db_session()
    binding = new_token(32)
    try:
        target = upstream.begin(
            session,
            app_settings(),
            connector,
            callback_url=app_settings().issuer
            + url_for("upstream.callback", provider=connector.name),
            interaction_id=None,
            browser_binding=binding,
            purpose=upstream.ACCOUNT_PURPOSE,
        )
    except UpstreamError as exc:
        session.rollback()
        return unavailable_page(connector.name, f"the login could not start: {exc}")
    session.commit()
    flask_session[ACCOUNT_RETURN_KEY] = _next_page(form.next.data)
    response = redirect(target, 303)
    cookies.set_upstream_binding(response, binding)
    return response


# --- ways to log in ----------------------------------------------------------------------------


@bp.get("/logins")
def logins() -> Response:
    user = guard.person()
    session = db_session()
    rows = session.execute(
        select(UpstreamLink, UpstreamProviderConfig)
        .outerjoin(UpstreamProviderConfig, UpstreamProviderConfig.name == UpstreamLink.provider)
        .where(UpstreamLink.user_id == user.id)
        .order_by(UpstreamLink.created_at)
    ).all()
    return html_page(
        "my_account/logins.html",
        user=user,
        links=rows,
        masked_code=services.mask_personal_code(user.verified_personal_code),
        providers=enabled_providers(session, app_settings()),
        upstream_form=UpstreamButtonForm(formdata=None, next=url_for("account.logins")),
    )
