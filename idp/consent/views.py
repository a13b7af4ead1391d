"""The consent page: the scopes a client asks for, in plain words from the catalogue."""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _

from idp.accounts import cookies
from idp.consent import services
from idp.consent.forms import ConsentForm
from idp.consent.scopes import CATALOGUE
from idp.db import db_session
from idp.oidc.authorize import consent_request, deny, load_interaction

bp = Blueprint("consent", __name__)


def _error(message: str) -> Response:
    body = render_template("oidc/error.html", error="invalid_request", description=message)
    return Response(body, status=400, mimetype="text/html")


@bp.route("/consent", methods=["GET", "POST"])
def consent_page() -> Response | str:
    db = db_session()
    server = current_app.extensions["idp.oauth_server"]
    interaction_id = request.values.get("interaction", "")
    interaction = load_interaction(db, interaction_id)
    browser = cookies.current_browser_session()
    if interaction is None or interaction_id not in session.get("interactions", []):
        return _error(_("This sign-in has expired. Go back to the application and start again."))
    if browser is None:
        return redirect(url_for("accounts.login", interaction=interaction.id))
    asked = consent_request(db, server, interaction, browser.user_id)
    if asked is None:
        return _error(
            _(
                "The application is no longer registered, or you no longer act for "
                "this customer. Go back to the application and start again."
            )
        )
    client, scopes = asked.client, asked.scopes

    form = ConsentForm()
    if form.validate_on_submit():
        if form.deny.data:
            location = deny(db, server, interaction)
            if location is None:
                return _error(_("The application's return address is no longer registered."))
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
    return render_template(
        "consent/consent.html",
        form=form,
        client_name=client.name,
        descriptions=descriptions,
        user=browser.user,
        acting=asked.acting,
    )
