"""The paused authorization request, an *interaction* (docs/architecture.md, "One login").

/authorize (idp.oidc.authorize) stores a request as an Interaction row while the person
logs in, confirms their contact data, chooses whom to act for or gives consent. The pages
of those steps (accounts, consent, the "act for" page) find it here, check that it is this
browser's, and send the person back to /authorize/resume. Shared by those features, so it
imports none of them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlsplit

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
# The client id of each of those requests ({interaction id: client id}), kept after the
# request itself expired and was deleted: the expired page still names the application.
_CLIENTS = "interaction_clients"
# The client of the most recent paused request; outlives logout, so the pages that end
# somewhere (error, 404, logged out, a used link) can lead back to that application.
_LAST_CLIENT = "last_client"


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


def remember_in_browser(interaction_id: str, client_id: str | None = None) -> None:
    """Note a request that just paused in this browser's session (several tabs: the few
    most recent), and the client that sent it."""
    known = flask_session.get(_KNOWN, [])
    if interaction_id not in known:
        known = [*known[-4:], interaction_id]
        flask_session[_KNOWN] = known
    if client_id:
        clients = {k: v for k, v in flask_session.get(_CLIENTS, {}).items() if k in known}
        if clients.get(interaction_id) != client_id:
            flask_session[_CLIENTS] = {**clients, interaction_id: client_id}
        if flask_session.get(_LAST_CLIENT) != client_id:
            flask_session[_LAST_CLIENT] = client_id


def known_in_browser() -> list[str]:
    """The ids of the paused requests this browser's session knows."""
    return [str(known) for known in flask_session.get(_KNOWN, [])]


def forget_in_browser() -> None:
    """Logout: the paused requests go; the last client stays, for "Back to <app>"."""
    flask_session.pop(_KNOWN, None)
    flask_session.pop(_CLIENTS, None)


@dataclass(frozen=True)
class AppLink:
    """Where "Back to <application>" leads: the client's name and its start address."""

    name: str
    uri: str


def client_home(redirect_uris: list[str]) -> str | None:
    """A client's start address: the origin of its first http(s) redirect URI (clients
    register no home page; the origin is where its people start). None for an app whose
    redirect URI is no web address (a native app's custom scheme)."""
    for uri in redirect_uris[:1]:
        parts = urlsplit(uri)
        if parts.scheme in ("http", "https") and parts.netloc:
            return f"{parts.scheme}://{parts.netloc}/"
    return None


def way_on(session: Session, interaction_id: str | None) -> tuple[AppLink | None, str | None]:
    """For a page that ends a path (error, 404, expired form, logged out, used link): the
    application to go back to, and the paused request of this browser that `interaction_id`
    names while it still lives (the login page continues it), else None."""
    live = paused_here(session, interaction_id) if interaction_id else None
    return app_link(session, interaction_id), live.id if live is not None else None


def app_link(session: Session, interaction_id: str | None = None) -> AppLink | None:
    """The application that sent the person here, when this browser knows it: the client
    of `interaction_id` (live, or remembered after it expired), else that of the most
    recent paused request. None: the pages lead to the start page instead."""
    client_id: str | None = None
    if interaction_id:
        live = paused_here(session, interaction_id)
        if live is not None:
            client_id = interaction_params(live).get("client_id")
        else:
            client_id = flask_session.get(_CLIENTS, {}).get(interaction_id)
    client_id = client_id or flask_session.get(_LAST_CLIENT)
    client = find_client(session, client_id) if client_id else None
    if client is None:
        return None
    uri = client_home(list(client.redirect_uris))
    return AppLink(client.name, uri) if uri else None


def paused_here(session: Session, interaction_id: str) -> Interaction | None:
    """The live paused request of this id that this browser's session knows, or None:
    the person sees expired_page()."""
    interaction = load_interaction(session, interaction_id)
    if interaction is None or interaction_id not in flask_session.get(_KNOWN, []):
        return None
    return interaction


def error_page(
    error: str,
    detail: str = "",
    *,
    message: str | None = None,
    app: AppLink | None = None,
    expired: bool = False,
) -> Response:
    """A sign-in that cannot go on and cannot be sent back to the client (status 400).

    `message` tells the person what happened, in the page's language; `detail` is the
    protocol's own description (RFC 6749 error_description: English ASCII, for the
    application's developers), shown under "Technical details" marked as English. `app`:
    the application to start again at (else the start page)."""
    return html_page(
        "oidc/error.html",
        status=400,
        error=error,
        detail=detail,
        message=message,
        app=app,
        expired=expired,
    )


def expired_page(session: Session, interaction_id: str | None = None) -> Response:
    """A paused request that is gone (expired, finished, or another browser's): plain
    words and "Start again at <application>" when this browser knows which one."""
    app = app_link(session, interaction_id)
    if app is not None:
        message = _(
            "This sign-in waited too long and has expired, or it was already finished. "
            "Nothing was lost: start again at %(app)s.",
            app=app.name,
        )
    else:
        message = _(
            "This sign-in waited too long and has expired, or it was already finished. "
            "Nothing was lost: go back to the application and start again."
        )
    return error_page("invalid_request", message=message, app=app, expired=True)


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
