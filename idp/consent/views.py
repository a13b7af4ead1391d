"""The consent page: the scopes a client asks for, in plain words from the catalogue."""

from __future__ import annotations

from flask import Blueprint, redirect, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response as BaseResponse

from idp.accounts import cookies
from idp.consent import services
from idp.consent.forms import ConsentForm
from idp.consent.scopes import CATALOGUE
from idp.db import db_session
from idp.interactions import deny, error_page, expired_page, paused_here
from idp.web import app_settings, html_page

bp = Blueprint("consent", __name__)


@bp.route("/consent", methods=["GET", "POST"])
def consent_page() -> BaseResponse | str:
    db = db_session()
    interaction = paused_here(db, request.values.get("interaction", ""))
    if interaction is None:
        return expired_page(db, request.values.get("interaction", ""))
    browser = cookies.current_browser_session()
    if browser is None:
        return redirect(url_for("accounts.login", interaction=interaction.id))
    asked = services.consent_request(db, interaction, browser.user_id)
    if asked is None:
        return error_page(
            "invalid_request",
            message=_(
                "The application is no longer registered, or you no longer act for "
                "this customer. Go back to the application and start again."
            ),
        )
    client, scopes = asked.client, asked.scopes

    form = ConsentForm()
    if form.validate_on_submit():
        if form.deny.data:
            location = deny(db, app_settings().issuer, interaction)
            if location is None:
                return error_page(
                    "invalid_request",
                    message=_("The application's return address is no longer registered."),
                )
            return redirect(location, 302)
        services.remember(
            db,
            browser.user_id,
            client.id,
            asked.acting.customer_id if asked.acting else None,
            " ".join(scopes),
        )
        interaction.consented = True
        db.commit()
        return redirect(url_for("oidc.resume", interaction=interaction.id), 302)

    form.interaction.data = interaction.id
    descriptions = [CATALOGUE[s].description for s in scopes if s in CATALOGUE]
    return html_page(
        "consent/consent.html",
        form=form,
        client_name=client.name,
        descriptions=descriptions,
        user=browser.user,
        acting=asked.acting,
    )
