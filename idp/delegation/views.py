"""The USERS section (docs/domain.md flow 6; issue 5, section 4): a contractor or an authorised
person lists the customer's users, adds one, changes their rights, removes them, resends an
invitation, and reads the customer's history. Thin: the rules are in
idp/delegation/services.py; every page first asks `may_manage` for the customer in the URL,
and every action on a user asks `member` whether that membership is this customer's.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response as BaseResponse

from idp import access_history
from idp.accounts import cookies
from idp.accounts.forms import ConfirmForm
from idp.audit import Action, Actor, history
from idp.db import db_session, utcnow
from idp.delegation import services
from idp.delegation.forms import AddUserForm, RightsForm
from idp.i18n import current_language, local_time
from idp.memberships.labels import right_label, role_label, state_label
from idp.memberships.rights import MembershipState, Role
from idp.models import Customer, Membership, User
from idp.web import app_settings, html_page

bp = Blueprint("users", __name__, url_prefix="/users")
# Ids are 32-bit integer columns (PostgreSQL `integer`).
_MAX_ID = 2**31

# The history page's words for each idp.audit.Action.
ACTION_LABELS = {
    Action.INVITED: _l("Invited"),
    Action.ACTIVATED: _l("Activated"),
    Action.RIGHTS_CHANGED: _l("Rights changed"),
    Action.REVOKED: _l("Removed"),
    Action.EXPIRED: _l("Expired"),
    Action.INVITATION_RESENT: _l("Invitation sent again"),
    Action.INVITATION_REFUSED: _l("Invitation refused at the bank or eSignature login"),
}


class _NotYours(Exception):
    """The person may not manage this customer's users (or the customer does not exist):
    one answer for both, so the page reveals nothing."""


@bp.errorhandler(_NotYours)
def _forbidden(_error: _NotYours) -> Response:
    return html_page("users/forbidden.html", status=403)


@bp.before_request
def _logged_in() -> BaseResponse | None:
    browser = cookies.current_browser_session()
    if browser is None:
        return redirect(url_for("accounts.login"), 303)
    if not browser.user.contact_confirmed:  # flow 4: the contact form before anything else
        return redirect(url_for("accounts.contact"), 303)
    return None


@bp.app_context_processor
def _template_helpers() -> dict[str, object]:
    """For every page: whether to offer the USERS section (the home page's link), and the
    words for roles, rights and states."""
    return {
        "manages_users": _manages_users,
        "role_label": role_label,
        "right_label": right_label,
        "state_label": state_label,
    }


def _manages_users(user: User | None) -> bool:
    return user is not None and bool(services.managed_customers(db_session(), user.id, utcnow()))


def _person() -> User:
    browser = cookies.current_browser_session()
    assert browser is not None  # _logged_in ran first
    return browser.user


def _actor() -> Actor:
    return Actor.person(_person(), request.remote_addr or "unknown")


def _managed(customer_number: str) -> Customer:
    """The customer in the URL, if this person may manage its users now."""
    session = db_session()
    if len(customer_number) > 32 or not customer_number.isprintable():
        raise _NotYours  # (a NUL byte would not even reach PostgreSQL)
    customer = services.find_customer(session, customer_number)
    if customer is None or not services.may_manage(session, _person().id, customer.id, utcnow()):
        raise _NotYours
    return customer


def _member(customer: Customer, membership_id: int) -> Membership:
    """An additional user of this customer: any other id (another customer's user) is not
    found; a contractor or authorised person is not changed here (403, like the list
    says)."""
    if not 0 < membership_id < _MAX_ID:  # beyond the column: the database would refuse it
        abort(404)
    membership = services.member(db_session(), customer.id, membership_id)
    if membership is None:
        abort(404)
    if membership.role != Role.ADDITIONAL_USER:
        raise _NotYours
    return membership


def _to_list(customer: Customer) -> BaseResponse:
    return redirect(url_for("users.members", customer_number=customer.number), 303)


@bp.get("")
def index() -> BaseResponse:
    customers = services.managed_customers(db_session(), _person().id, utcnow())
    if not customers:
        raise _NotYours
    if len(customers) == 1:
        return _to_list(customers[0])
    return html_page("users/choose.html", customers=customers)


@bp.get("/<customer_number>")
def members(customer_number: str) -> Response:
    customer = _managed(customer_number)
    rows = services.members(db_session(), customer.id)
    return html_page(
        "users/list.html",
        customer=customer,
        rows=rows,
        rights_of=services.shown_rights,
        editable=_editable,
        me=_person(),
        action_form=ConfirmForm(),
    )


def _editable(membership: Membership) -> bool:
    """Only additional users are changed here; contractors and authorised persons are
    registered and removed by the utility's admins (from a signed application)."""
    return membership.role == Role.ADDITIONAL_USER and membership.state in (
        MembershipState.INVITED,
        MembershipState.ACTIVE,
    )


@bp.route("/<customer_number>/add", methods=["GET", "POST"])
def add(customer_number: str) -> BaseResponse:
    customer = _managed(customer_number)
    form = AddUserForm()
    error = None
    if request.method == "POST" and form.validate_on_submit():
        session = db_session()
        try:
            invitation = services.invite_additional_user(
                session,
                app_settings(),
                customer=customer,
                email=form.email.data or "",
                name=form.name.data or "",
                personal_code=form.personal_code.data or None,
                rights=form.rights.data or [],
                evidence=None,
                actor=_actor(),
                language=current_language(),
            )
        except services.DelegationError as exc:
            session.rollback()
            error = _("The user was not added. %(reason)s", reason=exc.message)
        else:
            session.commit()
            flash(
                _(
                    "An invitation was sent to %(email)s; it expires on %(when)s.",
                    email=invitation.user.email_display,
                    when=local_time(invitation.expires_at),
                )
            )
            return _to_list(customer)
    status = 400 if request.method == "POST" else 200
    return html_page("users/add.html", status=status, form=form, customer=customer, error=error)


@bp.route("/<customer_number>/<int:membership_id>/rights", methods=["GET", "POST"])
def rights(customer_number: str, membership_id: int) -> BaseResponse:
    customer = _managed(customer_number)
    membership = _member(customer, membership_id)
    form = RightsForm()
    error = None
    if request.method == "GET":
        form.rights.data = services.shown_rights(membership)
    elif form.validate_on_submit():
        session = db_session()
        try:
            services.change_rights(
                session, membership=membership, rights=form.rights.data or [], actor=_actor()
            )
        except services.DelegationError as exc:
            session.rollback()
            error = _("The rights were not changed. %(reason)s", reason=exc.message)
        else:
            session.commit()
            flash(_("The rights of %(email)s are saved.", email=membership.user.email_display))
            return _to_list(customer)
    status = 400 if request.method == "POST" else 200
    return html_page(
        "users/rights.html",
        status=status,
        form=form,
        customer=customer,
        membership=membership,
        error=error,
    )


@bp.route("/<customer_number>/<int:membership_id>/remove", methods=["GET", "POST"])
def remove(customer_number: str, membership_id: int) -> BaseResponse:
    customer = _managed(customer_number)
    membership = _member(customer, membership_id)
    form = ConfirmForm()
    error = None
    if request.method == "POST" and form.validate_on_submit():
        session = db_session()
        try:
            services.revoke(session, membership=membership, actor=_actor())
        except services.DelegationError as exc:
            session.rollback()
            error = _("The user was not removed. %(reason)s", reason=exc.message)
        else:
            session.commit()
            flash(
                _(
                    "%(email)s can no longer act for %(customer)s.",
                    email=membership.user.email_display,
                    customer=customer.name,
                )
            )
            return _to_list(customer)
    status = 400 if request.method == "POST" else 200
    return html_page(
        "users/remove.html",
        status=status,
        form=form,
        customer=customer,
        membership=membership,
        error=error,
    )


@bp.post("/<customer_number>/<int:membership_id>/resend")
def resend(customer_number: str, membership_id: int) -> BaseResponse:
    customer = _managed(customer_number)
    membership = _member(customer, membership_id)
    session = db_session()
    try:
        invitation = services.resend_invitation(
            session, app_settings(), membership=membership, actor=_actor()
        )
    except services.DelegationError as exc:
        session.rollback()
        return html_page("users/refused.html", status=409, customer=customer, reason=exc.message)
    session.commit()
    flash(
        _(
            "A new invitation was sent to %(email)s; it expires on %(when)s. The earlier "
            "link no longer works.",
            email=invitation.user.email_display,
            when=local_time(invitation.expires_at),
        )
    )
    return _to_list(customer)


@bp.get("/<customer_number>/history")
def customer_history(customer_number: str) -> Response:
    customer = _managed(customer_number)
    events = history(db_session(), customer_id=customer.id)
    return html_page(
        "users/history.html",
        customer=customer,
        events=events,
        action_label=lambda action: str(ACTION_LABELS.get(action, action)),
    )


@bp.get("/<customer_number>/logins")
def customer_logins(customer_number: str) -> Response:
    """Issue 15: the app logins of the people acting for the customer."""
    customer = _managed(customer_number)
    number = access_history.page_number(request.args.get("page"))
    if number is None:
        abort(404)
    days = app_settings().access_history_days
    page = access_history.customer_logins(db_session(), customer.id, days, number)
    if page.past_the_end:
        abort(404)
    return html_page(
        "users/logins.html",
        customer=customer,
        page=page,
        days=days,
        method_label=access_history.method_label,
    )
