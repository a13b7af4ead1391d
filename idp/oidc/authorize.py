"""The authorization endpoint as a small state machine (docs/architecture.md, "One login").

A request is validated by Authlib, then either answered at once (a code, or an error sent
back to the client) or paused as an *interaction* row while the person logs in or gives
consent; `/authorize/resume` replays the stored request and continues where it stopped.
The pages of those steps find the paused request through idp.interactions.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError, scope_to_list
from flask_babel import gettext as _
from sqlalchemy import delete
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from idp.assurance import below, required_assurance
from idp.clients import OAuthClient
from idp.consent import services as consent_services
from idp.db import rowcount, utcnow
from idp.interactions import error_location, login_too_old
from idp.memberships.acting import Acting, acting_for, acting_options
from idp.memberships.rights import scopes_allowed_by
from idp.models import BrowserSession, Interaction
from idp.oidc import tokens
from idp.oidc.server import IdpAuthorizationServer
from idp.security import new_token

SUPPORTED_PROMPTS = {"none", "login", "consent", "select_account"}
# OAuth 2.0 parameters that must not repeat (RFC 6749 §3.1) plus the OIDC ones we read.
SINGLE_VALUED = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "prompt",
    "max_age",
    "login_hint",
    "ui_locales",
    "acr_values",
    "code_challenge",
    "code_challenge_method",
    "response_mode",
    "request",
    "request_uri",
    "id_token_hint",
)
MAX_PARAM_LENGTH = 2048
# Stored with the code in a narrower column (PostgreSQL refuses longer values).
MAX_LENGTHS = {"nonce": 512}
MAX_PARAMS = 50
# Authlib echoes these into error descriptions, which must stay within RFC 6749's error
# character set (it raises ValueError otherwise). Both grammars are narrower anyway:
# response-char (RFC 6749 §3.1.1) and a URI, printable ASCII without quote or backslash.
WELL_FORMED = {
    "response_type": re.compile(r"[A-Za-z0-9_ ]*"),
    "redirect_uri": re.compile(r"[\x21\x23-\x5b\x5d-\x7e]*"),
}
MAX_AGE = re.compile(r"[0-9]{1,10}")  # ASCII digits only: int() also takes "١٢٣"


class ProtocolError(OAuth2Error):
    """An authorization error with an error code Authlib does not name."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description=description, error=error)


@dataclass
class Outcome:
    """What the endpoint answers: an HTML error page, a redirect, or a page to show."""

    kind: str  # "error_page" | "redirect" | "login" | "contact" | "select_customer" | "consent"
    location: str = ""
    error: str = ""
    description: str = ""
    # For an error page: what the person reads, in the page's language.
    message: str = ""
    interaction_id: str = ""
    extra: dict[str, str] = field(default_factory=dict)


def _error_redirect(
    issuer: str, redirect_uri: str, error: OAuth2Error, state: str | None
) -> Outcome:
    return Outcome(
        "redirect",
        location=error_location(issuer, redirect_uri, error.error, error.description, state),
    )


def _precheck(params: MultiDict[str, str]) -> None:
    """Reject malformed input before it reaches Authlib (raises InvalidRequestError)."""
    if len(params) > MAX_PARAMS:
        raise InvalidRequestError("Too many parameters.")
    for name in params:
        values = params.getlist(name)
        # Only known names go into the description (it must be plain ASCII).
        label = f"Parameter '{name}'" if name in SINGLE_VALUED else "A parameter"
        limit = MAX_LENGTHS.get(name, MAX_PARAM_LENGTH)
        if len(name) > MAX_PARAM_LENGTH or any(len(v) > limit for v in values):
            raise InvalidRequestError(f"{label} is too long.")
        if name in SINGLE_VALUED and len(values) > 1:
            raise InvalidRequestError(f"{label} is repeated.")
        if name in WELL_FORMED and not WELL_FORMED[name].fullmatch(values[0]):
            raise InvalidRequestError(f"{label} is malformed.")


