"""What every "My account" page needs first: a logged-in person who owes nothing (flow 4's
contact form comes before anything), and, for a change of e-mail or password, a login
recent enough (`account_reauth_after`). Each of the section's blueprints runs
`require_login` before its views."""

from __future__ import annotations

import datetime as dt

from flask import redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from idp.access_history import Origin
from idp.accounts import cookies
from idp.accounts.views import log_in_first
from idp.db import utcnow
from idp.models import BrowserSession, User
from idp.web import app_settings


def require_login() -> BaseResponse | None:
    browser = cookies.current_browser_session()
    if browser is None:
        return log_in_first(request.full_path.rstrip("?"))
    if not browser.user.contact_confirmed:
        return redirect(url_for("accounts.contact"), 303)
    return None


def this_browser() -> BrowserSession:
    browser = cookies.current_browser_session()
    assert browser is not None  # require_login ran first
    return browser


def person() -> User:
    return this_browser().user


def origin() -> Origin:
    return Origin.of_request()


def login_is_recent(browser: BrowserSession, now: dt.datetime | None = None) -> bool:
    """Whether the person proved who they are within `account_reauth_after` seconds."""
    age = (now or utcnow()) - browser.auth_time
    return age <= dt.timedelta(seconds=app_settings().account_reauth_after)


def confirm_login_first() -> BaseResponse:
    """Off to "confirm it is you", which comes back to this page afterwards."""
    return redirect(url_for("account.confirm_login", next=request.full_path.rstrip("?")), 303)
