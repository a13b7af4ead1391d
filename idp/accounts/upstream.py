"""From an upstream login (bank, eSignature) to a person: docs/domain.md flows 1 and 3.

The connector (providers/) only verifies who the person is. Here that identity becomes an
account: a known verified personal code logs in; an account registered by e-mail for the
same private-person customer is linked (only on a code asserted at `substantial` or
`high`, never on an e-mail address); a customer without an account registers with a short
form; anyone else gets the "customer data must be put right" page.

What the connector must check at the callback (state, nonce, PKCE verifier) is kept in the
database, encrypted, so the callback may arrive on any app instance, and is used up
atomically exactly once. Only the hash of a browser-binding cookie ties it to the browser
that pressed the button: a callback opened in any other browser (an attacker planting their
own finished bank login, login CSRF) uses the state up and logs nobody in.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from dataclasses import asdict, dataclass
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from idp import mail
from idp.accounts.names import account_name
from idp.accounts.registration import (
    CONTRACTOR,
    create_pending_user,
    delete_account,
    has_contractor,
    replace_pending_registrations,
    resend_confirmation,
    send_confirmation,
)
from idp.accounts.services import (
    display_email,
    find_user_by_email,
    is_pending_self_registration,
    normalize_email,
)
from idp.db import rowcount, utcnow
from idp.memberships.rights import MembershipState
from idp.models import Customer, Membership, UpstreamLink, UpstreamLogin, User
from idp.models.customers import PERSON
from idp.models.users import ACTIVE
from idp.security import hash_secret, new_token, secret_matches
from idp.settings import Settings
from providers.base import UpstreamProvider, VerifiedIdentity

# Assurance levels a personal code must come with before we link an account on it.
LINKING_ASSURANCE = frozenset({"substantial", "high"})


def _fernet(settings: Settings) -> Fernet:
    return Fernet(settings.effective_key_encryption_key)


def begin(
    session: Session,
    settings: Settings,
    connector: UpstreamProvider,
    *,
    callback_url: str,
    interaction_id: str | None,
    browser_binding: str,
    purpose: str = "login",
    email_link_id: int | None = None,
    password_hash: str | None = None,
) -> str:
    """Start an upstream login; returns where to send the browser. `browser_binding` is the
    random value of the cookie the caller sets in this browser (only its hash is kept);
    `interaction_id` must be a paused request of this same browser. `purpose` "invitation"
    (idp.accounts.invitations.begin_acceptance) keeps the invitation link being accepted and
    the hash of the password chosen on its page until the callback."""
    start = connector.start_login(callback_url)
    now = utcnow()
    session.add(
        UpstreamLogin(
            state_hash=hash_secret(start.state),
            provider=connector.name,
            browser_hash=hash_secret(browser_binding),
            pending_encrypted=_fernet(settings).encrypt(json.dumps(start.pending).encode()),
            purpose=purpose,
            interaction_id=interaction_id,
            created_at=now,
            expires_at=now + dt.timedelta(seconds=settings.upstream_login_lifetime),
            email_link_id=email_link_id,
            password_hash=password_hash,
        )
    )
    return start.redirect_url


@dataclass(frozen=True)
class TakenLogin:
    provider: str
    pending: dict[str, Any]
    interaction_id: str | None
    row_id: int
    # What the person started ("login", or "invitation": the callback then finishes the
    # acceptance of that e-mail link instead of resolving a login).
    purpose: str = "login"
    email_link_id: int | None = None
    password_hash: str | None = None
    browser_hash: str | None = None

    def started_in(self, browser_binding: str | None) -> bool:
        """Whether the browser bringing this binding cookie pressed the button."""
        return browser_binding is not None and secret_matches(browser_binding, self.browser_hash)


def take(session: Session, settings: Settings, provider: str, state: str) -> TakenLogin | None:
    """The login in flight that this callback answers, used up exactly once (a replayed or
    late callback, or one for another provider, finds nothing). Used up also when it
    arrives in another browser (TakenLogin.started_in): the caller then logs nobody in."""
    if not state or len(state) > 512:
        return None
    state_hash = hash_secret(state)
    now = utcnow()
    result = session.execute(
        update(UpstreamLogin)
        .where(
            UpstreamLogin.state_hash == state_hash,
            UpstreamLogin.provider == provider,
            UpstreamLogin.used_at.is_(None),
            UpstreamLogin.expires_at > now,
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) != 1:
        return None
    row = session.scalar(select(UpstreamLogin).where(UpstreamLogin.state_hash == state_hash))
    assert row is not None
    try:
        pending = json.loads(_fernet(settings).decrypt(row.pending_encrypted))
    except InvalidToken:
        return None
    return TakenLogin(
        row.provider,
        pending,
        row.interaction_id,
        row.id,
        purpose=row.purpose,
        email_link_id=row.email_link_id,
        password_hash=row.password_hash,
        browser_hash=row.browser_hash,
    )


class Outcome(enum.Enum):
    LOGGED_IN = "logged_in"
    REGISTER = "register"  # a customer without an account: the short form comes next
    NO_CUSTOMER = "no_customer"
    # The customer already has a portal account that this login could not be linked to
    # (a low-assurance code, or more than one candidate): no second account.
    CUSTOMER_HAS_ACCOUNT = "customer_has_account"
    # The person registered by bank before and never opened the confirmation link: the
    # page "confirm your address first" (send it again, or use another address) is next.
    CONFIRM_FIRST = "confirm_first"


@dataclass(frozen=True)
class Resolution:
    outcome: Outcome
    user: User | None = None
    # REGISTER and CONFIRM_FIRST: the token of the short registration form.
    form_token: str | None = None


def resolve(
    session: Session, settings: Settings, identity: VerifiedIdentity, taken: TakenLogin
) -> Resolution:
    """Flow 3 (login), linking, or the start of flow 1 (registration)."""
    by_code = session.scalar(
        select(User).where(User.verified_personal_code == identity.personal_code)
    )
    if by_code is not None and by_code.status != ACTIVE:
        if is_pending_self_registration(session, by_code):
            # Their own unconfirmed registration: never a dead end. The page this leads to
            # is bound to this verified login (the form token), like the short form.
            return Resolution(
                Outcome.CONFIRM_FIRST,
                user=by_code,
                form_token=_await_form(session, settings, identity, taken),
            )
        # Switched off: never link the code to a second account.
        return Resolution(Outcome.CUSTOMER_HAS_ACCOUNT)
    user = by_code or _linked_user(session, identity)
    if user is None and identity.assurance in LINKING_ASSURANCE:
        user = _legacy_user(session, identity.personal_code) or _linkable_user(
            session, identity.personal_code
        )
        if user is not None:
            user.verified_personal_code = identity.personal_code
    if user is not None:
        remember_link(session, user, identity)
        return Resolution(Outcome.LOGGED_IN, user=user)
    customer = _person_customer(session, identity.personal_code)
    if customer is None:
        return Resolution(Outcome.NO_CUSTOMER)
    if has_contractor(session, customer):
        return Resolution(Outcome.CUSTOMER_HAS_ACCOUNT)
    return Resolution(Outcome.REGISTER, form_token=_await_form(session, settings, identity, taken))


def _await_form(
    session: Session, settings: Settings, identity: VerifiedIdentity, taken: TakenLogin
) -> str:
    """Keep the verified identity (encrypted) with the login row for the short form; the
    returned token, in the form's URL, is the only way to it."""
    form_token = new_token(32)
    session.execute(
        update(UpstreamLogin)
        .where(UpstreamLogin.id == taken.row_id)
        .values(
            identity_encrypted=_fernet(settings).encrypt(json.dumps(asdict(identity)).encode()),
            form_token_hash=hash_secret(form_token),
            expires_at=utcnow() + dt.timedelta(seconds=settings.upstream_login_lifetime),
        )
        .execution_options(synchronize_session=False)
    )
    return form_token


def account_for_code(session: Session, personal_code: str) -> User | None:
    """The account a bank or eSignature login asserting this code would reach: the one that
    holds it as its verified code, else a previous-portal account waiting for it, else the
    one unlinked contractor account of the private-person customer with that code."""
    return (
        session.scalar(select(User).where(User.verified_personal_code == personal_code))
        or _legacy_user(session, personal_code)
        or _linkable_user(session, personal_code)
    )


def codes_bound_to(session: Session, user: User) -> set[str]:
    """The personal codes an account already stands for: its verified code; else the code
    the previous portal recorded; else those of the private-person customers it is the
    contractor of (registered by e-mail with that customer's data)."""
    if user.verified_personal_code:
        return {user.verified_personal_code}
    codes = {user.legacy_personal_code} if user.legacy and user.legacy_personal_code else set()
    codes.update(
        session.scalars(
            select(Customer.personal_code)
            .join(Membership, Membership.customer_id == Customer.id)
            .where(
                Membership.user_id == user.id,
                Membership.role == CONTRACTOR,
                Membership.state == MembershipState.ACTIVE,
                Customer.kind == PERSON,
                Customer.personal_code.is_not(None),
            )
        )
    )
    return {code for code in codes if code}


def may_bind(session: Session, user: User, personal_code: str) -> bool:
    """Whether a verified personal code may become this account's (an invitation accepted
    with a bank login): it is the code the account already stands for, if any, and no
    other account holds it or would be linked on it (never a second account per person,
    never someone else's code on an account)."""
    own = codes_bound_to(session, user)
    if own and personal_code not in own:
        return False
    holder = account_for_code(session, personal_code)
    return holder is None or holder.id == user.id


def _linked_user(session: Session, identity: VerifiedIdentity) -> User | None:
    """The account this (provider, subject) logged in before, if still active."""
    link = session.scalar(
        select(UpstreamLink).where(
            UpstreamLink.provider == identity.provider, UpstreamLink.subject == identity.subject
        )
    )
    if link is None:
        return None
    user = session.get(User, link.user_id)
    # A link made for another code must not log in a different person.
    if (
        user is None
        or user.status != ACTIVE
        or (user.verified_personal_code not in (None, identity.personal_code))
    ):
        return None
    return user


def _legacy_user(session: Session, personal_code: str) -> User | None:
    """Flow 4: a user of the previous portal whose (unverified) code the bank now asserts.
    Their contact_confirmed is still False, so the contact form comes before anything."""
    return session.scalar(
        select(User)
        .where(
            User.legacy.is_(True),
            User.legacy_personal_code == personal_code,
            User.verified_personal_code.is_(None),
            User.status == ACTIVE,
        )
        .limit(1)
    )


def _linkable_user(session: Session, personal_code: str) -> User | None:
    """The one active account, not yet linked to any verified code, that acts as contractor
    for the private-person customer with this personal code (registered by e-mail with
    that customer's data). Two candidates: link none (support sorts it out)."""
    candidates = list(
        session.scalars(
            select(User)
            .join(Membership, Membership.user_id == User.id)
            .join(Customer, Customer.id == Membership.customer_id)
            .where(
                Customer.kind == PERSON,
                Customer.personal_code == personal_code,
                Membership.role == CONTRACTOR,
                Membership.state == MembershipState.ACTIVE,
                User.status == ACTIVE,
                User.verified_personal_code.is_(None),
            )
            .distinct()
            .limit(2)
        )
    )
    return candidates[0] if len(candidates) == 1 else None


def _person_customer(session: Session, personal_code: str) -> Customer | None:
    return session.scalar(
        select(Customer)
        .where(Customer.kind == PERSON, Customer.personal_code == personal_code)
        .order_by(Customer.id)
        .limit(1)
    )


def remember_link(session: Session, user: User, identity: VerifiedIdentity) -> None:
    """Record (provider, subject) for the user, or the time of its latest login (also
    after an accepted invitation: idp.accounts.invitations.finish_acceptance)."""
    link = session.scalar(
        select(UpstreamLink).where(
            UpstreamLink.provider == identity.provider, UpstreamLink.subject == identity.subject
        )
    )
    if link is None:
        session.add(
            UpstreamLink(
                user_id=user.id,
                provider=identity.provider,
                subject=identity.subject,
                assurance=identity.assurance,
            )
        )
    elif link.user_id == user.id:
        link.last_login_at = utcnow()
        link.assurance = identity.assurance


# --- "My account" (issue 15): a bank login to confirm it is you, or to link one -----------

# UpstreamLogin.purpose of a bank or eSignature login started on "My account".
ACCOUNT_PURPOSE = "account"


class PersonCheck(enum.Enum):
    SAME_PERSON = "same_person"  # the account's own verified personal code
    LINKED = "linked"  # the account had none; this login's code is now its own
    TOO_WEAK = "too_weak"  # a code asserted below LINKING_ASSURANCE cannot be linked
    SOMEONE_ELSE = "someone_else"  # another person's code, or one another account holds


def confirm_person(session: Session, user: User, identity: VerifiedIdentity) -> PersonCheck:
    """A bank or eSignature login made by a logged-in person on "My account": it proves
    them (their own verified code), or links their account to it by the rules of linking
    at login (may_bind: only a code this account stands for or that nobody else holds,
    only at LINKING_ASSURANCE). The (provider, subject) is remembered either way."""
    if user.verified_personal_code is not None:
        if user.verified_personal_code != identity.personal_code:
            return PersonCheck.SOMEONE_ELSE
        remember_link(session, user, identity)
        return PersonCheck.SAME_PERSON
    if identity.assurance not in LINKING_ASSURANCE:
        return PersonCheck.TOO_WEAK
    if not may_bind(session, user, identity.personal_code):
        return PersonCheck.SOMEONE_ELSE
    user.verified_personal_code = identity.personal_code
    remember_link(session, user, identity)
    return PersonCheck.LINKED


