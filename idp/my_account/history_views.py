"""My account: the access history and "My data" (issue 15). Thin: the rules are in
idp/my_account/history.py and idp/access_history.py."""

from __future__ import annotations

import json

from flask import Blueprint, Response, abort, request
from werkzeug.wrappers import Response as BaseResponse

from idp import access_history
from idp.accounts.forms import ConfirmForm
from idp.db import db_session, utcnow
from idp.my_account import guard, history
from idp.my_account.devices import device_label
from idp.web import app_settings, html_page

bp = Blueprint("account_history", __name__, url_prefix="/account")
bp.before_request(guard.require_login)


@bp.get("/history", endpoint="history")
def history_page() -> Response:
    number = access_history.page_number(request.args.get("page"))
    if number is None:
        abort(404)
    days = app_settings().access_history_days
    page = history.own_events(db_session(), guard.person().id, days, number)
    if page.past_the_end:
        abort(404)
    return html_page(
        "my_account/history.html",
        page=page,
        days=days,
        kind_label=access_history.kind_label,
        method_label=access_history.method_label,
        failed_kinds=access_history.FAILED_KINDS,
        device=device_label,
    )


@bp.get("/data")
def my_data() -> Response:
    return html_page("my_account/my_data.html", form=ConfirmForm())


@bp.post("/data")
def download() -> BaseResponse:
    # CSRFProtect checked the form's token before the view ran. The file holds the
    # personal code: only for a login proven just now.
    if not guard.login_is_recent(guard.this_browser()):
        return guard.confirm_login_first()
    session = db_session()
    data = history.download(session, guard.person(), guard.origin())
    session.commit()
    name = f"my-data-{utcnow().date().isoformat()}.json"
    return Response(
        json.dumps(data, ensure_ascii=False, indent=2),
        mimetype="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )
