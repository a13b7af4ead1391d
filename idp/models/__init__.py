"""Tables only, one module per aggregate. Importing this package registers every table."""

from idp.models.audit import AccountEvent, AuditEvent
from idp.models.clients import Client
from idp.models.customers import Customer, CustomerContract
from idp.models.flows import (
    BrowserSession,
    ConsentGrant,
    Interaction,
    LoginFailure,
    LoginPairFailure,
)
from idp.models.keys import SigningKey
from idp.models.links import EmailLink
from idp.models.outbox import OutboxMail
from idp.models.providers import UpstreamLink, UpstreamLogin, UpstreamProviderConfig
from idp.models.tokens import (
    AuthorizationCode,
    RefreshToken,
    RevokedAccessToken,
    TokenFamily,
    UsedClientAssertion,
)
from idp.models.users import Membership, User

__all__ = [
    "AccountEvent",
    "AuditEvent",
    "AuthorizationCode",
    "BrowserSession",
    "Client",
    "ConsentGrant",
    "Customer",
    "CustomerContract",
    "EmailLink",
    "Interaction",
    "LoginFailure",
    "LoginPairFailure",
    "Membership",
    "OutboxMail",
    "RefreshToken",
    "RevokedAccessToken",
    "SigningKey",
    "TokenFamily",
    "UpstreamLink",
    "UpstreamLogin",
    "UpstreamProviderConfig",
    "UsedClientAssertion",
    "User",
]
