"""The login page and the account pages around it: registration by e-mail, the pages the
e-mail links open, "Forgot password?" and the contact form. Thin: parse the form, call one
service, render or redirect."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    request,
    url_for,
)
from flask import session as flask_session
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response as BaseResponse

from idp.access_history import Origin
from idp.accounts import cookies, invitations, registration
from idp.accounts.forms import (
    ConfirmForm,
    ContactForm,
    ForgotPasswordForm,
    LoginForm,
    NewPasswordForm,
    RegistrationForm,
    ResendConfirmationForm,
    UpstreamStartForm,
)
from idp.accounts.links import PATHS, Purpose
from idp.accounts.password_policy import password_problems
from idp.accounts.services import (
    PASSWORD_ACR,
    PASSWORD_AMR,
    AccountError,
    authenticate_password,
    end_browser_session,
    start_browser_session,
)
from idp.assurance import below, required_assurance
from idp.clients import find_client
from idp.db import db_session
from idp.i18n import current_language, speak_for_account
from idp.interactions import (
    belongs_to_browser,
    interaction_params,
    known_in_browser,
    load_interaction,
    may_continue_as,
    paused_here,
)
from idp.models import BrowserSession, Interaction, User
from idp.security import Passwords
from idp.upstream_providers.services import enabled_providers
from idp.web import app_settings, html_page, local_path

bp = Blueprint("accounts", __name__)

# Messages the login page shows after a redirect (?notice=...): a fixed set, never text
# from the URL.
NOTICES = {
    "confirmed": _l("Your e-mail address is confirmed. You can log in now."),
    # An account registered by bank or eSignature has no password to log in with.
    "confirmed_upstream": _l(
        "Your e-mail address is confirmed. Log in with your internet bank or eSignature."
    ),
    "activated": _l("Your account is ready. Log in with your e-mail and new password."),
    "password_changed": _l(
        "Your password is changed and you were logged out everywhere. Log in with the new password."
    ),
    "cancelled": _l("The login with the bank or eSignature was cancelled. Choose a way to log in."),
}


# A page of the IdP's own that needed a login (My account, USERS) waits here for it: a local
# path in this browser's signed Flask session. A paused authorization request goes first.
_AFTER_LOGIN = "after_login"


def log_in_first(path: str) -> BaseResponse:
    """To the login page, and back to `path` once logged in (by password or bank)."""
    flask_session[_AFTER_LOGIN] = local_path(path)
    return redirect(url_for("accounts.login"), 303)


def page_after_login() -> str:
    """Where a login without a paused request leads: the page that asked for it, else
    the start page."""
    return local_path(flask_session.pop(_AFTER_LOGIN, None) or url_for("accounts.signed_in"))


@bp.route("/login", methods=["GET", "POST"])
def login() -> BaseResponse | str:
    session = db_session()
    settings = current_app.config["IDP_SETTINGS"]
    form = LoginForm()
    interaction_id = request.values.get("interaction", "")
    interaction = load_interaction(session, interaction_id)
    if interaction is not None and not belongs_to_browser(
        interaction, cookies.interaction_binding()
    ):
        if request.method == "POST":
            # A login here must never attach to another browser's paused request.
            return start_again_page("interaction")
        # A link opened on another device (a confirmation mail on a phone): a plain login.
        interaction = None
    params = interaction_params(interaction) if interaction else None
    if request.method == "GET":
        form.interaction.data = interaction_id if interaction else ""
        if params and params.get("login_hint"):
            form.email.data = params.get("login_hint", "")[:320]

    error = None
    resend_form = None
    status = 200
    # Step-up (acr_values above "low"): only a bank or eSignature login will do, and only a
    # session that strong may be continued.
    required = required_assurance(params) if params is not None else None
    step_up = below(PASSWORD_ACR, required)
    browser = cookies.current_browser_session()
    continue_as = (
        browser.user
        if params
        and may_continue_as(browser, params)
        and browser is not None
        and not below(browser.acr, required)
        else None
    )
    if continue_as is not None and request.method == "POST" and "continue" in request.form:
        return _continue_session(form, interaction, browser)
    if step_up and request.method == "POST":
        status, error = (
            403,
            _(
                "This application asks for a login with your internet bank "
                "or eSignature. Choose one of them above."
            ),
        )
    elif form.validate_on_submit():
        result = authenticate_password(
            session,
            settings,
            current_app.extensions["idp.passwords"],
            form.email.data or "",
            form.password.data or "",
            request.remote_addr or "unknown",
        )
        if result.user is not None:
            end_browser_session(session, request.cookies.get(cookies.cookie_name()))
            cookie_value, browser = start_browser_session(
                session,
                settings,
                result.user,
                PASSWORD_ACR,
                PASSWORD_AMR,
                Origin.of_request(),
            )
            if interaction is not None:
                interaction.login_sid = browser.sid
            session.commit()
            target = (
                url_for("oidc.resume", interaction=interaction.id)
                if interaction
                else page_after_login()
            )
            response = redirect(target, 302)
            cookies.set_session_cookie(response, cookie_value)
            return response
        session.commit()
        status = 429 if result.retry_after else 401
        if result.unconfirmed:
            status = 403
            resend_form = ResendConfirmationForm(
                formdata=None, email=form.email.data or "", interaction=form.interaction.data or ""
            )
            error = _(
                "Confirm your e-mail address first: open the link in the message we "
                "sent you. We can send the link again."
            )
        elif result.retry_after:
            error = ngettext(
                "Too many failed attempts. Wait %(num)s second and try again, or "
                "reset your password.",
                "Too many failed attempts. Wait %(num)s seconds and try again, or "
                "reset your password.",
                result.retry_after,
            )
        else:
            error = _("The e-mail or password is not right. Check them and try again.")
    elif request.method == "POST":
        status = 400
        # The fields' own messages say what is missing (the summary lists them); this one
        # is for a form that failed otherwise (an altered or old page).
        if not (form.email.errors or form.password.errors):
            error = _(
                "Fill in both your e-mail and your password. If the page was open for a "
                "long time, reload it and try again."
            )
    client_name = None
    if params is not None:
        client = find_client(session, params.get("client_id"))
        client_name = client.name if client else None
    notice = NOTICES.get(request.args.get("notice", "")) if request.method == "GET" else None
    return html_page(
        "accounts/login.html",
        status=status,
        form=form,
        error=error,
        notice=notice,
        client_name=client_name,
        continue_as=continue_as,
        providers=enabled_providers(session, settings),
        upstream_form=UpstreamStartForm(),
        step_up=step_up,
        resend_form=resend_form,
    )


@bp.post("/register/resend")
def resend_confirmation() -> BaseResponse:
    """ "Send the link again" of the login page. The same answer whether or not a mail went
    (no account, a confirmed one, or one sent less than a minute ago)."""
    form = ResendConfirmationForm()
    if not form.validate_on_submit():
        return redirect(url_for("accounts.login"), 303)
    session = db_session()
    interaction = load_interaction(session, form.interaction.data or "")
    registration.resend_confirmation_to(
        session,
        app_settings(),
        form.email.data or "",
        interaction_id=interaction.id if interaction else None,
        language=current_language(),
    )
    session.commit()
    interaction_id = interaction.id if interaction else None
    return html_page(
        "accounts/check_mail.html",
        purpose="resend",
        hours=app_settings().confirmation_link_lifetime // 3600,
        interaction=interaction_id,
        **_mail_actions(
            url_for("accounts.resend_confirmation"),
            url_for("accounts.register"),
            {"email": form.email.data or "", "interaction": interaction_id or ""},
        ),
    )


def _mail_actions(resend_to: str, change_at: str, fields: dict[str, str]) -> dict[str, Any]:
    """The "Check your mailbox" page's address and its two actions: "send again" posts the
    same data once more (the services send at most one message a minute, and answer the
    same whether or not one went), "use another address" opens the form again filled in
    (`change=1`: shown, not sent)."""
    return {
        "email": fields.get("email", ""),
        "resend": {"action": resend_to, "fields": fields},
        "change": {"action": change_at, "fields": {**fields, "change": "1"}},
    }


def _continue_session(
    form: LoginForm, interaction: Interaction | None, browser: BrowserSession | None
) -> BaseResponse:
    """prompt=select_account: the person chose the account they are logged in with.
    (The CSRF token was checked by CSRFProtect before the view ran.)"""
    if interaction is None or browser is None:
        return redirect(url_for("accounts.login", interaction=form.interaction.data or ""))
    interaction.login_sid = browser.sid
    db_session().commit()
    return redirect(url_for("oidc.resume", interaction=interaction.id), 302)


@bp.get("/")
def signed_in() -> Response:
    browser = cookies.current_browser_session()
    return html_page(
        "accounts/home.html",
        user=browser.user if browser else None,
        portal_url=app_settings().portal_link,
    )


# --- registration by e-mail, links, password reset ---------------------------------------------


def start_again_page(kind: str, interaction_id: str | None = None) -> Response:
    """A login that cannot count in this browser: an upstream login started in another
    browser or tab (kind "upstream", or "invitation"), or a paused authorization request
    of another browser ("interaction"). Nobody was logged in; the link starts again (the
    login page drops an interaction that is not this browser's)."""
    return html_page("accounts/start_again.html", status=400, kind=kind, interaction=interaction_id)


def link_invalid_page() -> Response:
    """One page for every unusable link: unknown, used, expired, voided, wrong purpose."""
    return html_page("accounts/link_invalid.html", status=404)


def new_password_errors(form: NewPasswordForm | RegistrationForm, email: str | None) -> bool:
    """Form validation plus the password rules; errors land on the password field."""
    valid: bool = form.validate_on_submit()
    problems = password_problems(
        form.password.data or "", app_settings().password_min_length, email
    )
    if form.password.data and problems:
        form.password.errors = [*form.password.errors, *problems]
        return False
    return valid


@bp.route("/register", methods=["GET", "POST"])
def register() -> Response:
    form = RegistrationForm()
    if request.method == "GET":
        form.interaction.data = request.args.get("interaction", "")[:64]
    if request.method == "POST" and request.form.get("change"):
        # "Use another address" of the check-mail page: the form again, filled in.
        return html_page("accounts/register.html", form=form)
    if request.method == "POST" and new_password_errors(form, form.email.data):
        session = db_session()
        try:
            outcome = registration.register_by_email(
                session,
                app_settings(),
                current_app.extensions["idp.passwords"],
                registration.Registration(
                    customer_number=form.customer_number.data or "",
                    identifier=form.identifier.data or "",
                    email=form.email.data or "",
                    password=form.password.data or "",
                    name=form.name.data or "",
                    language=current_language(),
                    interaction_id=form.interaction.data or None,
                ),
            )
        except AccountError:  # a company's registration without the person's name
            session.rollback()
            form.name.errors = [*form.name.errors, _("Type your name: you register for a company.")]
            return html_page("accounts/register.html", status=400, form=form)
        session.commit()
        if outcome is registration.RegistrationOutcome.MAIL_SENT:
            interaction_id = form.interaction.data or ""
            return html_page(
                "accounts/check_mail.html",
                purpose="register",
                hours=app_settings().confirmation_link_lifetime // 3600,
                interaction=interaction_id or None,
                email=form.email.data or "",
                resend={
                    "action": url_for("accounts.resend_confirmation"),
                    "fields": {"email": form.email.data or "", "interaction": interaction_id},
                },
                change={
                    "action": url_for("accounts.register"),
                    # Never the password: it is typed again.
                    "fields": {
                        "customer_number": form.customer_number.data or "",
                        "identifier": form.identifier.data or "",
                        "name": form.name.data or "",
                        "email": form.email.data or "",
                        "interaction": interaction_id,
                        "change": "1",
                    },
                },
            )
        return html_page(
            "accounts/register_refused.html",
            status=422,
            reason=outcome.value,
            support=app_settings().support_contact_in(current_language()),
            interaction=form.interaction.data or None,
            by_login=False,
        )
    status = 400 if request.method == "POST" else 200
    return html_page("accounts/register.html", status=status, form=form)


@bp.route(PATHS[Purpose.CONFIRM_EMAIL], methods=["GET", "POST"])
def confirm_email(token: str) -> BaseResponse:
    session = db_session()
    form = ConfirmForm()
    if request.method == "POST" and form.validate_on_submit():
        user = registration.confirm_registration(session, token)
        if user is None:
            session.rollback()
            return link_invalid_page()
        session.commit()
        return redirect(
            _login_url("confirmed" if user.password_hash else "confirmed_upstream"), 303
        )
    user = registration.check_registration_link(session, token)
    if user is None:
        return link_invalid_page()
    # The language chosen at registration (the mail's) when this browser brings none.
    speak_for_account(user.language)
    return html_page("accounts/confirm_email.html", form=form, user=user)


def _login_url(notice: str) -> str:
    interaction = request.args.get("interaction", "")[:64]
    return url_for("accounts.login", notice=notice, interaction=interaction or None)


def _new_password_page(
    token: str,
    purpose: str,
    check: Callable[[Session, str], User | None],
    apply: Callable[[Session, Passwords, str, str], User | None],
    notice: str,
    *,
    forget_cookie: bool = False,
) -> BaseResponse:
    """A link that leads to "type the new password twice" (activation, reset): GET only
    checks the link; a valid POST uses it up together with the change."""
    session = db_session()
    user = check(session, token)
    if user is None:
        return link_invalid_page()
    speak_for_account(user.language)  # the mail's language, when the browser brings none
    form = NewPasswordForm()
    if request.method == "POST" and new_password_errors(form, user.email):
        if (
            apply(session, current_app.extensions["idp.passwords"], token, form.password.data or "")
            is None
        ):
            session.rollback()
            return link_invalid_page()
        session.commit()
        response = redirect(_login_url(notice), 303)
        if forget_cookie:  # a reset ended every session of the account: forget this one too
            cookies.clear_session_cookie(response)
        return response
    status = 400 if request.method == "POST" else 200
    return html_page(
        "accounts/new_password.html", status=status, form=form, user=user, purpose=purpose
    )


@bp.route(PATHS[Purpose.ACTIVATE], methods=["GET", "POST"])
def activate(token: str) -> BaseResponse:
    return _new_password_page(
        token,
        "activate",
        registration.check_activation_link,
        registration.activate_account,
        "activated",
    )


@bp.route("/forgot-password", methods=["GET", "POST"])
def forgot_password() -> Response:
    form = ForgotPasswordForm()
    if request.method == "GET":
        form.interaction.data = request.args.get("interaction", "")[:64]
    if request.method == "POST" and request.form.get("change"):
        # "Use another address" of the check-mail page: the form again, filled in.
        return html_page("accounts/forgot_password.html", form=form)
    if form.validate_on_submit():
        session = db_session()
        # Only a paused request of this browser travels into the mail's link.
        interaction = paused_here(session, form.interaction.data or "")
        registration.request_password_reset(
            session,
            app_settings(),
            form.email.data or "",
            current_language(),
            interaction_id=interaction.id if interaction else None,
        )
        session.commit()
        # The same page whether or not the address has an account; "send again" posts
        # this form once more (request_password_reset sends at most one link a minute).
        return html_page(
            "accounts/check_mail.html",
            purpose="reset",
            minutes=app_settings().reset_link_lifetime // 60,
            interaction=form.interaction.data or None,
            **_mail_actions(
                url_for("accounts.forgot_password"),
                url_for("accounts.forgot_password"),
                {"email": form.email.data or "", "interaction": form.interaction.data or ""},
            ),
        )
    status = 400 if request.method == "POST" else 200
    return html_page("accounts/forgot_password.html", status=status, form=form)


@bp.route(PATHS[Purpose.RESET_PASSWORD], methods=["GET", "POST"])
def reset_password(token: str) -> BaseResponse:
    return _new_password_page(
        token,
        "reset",
        registration.check_reset_link,
        registration.reset_password,
        "password_changed",
        forget_cookie=True,
    )


@bp.route("/contact", methods=["GET", "POST"])
def contact() -> BaseResponse:
    """The contact-information form a person owes before anything else (flow 4). The
    authorization request waits (interaction) and resumes once it is confirmed."""
    browser = cookies.current_browser_session()
    if browser is None:
        return redirect(url_for("accounts.login"), 303)
    user = browser.user
    session = db_session()
    form = ContactForm()
    interaction = load_interaction(session, request.values.get("interaction", ""))
    if interaction is not None and not belongs_to_browser(
        interaction, cookies.interaction_binding()
    ):
        interaction = None  # another browser's request: never resumed from here
    if request.method == "GET":
        form.email.data = user.email_display
        form.phone.data = user.phone or ""
        form.interaction.data = interaction.id if interaction else ""
    elif form.validate_on_submit():
        try:
            registration.confirm_contact_details(
                session,
                app_settings(),
                user,
                email=form.email.data or "",
                phone=(form.phone.data or "").strip() or None,
                language=current_language(),
            )
        except AccountError as exc:
            session.rollback()
            form.email.errors = [
                *form.email.errors,
                _(
                    "This e-mail address cannot be used. %(reason)s Check it or use another one.",
                    reason=exc.message,
                ),
            ]
        else:
            # Flow 6: the contact form is the last step of accepting an invitation.
            activated = invitations.activate_accepted(
                session, user, request.remote_addr or "unknown"
            )
            session.commit()
            if activated and interaction is None:  # else the application comes next
                # Each name on its own: Babel does not extract a gettext call nested in another.
                names = [
                    _(
                        "%(name)s (customer %(number)s)",
                        name=m.customer.name,
                        number=m.customer.number,
                    )
                    for m in activated
                ]
                flash(_("You can now act for %(customers)s.", customers=", ".join(names)))
            target = (
                url_for("oidc.resume", interaction=interaction.id)
                if interaction
                else page_after_login()
            )
            return redirect(target, 303)
    status = 400 if request.method == "POST" else 200
    return html_page("accounts/contact.html", status=status, form=form, user=user)


@bp.get("/language/<code>")
def choose_language(code: str) -> BaseResponse:
    """The language switcher on every page (a plain link: no JavaScript). The choice is
    kept in a long-lived cookie and, for a logged-in person, on the account; it replaces
    the ui_locales of the requests paused in this browser for the rest of their sign-in
    (the request's language would otherwise win, docs/operations.md "Languages"). Back to
    `next`, a path on this site only."""
    target = local_path(request.args.get("next"))
    if code not in app_settings().locales:
        abort(404)
    session = db_session()
    browser = cookies.current_browser_session()
    if browser is not None:
        browser.user.language = code
    # Every sign-in paused in this browser (the page may be one found by a token, such as
    # the bank registration form, whose URL names no interaction).
    named = parse_qs(urlsplit(target).query).get("interaction", [""])[0]
    for interaction_id in dict.fromkeys([named, *known_in_browser()]):
        interaction = load_interaction(session, interaction_id)
        if interaction is not None and belongs_to_browser(
            interaction, cookies.interaction_binding()
        ):
            interaction.params = {**interaction.params, "ui_locales": [code]}
    session.commit()
    response = redirect(target, 303)
    cookies.set_language_cookie(response, code)
    return response
