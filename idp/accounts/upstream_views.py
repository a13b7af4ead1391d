"""Pages of the bank and eSignature logins: the start (a button on the login page), the
callback from the provider, and the short registration form of flow 1. Thin: the rules are
in idp/accounts/upstream.py; the protocol is in providers/."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, flash, redirect, request, url_for
from flask import session as flask_session
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse

from idp import access_history, observability
from idp.access_history import Kind, Origin
from idp.accounts import cookies, invitations, upstream
from idp.accounts.forms import ConfirmForm, UpstreamRegistrationForm, UpstreamStartForm
from idp.accounts.services import (
    end_browser_session,
    reconfirm_browser_session,
    start_browser_session,
)
from idp.accounts.views import page_after_login, start_again_page
from idp.db import db_session
from idp.i18n import current_language, speak_for_interaction
from idp.interactions import belongs_to_browser, load_interaction
from idp.models import UpstreamProviderConfig, User
from idp.security import new_token
from idp.upstream_providers.services import (
    NAME_PATTERN,
    ProviderError,
    connector_config,
    find_provider,
)
from idp.web import app_settings, html_page, local_path
from providers.base import UpstreamCancelled, UpstreamError, UpstreamProvider, VerifiedIdentity
from providers.registry import build_connector

bp = Blueprint("upstream", __name__)
log = logging.getLogger("idp.upstream")


def unavailable_page(provider: str, reason: object) -> Response:
    """One page for every upstream failure: down, slow, garbage, a failed check. Logged
    here, once per page, with the provider and the reason (connector messages name no
    token or personal code). Status 200: it is a page for a person, not a gateway error,
    and proxies and WAFs replace the bodies of 5xx answers (some of 4xx too) with their
    own error page, which would hide the way back to the login page."""
    log.warning("upstream %r is unavailable: %s", provider[:32], reason)
    return html_page("accounts/upstream_unavailable.html", status=200)


def connector_named(name: str) -> UpstreamProvider | None:
    """The enabled connector of this name; None (logged by the caller's unavailable_page)
    when there is none or it cannot be built (logged here with the cause)."""
    config_row = db_session().scalar(
        select(UpstreamProviderConfig).where(
            UpstreamProviderConfig.name == name[:32], UpstreamProviderConfig.enabled.is_(True)
        )
    )
    if config_row is None:
        return None
    try:
        return build_connector(
            connector_config(app_settings(), config_row), app_settings().upstream_timeout
        )
    except (ProviderError, UpstreamError) as exc:
        log.error("upstream %s cannot be used: %s", name, exc)
        observability.count_upstream_error(config_row.name, "config")
        return None


@bp.post("/login/upstream")
def start() -> BaseResponse:
    """The bank/eSignature button of the login page (a POST with the CSRF token)."""
    form = UpstreamStartForm()
    if not form.validate_on_submit():
        return redirect(url_for("accounts.login"), 303)
    session = db_session()
    interaction = load_interaction(session, form.interaction.data or "")
    if interaction is not None and not belongs_to_browser(
        interaction, cookies.interaction_binding()
    ):
        # Never log in for another browser's paused request. Checked here, where the Lax
        # cookie is sent: a form_post callback carries only the upstream binding, which
        # proves it is this same browser.
        return start_again_page("interaction")
    name = form.provider.data or ""
    connector = connector_named(name)
    if connector is None:
        return unavailable_page(name, "no such enabled provider, or it cannot be built")
    callback = app_settings().issuer + url_for("upstream.callback", provider=connector.name)
    binding = new_token(32)
    try:
        target = upstream.begin(
            session,
            app_settings(),
            connector,
            callback_url=callback,
            interaction_id=interaction.id if interaction else None,
            browser_binding=binding,
        )
    except UpstreamError as exc:
        session.rollback()
        observability.count_upstream_error(connector.name, "start")
        return unavailable_page(connector.name, f"the login could not start: {exc}")
    session.commit()
    response = redirect(target, 303)
    cookies.set_upstream_binding(response, binding)
    return response


@bp.route("/upstream/callback/<provider>", methods=["GET", "POST"])
def callback(provider: str) -> BaseResponse:
    """The provider sends the person back here (query or form_post). The state finds the
    login in flight (on any instance); it counts only if this browser brings the binding
    cookie set when the button was pressed (login CSRF)."""
    params = {k: v for k, v in request.values.items() if isinstance(v, str)}
    if not NAME_PATTERN.fullmatch(provider) or "\x00" in params.get("state", ""):
        # Not a provider name we could have registered (or a NUL, which PostgreSQL
        # refuses in text): no login in flight can match.
        return html_page("accounts/upstream_expired.html", status=400)
    session = db_session()
    taken = upstream.take(session, app_settings(), provider, params.get("state", ""))
    if taken is None:
        session.commit()
        return html_page("accounts/upstream_expired.html", status=400)
    session.commit()  # the state is used up whatever happens next
    # Back from the bank (perhaps by a cross-site form_post, without our Lax cookies): the
    # pages from here speak the paused request's language.
    speak_for_interaction(taken.interaction_id)
    if not taken.started_in(cookies.upstream_binding()):
        # Another browser's login (or another tab's, which set a newer cookie). The code is
        # never redeemed; the cookie, if any, is left for the login it belongs to.
        log.warning(
            "upstream %s: a callback arrived in a browser that did not start the "
            "login; nobody logged in",
            provider,
        )
        invitation = taken.purpose == invitations.UPSTREAM_PURPOSE
        return start_again_page("invitation" if invitation else "upstream", taken.interaction_id)
    response = _finish(provider, params, taken)
    cookies.clear_upstream_binding(response)
    return response


def _finish(provider: str, params: dict[str, str], taken: upstream.TakenLogin) -> BaseResponse:
    """The callback of a login this browser started: verify it upstream, then log in,
    register, or finish an invitation."""
    session = db_session()
    connector = connector_named(provider)
    if connector is None:
        return unavailable_page(provider, "disabled or broken since the login started")
    try:
        identity = connector.finish_login(params, taken.pending)
    except UpstreamCancelled:
        if taken.purpose == invitations.UPSTREAM_PURPOSE:  # the invitation link still works
            return html_page("invitation/cancelled.html")
        return redirect(
            url_for("accounts.login", notice="cancelled", interaction=taken.interaction_id or None),
            303,
        )
    except UpstreamError as exc:
        observability.count_upstream_error(connector.name, "callback")
        observability.count_login(connector.method, "failed")
        return unavailable_page(provider, f"the login failed: {exc}")
    if taken.purpose == invitations.UPSTREAM_PURPOSE:
        return _invitation_answer(taken, identity)
    if taken.purpose == upstream.ACCOUNT_PURPOSE:
        return _account_answer(identity)
    resolution = upstream.resolve(session, app_settings(), identity, taken)
    if resolution.outcome in (upstream.Outcome.NO_CUSTOMER, upstream.Outcome.CUSTOMER_HAS_ACCOUNT):
        session.commit()
        reason = (
            "no_customer_upstream"
            if resolution.outcome is upstream.Outcome.NO_CUSTOMER
            else "customer_has_account"
        )
        row = find_provider(session, provider)
        return html_page(
            "accounts/register_refused.html",
            status=422,
            reason=reason,
            support=app_settings().support_contact_in(current_language()),
            # A login (the bank button is also the way to register): worded as a login,
            # and "Try again" leads back to the login page with the paused sign-in.
            by_login=True,
            method=identity.method,
            provider_name=row.display_name if row else provider,
            interaction=taken.interaction_id,
        )
    if resolution.outcome in (upstream.Outcome.REGISTER, upstream.Outcome.CONFIRM_FIRST):
        session.commit()
        return redirect(url_for("upstream.register", token=resolution.form_token), 303)
    assert resolution.user is not None
    end_browser_session(session, request.cookies.get(cookies.cookie_name()))
    cookie_value, browser = start_browser_session(
        session,
        app_settings(),
        resolution.user,
        identity.assurance,
        list(identity.amr),
        Origin.of_request(),
        identity.method,
    )
    # This browser's own request: checked when the button was pressed, and the binding
    # cookie proved this is that browser.
    interaction = load_interaction(session, taken.interaction_id or "")
    if interaction is not None:
        interaction.login_sid = browser.sid
    session.commit()
    if not resolution.user.contact_confirmed:  # flow 4: the contact form first
        target = url_for("accounts.contact", interaction=interaction.id if interaction else None)
    elif interaction is not None:
        target = url_for("oidc.resume", interaction=interaction.id)
    else:
        target = page_after_login()
    response = redirect(target, 303)
    cookies.set_session_cookie(response, cookie_value)
    return response


# Where "My account" wants the person back after its bank login (a local path, kept in the
# signed Flask session of this same browser).
ACCOUNT_RETURN_KEY = "account_upstream_next"


def _account_answer(identity: VerifiedIdentity) -> BaseResponse:
    """A bank or eSignature login started on "My account" (idp/my_account): to confirm it
    is the logged-in person before a change, or to link their account to it. It counts
    only for the person logged in in this browser, and only as upstream.confirm_person
    allows; the person goes back to the page that asked, with a notice."""
    session = db_session()
    wanted = flask_session.pop(ACCOUNT_RETURN_KEY, None)
    back = local_path(wanted) if wanted else url_for("account.logins")
    browser = cookies.current_browser_session()
    if browser is None:  # logged out meanwhile (or a cross-site form_post without cookies)
        session.commit()
        return redirect(url_for("accounts.login"), 303)
    check = upstream.confirm_person(session, browser.user, identity)
    if check in (upstream.PersonCheck.SAME_PERSON, upstream.PersonCheck.LINKED):
        reconfirm_browser_session(
            session,
            browser,
            identity.assurance,
            list(identity.amr),
            Origin.of_request(),
            identity.method,
        )
        if check is upstream.PersonCheck.LINKED:
            access_history.record(
                session,
                Kind.UPSTREAM_LINKED,
                browser.user_id,
                Origin.of_request(),
                method=identity.method,
                details={"provider": identity.provider},
            )
            flash(_("Your account is now linked to this login. You can use it to log in."))
        session.commit()
        return redirect(back, 303)
    session.commit()
    if check is upstream.PersonCheck.TOO_WEAK:
        flash(
            _(
                "This login cannot be linked: the bank did not confirm your personal code "
                "strongly enough. Try another internet bank or eSignature."
            )
        )
    else:
        flash(
            _(
                "That login belongs to another person or to another account, so nothing "
                "changed. Log in with your own internet bank or eSignature, or ask "
                "customer support for help."
            )
        )
    return redirect(url_for("account.logins"), 303)


def _invitation_answer(taken: upstream.TakenLogin, identity: VerifiedIdentity) -> BaseResponse:
    """Flow 6: the bank or eSignature login of an invited person. Accepted: they are logged
    in (at the assurance of that login) and owe the contact form, whose confirmation
    activates the membership. Refused or used up: a page that says what to do."""
    session = db_session()
    acceptance = invitations.finish_acceptance(
        session, app_settings(), taken, identity, request.remote_addr or "unknown"
    )
    outcome = acceptance.outcome
    if outcome is not invitations.AcceptanceOutcome.ACCEPTED or acceptance.user is None:
        # Whatever the page: the bank login is used up and a refusal recorded; the link is
        # used up too, unless the login was too weak to try it.
        session.commit()
        if outcome is invitations.AcceptanceOutcome.WRONG_PERSON:
            return html_page("invitation/wrong_person.html", status=403)
        if outcome is invitations.AcceptanceOutcome.TOO_WEAK:
            return html_page(
                "invitation/too_weak.html",
                status=403,
                support=app_settings().support_contact_in(current_language()),
            )
        if outcome is invitations.AcceptanceOutcome.CODE_OF_ANOTHER_ACCOUNT:
            return html_page(
                "invitation/other_account.html",
                status=409,
                support=app_settings().support_contact_in(current_language()),
            )
        return html_page("accounts/link_invalid.html", status=404)
    end_browser_session(session, request.cookies.get(cookies.cookie_name()))
    cookie_value, _browser = start_browser_session(
        session,
        app_settings(),
        acceptance.user,
        identity.assurance,
        list(identity.amr),
        Origin.of_request(),
        identity.method,
    )
    session.commit()
    response = redirect(url_for("accounts.contact"), 303)
    cookies.set_session_cookie(response, cookie_value)
    return response


@bp.route("/register/upstream/<token>", methods=["GET", "POST"])
def register(token: str) -> Response:
    """Flow 1: the bank proved who the person is; they add an e-mail address and phone.
    A person whose own registration still waits for its confirmation sees "confirm your
    address first" instead, with the link sent again or another address (this form)."""
    session = db_session()
    pending = upstream.pending_registration(session, app_settings(), token)
    if pending is None:
        return html_page("accounts/upstream_expired.html", status=400)
    speak_for_interaction(pending.interaction_id)
    form = UpstreamRegistrationForm()
    if request.method == "POST" and form.validate_on_submit():
        upstream.register_verified(
            session,
            app_settings(),
            pending,
            email=form.email.data or "",
            phone=(form.phone.data or "").strip() or None,
            language=current_language(),
        )
        session.commit()
        return html_page(
            "accounts/check_mail.html",
            purpose="register",
            hours=app_settings().confirmation_link_lifetime // 3600,
            interaction=pending.interaction_id,
            email=form.email.data or "",
            # Both bound to the bank login by its token: "send again" is its resend (at
            # most one a minute), "use another address" its "confirm first" page's form.
            resend={"action": url_for("upstream.resend", token=token), "fields": {}},
            change={"action": url_for("upstream.register", token=token)},
        )
    status = 400 if request.method == "POST" else 200
    waiting = upstream.pending_account(session, pending.identity.personal_code)
    if waiting is not None:
        return _confirm_first_page(token, pending, waiting, form, status)
    row = find_provider(session, pending.identity.provider)
    return html_page(
        "accounts/register_upstream.html",
        status=status,
        form=form,
        name=upstream.registration_name(session, pending.identity),
        method=pending.identity.method,
        provider_name=row.display_name if row else pending.identity.provider,
    )


@bp.post("/register/upstream/<token>/resend")
def resend(token: str) -> BaseResponse:
    """ "Send the confirmation again", bound to the verified bank login by its form token."""
    session = db_session()
    pending = upstream.pending_registration(session, app_settings(), token)
    if pending is None or not ConfirmForm().validate_on_submit():
        return html_page("accounts/upstream_expired.html", status=400)
    speak_for_interaction(pending.interaction_id)
    user = upstream.resend_for_verified(session, app_settings(), pending, current_language())
    session.commit()
    if user is None:  # confirmed or replaced meanwhile: the registration form decides
        return redirect(url_for("upstream.register", token=token), 303)
    return _confirm_first_page(
        token, pending, user, UpstreamRegistrationForm(formdata=None), 200, resent=True
    )


def _confirm_first_page(
    token: str,
    pending: upstream.PendingRegistration,
    user: User,
    form: UpstreamRegistrationForm,
    status: int,
    *,
    resent: bool = False,
) -> Response:
    return html_page(
        "accounts/confirm_first_upstream.html",
        status=status,
        token=token,
        user=user,
        form=form,
        resend_form=ConfirmForm(),
        resent=resent,
        interaction=pending.interaction_id,
        hours=app_settings().confirmation_link_lifetime // 3600,
    )