def _check_oidc_params(params: MultiDict[str, str]) -> set[str]:
    """The parameters Authlib leaves to us; returns the prompt values."""
    if "request" in params:
        raise ProtocolError("request_not_supported", "Request objects are not supported.")
    if "request_uri" in params:
        raise ProtocolError("request_uri_not_supported", "request_uri is not supported.")
    if params.get("response_mode", "query") != "query":
        raise InvalidRequestError("Only response_mode=query is supported.")
    prompts = set(params.get("prompt", "").split())
    if prompts - SUPPORTED_PROMPTS:
        raise InvalidRequestError("Unsupported 'prompt' value.")
    if "none" in prompts and len(prompts) > 1:
        raise InvalidRequestError("prompt=none cannot be combined with other values.")
    max_age = params.get("max_age")
    if max_age is not None and not MAX_AGE.fullmatch(max_age):
        raise InvalidRequestError("'max_age' must be a non-negative integer.")
    return prompts


def process(
    session: Session,
    server: IdpAuthorizationServer,
    params: MultiDict[str, str],
    browser: BrowserSession | None,
    interaction: Interaction | None = None,
    browser_hash: str | None = None,
) -> Outcome:
    """Decide the answer to one authorization request (fresh or resumed). A request that
    pauses is stored with `browser_hash`, the hash of this browser's interaction cookie."""
    issuer = server.settings.issuer
    try:
        _precheck(params)
    except OAuth2Error as error:
        return Outcome("error_page", error=error.error, description=error.description or "")

    request = server.request_from_params(params)
    try:
        grant = server.get_consent_grant(request, end_user=browser.user if browser else None)
    except OAuth2Error as error:
        if not error.redirect_uri:
            # Unknown client or bad redirect_uri: never redirect (RFC 6749 §4.1.2.1).
            return Outcome("error_page", error=error.error, description=error.description or "")
        return _error_redirect(issuer, error.redirect_uri, error, params.get("state"))

    redirect_uri: str = grant.redirect_uri
    state = params.get("state")
    client: OAuthClient = request.client
    try:
        prompts = _check_oidc_params(params)
    except OAuth2Error as error:
        return _error_redirect(issuer, redirect_uri, error, state)

    scope: str = request.scope or ""
    logged_in_here = bool(browser and interaction and interaction.login_sid == browser.sid)
    needs_login = browser is None or (
        not logged_in_here
        and (
            bool(prompts & {"login", "select_account"})
            or login_too_old(browser, params.get("max_age"))
            # Step-up: a bank or eSignature login, not a silent low-assurance token. After
            # a login here the ID token's acr tells the truth whatever was reached.
            or below(browser.acr, required_assurance(params))
        )
    )
    # docs/domain.md flow 4 (and flow 1): a person who still owes the contact-information form
    # gets no code for any client until it is confirmed.
    needs_contact = not needs_login and browser is not None and not browser.user.contact_confirmed
    # docs/domain.md: a token is for one user acting for one customer, chosen after login.
    acting: Acting | None = None
    needs_customer = False
    if browser is not None and not needs_login and not needs_contact:
        acting, needs_customer = _choose_customer(
            acting_options(session, browser.user_id, utcnow()), interaction, browser, prompts
        )
        # Granted = requested ∩ allowed for the client (Authlib, above) ∩ the rights of
        # the membership ∩ consented (below).
        scope = " ".join(
            scopes_allowed_by(scope_to_list(scope) or [], acting.rights if acting else ())
        )
    # "Allow" on this request's consent page counts for the customer it was asked for only
    # (the membership may have ended meanwhile and another customer come in its place).
    consented_here = bool(
        interaction
        and interaction.consented
        and interaction.customer_id == (acting.customer_id if acting else None)
    )
    needs_consent = (
        not client.first_party
        and not consented_here
        and (
            "consent" in prompts
            or (
                browser is not None
                and not needs_customer
                and bool(
                    consent_services.missing_scopes(
                        session,
                        browser.user_id,
                        client.id,
                        acting.customer_id if acting else None,
                        scope,
                    )
                )
            )
        )
    )
    steps = {
        "login": needs_login,
        "contact": needs_contact,
        "select_customer": needs_customer,
        "consent": needs_consent,
    }
    kind = next((name for name, needed in steps.items() if needed), None)
    if "none" in prompts and kind is not None:
        error_code = {
            "login": "login_required",
            "contact": "interaction_required",
            "select_customer": "account_selection_required",
        }.get(kind, "consent_required")
        return _error_redirect(
            issuer, redirect_uri, ProtocolError(error_code, "The person must interact."), state
        )
    if kind is not None:
        if interaction is None:
            interaction = Interaction(
                id=new_token(24),
                client_id=client.client_id,
                params={k: params.getlist(k) for k in params},
                browser_hash=browser_hash,
                expires_at=utcnow() + dt.timedelta(seconds=server.settings.interaction_lifetime),
            )
            session.add(interaction)
        if kind == "consent" and acting is not None:
            # The consent page asks on behalf of this customer, and this request keeps it.
            interaction.customer_id = acting.customer_id
        session.commit()
        return Outcome(kind, interaction_id=interaction.id)

    assert browser is not None
    if interaction is not None:
        # The paused request is finished: it cannot be resumed twice.
        if (
            rowcount(session.execute(delete(Interaction).where(Interaction.id == interaction.id)))
            != 1
        ):
            return Outcome(
                "error_page",
                error="invalid_request",
                description="This sign-in was already completed.",
                message=_(
                    "This sign-in was already completed. Go back to the application: you "
                    "are logged in there, or start again from it."
                ),
            )
    code = tokens.store_authorization_code(
        session,
        server.settings,
        client=client,
        user_id=browser.user_id,
        customer_id=acting.customer_id if acting else None,
        redirect_uri=redirect_uri,
        scope=scope,
        nonce=params.get("nonce"),
        code_challenge=params.get("code_challenge"),
        code_challenge_method=params.get("code_challenge")
        and params.get("code_challenge_method", "S256"),
        sid=browser.sid,
        auth_time=int(browser.auth_time.timestamp()),
        acr=browser.acr,
        amr=list(browser.amr),
    )
    session.commit()
    response = [("code", code)]
    if state:
        response.append(("state", state))
    response.append(("iss", issuer))
    return Outcome("redirect", location=add_params_to_uri(redirect_uri, response))


