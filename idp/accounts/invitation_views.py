"""The invited person's page (docs/domain.md flows 6 and 7): the invitation link opens it; the
person chooses a password (only when they have no account yet) and a bank or eSignature.
The bank's answer comes back to upstream.callback (idp/accounts/upstream_views.py), which
finishes the acceptance (idp/accounts/invitations.py) and leads to the contact form, whose
confirmation activates the membership.
"""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response as BaseResponse

from idp.accounts import cookies, invitations
from idp.accounts.forms import InvitationPasswordForm, InvitationStartForm
from idp.accounts.links import PATHS, Purpose
from idp.accounts.upstream_views import connector_named, unavailable_page
from idp.accounts.views import link_invalid_page, new_password_errors
from idp.db import db_session
from idp.i18n import speak_for_account
from idp.memberships.rights import shown_rights
from idp.models import User
from idp.security import new_token
from idp.upstream_providers.services import enabled_providers
from idp.web import app_settings, html_page
from providers.base import UpstreamError

bp = Blueprint("invitation", __name__)


@bp.route(PATHS[Purpose.INVITATION], methods=["GET", "POST"])
def accept(token: str) -> BaseResponse:
    """GET only checks the link; a valid POST starts the bank or eSignature login (the link
    stays live until that login comes back, so a cancelled login can be retried)."""
    session = db_session()
    pending = invitations.check_invitation(session, token)
    if pending is None:
        return link_invalid_page()
    # The invitation was written in this language: the page speaks it too, unless the
    # person chose another (idp.i18n).
    speak_for_account(pending.user.language)
    form: InvitationPasswordForm | InvitationStartForm = (
        InvitationPasswordForm() if pending.needs_password else InvitationStartForm()
    )
    error = None
    if request.method == "POST":
        valid = (
            new_password_errors(form, pending.user.email)
            if isinstance(form, InvitationPasswordForm)
            else form.validate_on_submit()
        )
        if valid:
            return _start(token, form, pending)
        if form.provider.errors:
            error = _("Choose your internet bank or eSignature with one of the buttons.")
    inviter = (
        session.get(User, pending.membership.granted_by_user_id)
        if pending.membership.granted_by_user_id is not None
        else None
    )
    return html_page(
        "invitation/accept.html",
        status=400 if request.method == "POST" else 200,
        form=form,
        pending=pending,
        inviter=inviter,
        error=error,
        rights=shown_rights(pending.membership),
        providers=enabled_providers(session, app_settings()),
    )


def _start(
    token: str,
    form: InvitationPasswordForm | InvitationStartForm,
    pending: invitations.PendingInvitation,
) -> BaseResponse:
    session = db_session()
    name = form.provider.data or ""
    connector = connector_named(name)
    if connector is None:
        return unavailable_page(name, "no such enabled provider, or it cannot be built")
    password_hash = None
    if pending.needs_password and isinstance(form, InvitationPasswordForm):
        password_hash = current_app.extensions["idp.passwords"].hash(form.password.data or "")
    callback = app_settings().issuer + url_for("upstream.callback", provider=connector.name)
    binding = new_token(32)  # the bank's answer counts only in this browser
    try:
        target = invitations.begin_acceptance(
            session,
            app_settings(),
            connector,
            token=token,
            password_hash=password_hash,
            callback_url=callback,
            browser_binding=binding,
        )
    except invitations.InvitationError:
        session.rollback()
        return link_invalid_page()
    except UpstreamError as exc:
        session.rollback()
        return unavailable_page(connector.name, f"the invitation login could not start: {exc}")
    session.commit()
    response = redirect(target, 303)
    cookies.set_upstream_binding(response, binding)
    return response
