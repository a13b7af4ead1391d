"""The paused authorization request, an *interaction* (docs/architecture.md, "One login").

/authorize (idp.oidc.authorize) stores a request as an Interaction row while the person
logs in, confirms their contact data, chooses whom to act for or gives consent. The pages
of those steps (accounts, consent, the "act for" page) find it here, check that it is this
browser's, and send the person back to /authorize/resume. Shared by those features, so it
imports none of them.
"""

from __future__ import annotations

import time

from authlib.common.urls import add_params_to_uri
from flask import Response
from flask import session as flask_session
from flask_babel import gettext as _
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from idp.clients import find_client
from idp.db import utcnow
from idp.models import BrowserSession, Interaction
from idp.security import secret_matches
from idp.web import html_page

# The Flask session (cookie) key listing this browser's few most recent paused requests.
_KNOWN = "interactions"


def load_interaction(session: Session, interaction_id: str | None) -> Interaction | None:
    if not interaction_id or len(interaction_id) > 64:
        return None
    row = session.get(Interaction, interaction_id)
    if row is None or row.expires_at <= utcnow():
        return None
    return row


def belongs_to_browser(interaction: Interaction, binding: str | None) -> bool:
    """Whether the browser bringing this interaction cookie made the paused request: only
    then may a login finished here attach to it (its id travels in URLs and mails)."""
    return binding is not None and secret_matches(binding, interaction.browser_hash)


def interaction_params(interaction: Interaction) -> MultiDict[str, str]:
    return MultiDict([(k, v) for k, values in interaction.params.items() for v in values])


def remember_in_browser(interaction_id: str) -> None:
    """Note a request that just paused in this browser's session (several tabs: the few
    most recent)."""
    known = flask_session.get(_KNOWN, [])
    if interaction_id not in known:
        flask_session[_KNOWN] = [*known[-4:], interaction_id]


def known_in_browser() -> list[str]:
    """The ids of the paused requests this browser's session knows."""
    return [str(known) for known in flask_session.get(_KNOWN, [])]


def forget_in_browser() -> None:
    flask_session.pop(_KNOWN, None)


def paused_here(session: Session, interaction_id: str) -> Interaction | None:
    """The live paused request of this id that this browser's session knows, or None:
    the person sees expired_page()."""
    interaction = load_interaction(session, interaction_id)
    if interaction is None or interaction_id not in flask_session.get(_KNOWN, []):
        return None
    return interaction


def error_page(error: str, detail: str = "", *, message: str | None = None) -> Response:
    """A sign-in that cannot go on and cannot be sent back to the client (status 400).

    `message` tells the person what happened, in the page's language; `detail` is the
    protocol's own description (RFC 6749 error_description: English ASCII, for the
    application's developers), shown under "Technical details" marked as English."""
    return html_page("oidc/error.html", status=400, error=error, detail=detail, message=message)


def expired_page() -> Response:
    return error_page(
        "invalid_request",
        message=_("This sign-in has expired. Go back to the application and start again."),
    )


# --- what the paused request asks of the login ------------------------------------------------


def login_too_old(browser: BrowserSession, max_age: str | None) -> bool:
    """OIDC Core §3.1.2.1 max_age: re-authenticate if the last login is older."""
    if max_age is None:
        return False
    return time.time() - browser.auth_time.timestamp() > int(max_age)


def may_continue_as(browser: BrowserSession | None, params: MultiDict[str, str]) -> bool:
    """prompt=select_account alone lets the person keep the current session ("Continue as
    …"); prompt=login and an exceeded max_age demand a fresh login."""
    prompts = set(params.get("prompt", "").split())
    return (
        browser is not None
        and "select_account" in prompts
        and "login" not in prompts
        and not login_too_old(browser, params.get("max_age"))
    )


# --- ending it with an error for the client ----------------------------------------------------


def error_location(
    issuer: str, redirect_uri: str, error: str, description: str | None, state: str | None
) -> str:
    """An authorization error response (RFC 6749 §4.1.2.1) as the redirect URI to send the
    browser to."""
    params = [("error", error)]
    if description:
        params.append(("error_description", description))
    if state:
        params.append(("state", state))
    params.append(("iss", issuer))  # RFC 9207 §2: also on error responses
    location: str = add_params_to_uri(redirect_uri, params)
    return location


def deny(session: Session, issuer: str, interaction: Interaction) -> str | None:
    """The person pressed Deny: end the paused request and send access_denied back to the
    client (RFC 6749 §4.1.2.1). None if the client or its redirect URI is gone meanwhile."""
    params = interaction_params(interaction)
    client = find_client(session, params.get("client_id", ""))
    redirect_uri = params.get("redirect_uri", "")
    if client is None or not client.check_redirect_uri(redirect_uri):
        return None
    session.delete(interaction)
    session.commit()
    return error_location(
        issuer, redirect_uri, "access_denied", "The person denied the request.", params.get("state")
    )
