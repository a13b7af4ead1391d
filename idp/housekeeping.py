"""Deleting rows that can no longer matter (`idp db purge`, e.g. hourly from cron).

Nothing here is needed for correctness: every reader checks expiry itself. It only keeps
the tables small, removes self-registrations whose confirmation link expired unused,
deletes the access history older than `access_history_days`, and marks memberships past
their end date expired (with their audit record) so that the USERS section and
`idp delegation list` show it.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, exists
from sqlalchemy.orm import Session

from idp.access_history import ACCESS_KINDS
from idp.accounts.links import Purpose
from idp.accounts.services import pending_self_registration
from idp.db import rowcount, utcnow
from idp.delegation.services import expire_due
from idp.models import (
    AccountEvent,
    AuthorizationCode,
    BrowserSession,
    EmailLink,
    Interaction,
    LoginFailure,
    LoginPairFailure,
    OutboxMail,
    RevokedAccessToken,
    SigningKey,
    TokenFamily,
    UsedClientAssertion,
    User,
)

# Used codes are kept a day after expiry so that a late replay is still recognised (and
# still revokes what the code issued) rather than answered as an unknown code.
CODE_RETENTION = dt.timedelta(days=1)
# Delivered mails (their bodies already erased) stay a month for support questions.
MAIL_RETENTION = dt.timedelta(days=30)


def purge_expired(
    session: Session,
    login_failure_window: int,
    confirmation_link_lifetime: int,
    access_history_days: int,
) -> dict[str, int]:
    now = utcnow()
    # First, while their links and token families still exist to be voided and revoked.
    expired_memberships = expire_due(session, now)
    statements = {
        # Self-registrations never confirmed, older than their link and with no live link
        # left (a resend gives an old account a new one). Their memberships, links and
        # upstream links go with them (ON DELETE CASCADE); invited and admin-created
        # accounts are not self-registrations (pending_self_registration).
        "pending_registrations": delete(User).where(
            pending_self_registration(),
            User.created_at < now - dt.timedelta(seconds=confirmation_link_lifetime),
            ~exists().where(
                EmailLink.user_id == User.id,
                EmailLink.purpose == Purpose.CONFIRM_EMAIL.value,
                EmailLink.used_at.is_(None),
                EmailLink.voided_at.is_(None),
                EmailLink.expires_at > now,
            ),
        ),
        "authorization_codes": delete(AuthorizationCode).where(
            AuthorizationCode.expires_at < now - CODE_RETENTION
        ),
        # Refresh tokens go with their family (ON DELETE CASCADE).
        "token_families": delete(TokenFamily).where(TokenFamily.expires_at < now),
        "revoked_access_tokens": delete(RevokedAccessToken).where(
            RevokedAccessToken.expires_at < now
        ),
        "used_client_assertions": delete(UsedClientAssertion).where(
            UsedClientAssertion.expires_at < now
        ),
        "browser_sessions": delete(BrowserSession).where(BrowserSession.expires_at < now),
        "interactions": delete(Interaction).where(Interaction.expires_at < now),
        # Keys leave JWKS at expires_at (every token they signed has expired by then).
        "signing_keys": delete(SigningKey).where(SigningKey.expires_at < now),
        # Throttling forgets failures older than the window; so may the tables.
        "login_failures": delete(LoginFailure).where(
            LoginFailure.last_failure_at < now - dt.timedelta(seconds=login_failure_window)
        ),
        "login_pair_failures": delete(LoginPairFailure).where(
            LoginPairFailure.last_failure_at < now - dt.timedelta(seconds=login_failure_window)
        ),
        # Never an undelivered mail: only those sent more than MAIL_RETENTION ago.
        # A link is dead once expired; kept a day so that support can still see it.
        "email_links": delete(EmailLink).where(EmailLink.expires_at < now - CODE_RETENTION),
        "outbox_mails": delete(OutboxMail).where(OutboxMail.sent_at < now - MAIL_RETENTION),
        # The access history (logins, tokens issued, wrong passwords) is kept
        # `access_history_days`; the changes a person made are kept like the USERS audit.
        "account_events": delete(AccountEvent).where(
            AccountEvent.kind.in_(sorted(ACCESS_KINDS)),
            AccountEvent.at < now - dt.timedelta(days=access_history_days),
        ),
    }
    counts = {name: rowcount(session.execute(stmt)) for name, stmt in statements.items()}
    return {"memberships_expired": expired_memberships, **counts}