# --- flow 1: the short registration form after a bank login -----------------------------------


@dataclass(frozen=True)
class PendingRegistration:
    identity: VerifiedIdentity
    interaction_id: str | None
    row_id: int


def pending_registration(
    session: Session, settings: Settings, form_token: str
) -> PendingRegistration | None:
    if not form_token or len(form_token) > 128:
        return None
    row = session.scalar(
        select(UpstreamLogin).where(
            UpstreamLogin.form_token_hash == hash_secret(form_token),
            UpstreamLogin.expires_at > utcnow(),
            UpstreamLogin.identity_encrypted.is_not(None),
        )
    )
    if row is None or row.identity_encrypted is None:
        return None
    try:
        data = json.loads(_fernet(settings).decrypt(row.identity_encrypted))
    except InvalidToken:
        return None
    data["amr"] = tuple(data.get("amr") or ())
    return PendingRegistration(VerifiedIdentity(**data), row.interaction_id, row.id)


def registration_name(session: Session, identity: VerifiedIdentity) -> str:
    """The name the account of flow 1 will get (shown on the registration form)."""
    customer = _person_customer(session, identity.personal_code)
    return account_name(
        identity.given_name, identity.family_name, customer.name if customer else None
    )


def register_verified(
    session: Session,
    settings: Settings,
    pending: PendingRegistration,
    *,
    email: str,
    phone: str | None,
    language: str | None,
) -> bool:
    """Flow 1: an account for the verified person, pending until the confirmation link is
    opened; linked to the upstream identity. Returns False when the form was already used
    (double submission, another tab): the page answers the same either way. An address
    that already has an account gets the "you already have an account" mail instead."""
    used = session.execute(
        update(UpstreamLogin)
        .where(UpstreamLogin.id == pending.row_id, UpstreamLogin.identity_encrypted.is_not(None))
        .values(identity_encrypted=None, form_token_hash=None)
        .execution_options(synchronize_session=False)
    )
    if rowcount(used) != 1:
        return False
    identity = pending.identity
    customer = _person_customer(session, identity.personal_code)
    if customer is None:
        return False
    holder = pending_account(session, identity.personal_code)
    if holder is not None:
        # "Use another address": their own unconfirmed registration gives way.
        delete_account(session, holder.id)
    elif (
        session.scalar(select(User.id).where(User.verified_personal_code == identity.personal_code))
        is not None
    ):
        return False
    if has_contractor(session, customer):  # an account became active meanwhile
        return False
    # Pending registrations by e-mail for this customer (a mistyped address) give way too.
    replace_pending_registrations(session, customer)
    normalized = normalize_email(email)
    # Banks' capitals ("ANNA PASTĀVĪGĀ") never replace the customer data's spelling.
    name = account_name(identity.given_name, identity.family_name, customer.name)
    user = create_pending_user(
        session,
        email=normalized,
        email_display=display_email(email),
        name=name,
        password_hash=None,
        language=language,
        phone=phone or None,
        verified_personal_code=identity.personal_code,
    )
    if user is None:  # the address already has an account (or won a concurrent race)
        existing = find_user_by_email(session, normalized)
        if existing is not None:
            mail.enqueue(
                session,
                to=existing.email_display,
                template="already_registered",
                language=existing.language or language,
                name=existing.name,
                login_url=settings.issuer + "/login",
                reset_url=settings.issuer + "/forgot-password",
            )
        return True
    session.add(Membership(user_id=user.id, customer_id=customer.id, role=CONTRACTOR))
    session.add(UpstreamLink(user_id=user.id, provider=identity.provider, subject=identity.subject))
    send_confirmation(
        session, settings, user, customer, interaction_id=pending.interaction_id, language=language
    )
    return True


def pending_account(session: Session, personal_code: str) -> User | None:
    """The verified person's own pending, never-confirmed registration, if any."""
    user = session.scalar(select(User).where(User.verified_personal_code == personal_code))
    return user if user is not None and is_pending_self_registration(session, user) else None


def resend_for_verified(
    session: Session, settings: Settings, pending: PendingRegistration, language: str | None
) -> User | None:
    """ "Send the confirmation again" of the verified person (bound to their bank login by
    the form token, which it leaves usable for "use another address"). Returns the account
    (whether or not RESEND_PAUSE let a mail go), or None when there is none to confirm."""
    user = pending_account(session, pending.identity.personal_code)
    if user is not None:
        resend_confirmation(
            session, settings, user, interaction_id=pending.interaction_id, language=language
        )
    return user
