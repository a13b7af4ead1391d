"""What the tests of the "My account" pages share (issue 15): an app in which every page
of the section's menu exists, and a person logged in at a known address and browser.

The lead's pages (account.password, account.logins, account.confirm_login) are built on
another branch; until they are merged, `with_lead_pages` adds a stand-in for each one the
app lacks, so that the section's menu renders. After the merge it adds nothing (and the
stand-ins can go)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from flask import Flask

from tests.conftest import _empty_tables

LEAD_PAGES = {
    "account.password": "/account/password",
    "account.logins": "/account/logins",
    "account.confirm_login": "/account/confirm-login",
}


def _stand_in() -> str:
    return "a page of the lead's branch"


def with_lead_pages(app: Flask) -> Flask:
    for endpoint, rule in LEAD_PAGES.items():
        if endpoint not in app.view_functions:
            app.add_url_rule(rule, endpoint, _stand_in)
    return app


def account_app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    """For a test module's `app` fixture: a fresh app (the shared one has served
    requests, so no rule can be added to it), its tables emptied before and after."""
    app = with_lead_pages(make_app())
    _empty_tables(app)
    yield app
    _empty_tables(app)