def _choose_customer(
    options: list[Acting],
    interaction: Interaction | None,
    browser: BrowserSession,
    prompts: set[str],
) -> tuple[Acting | None, bool]:
    """Whom this request acts for, and whether the person must choose first.

    The choice made for this request wins while its membership lasts; one membership needs
    no choice (none: identity only, no customer, no domain scopes); with several, the
    customer chosen earlier in this browser is reused (a second application, a silent
    login) unless prompt=select_account asks again. A new login is a new browser session,
    so after every login the person chooses."""
    by_id = {acting.customer_id: acting for acting in options}
    if interaction is not None and interaction.customer_id in by_id:
        return by_id[interaction.customer_id], False
    if len(options) <= 1:
        return (options[0] if options else None), False
    if "select_account" not in prompts and browser.acting_customer_id in by_id:
        return by_id[browser.acting_customer_id], False
    return None, True


def choose_customer(
    session: Session, interaction: Interaction, browser: BrowserSession, customer_id: int
) -> bool:
    """The person chose whom to act for on the "act for" page: this request and later
    ones in this browser act for that customer. False if it is not one of their
    current memberships (a tampered form, or one removed meanwhile)."""
    if acting_for(session, browser.user_id, customer_id, utcnow()) is None:
        return False
    if interaction.customer_id != customer_id:
        interaction.consented = False  # an "Allow" given for another customer does not count
    interaction.customer_id = customer_id
    browser.acting_customer_id = customer_id
    return True
