"""The contract every upstream connector meets (docs/architecture.md, "providers/").

A connector starts a login (where to send the browser, with its own state, nonce and PKCE
kept server-side) and finishes it from the callback, returning a `VerifiedIdentity`.
`providers/` knows nothing about users or customers: it only turns an upstream login into a
`VerifiedIdentity`, or raises one of the two errors below.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Literal

Assurance = Literal["low", "substantial", "high"]
Method = Literal["bank", "esignature"]


class UpstreamError(Exception):
    """The upstream login failed: the provider is down, slow, answered garbage, or its
    answer did not pass a check (signature, issuer, audience, nonce, state...). The person
    sees "the bank login is unavailable, try again or choose another way"; the message is
    for the log only (never the person), and carries no secret."""


class UpstreamCancelled(UpstreamError):
    """The person cancelled at the provider (`error=access_denied`): back to the login page
    with a short message."""


@dataclass(frozen=True)
class VerifiedIdentity:
    """Who the upstream provider says the person is (docs/domain.md, "Ways to log in")."""

    provider: str
    method: Method
    # The upstream `sub`: only a secondary record, not stable across the provider's methods.
    subject: str
    country: str
    # 11 digits, verified by the upstream; the key we link people on.
    personal_code: str
    given_name: str
    family_name: str
    assurance: Assurance
    amr: tuple[str, ...] = field(default_factory=tuple)
    upstream_acr: str | None = None


@dataclass(frozen=True)
class LoginStart:
    """Where to send the browser, and what to keep server-side until the callback."""

    redirect_url: str
    state: str
    pending: dict[str, Any]


@dataclass(frozen=True)
class ConnectorConfig:
    """What an admin configured for one upstream (idp.models.UpstreamProviderConfig, with
    the client secret decrypted). Each connector module turns it into a connector with
    `build(config, timeout)` and explains what is wrong with it with
    `check_report(config, timeout, redirect_uri)` (`check` gives only the problems)."""

    name: str
    method: Method
    display_name: str
    # OIDC: the issuer; eParaksts: the service's base URL.
    base_url: str
    client_id: str
    client_secret: str | None
    options: dict[str, Any] = field(default_factory=dict)
    # Which connector module builds it ("oidc", "eparaksts": providers/registry.py).
    kind: str = "oidc"


@dataclass
class CheckReport:
    """What a connector's `check_report` found, as sentences for the admin: `problems`
    stop logins (the check fails); `warnings` may (the check passes, loudly), e.g. a claim
    the upstream's discovery does not list, or something the check cannot tell."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class UpstreamProvider(abc.ABC):
    name: str
    method: Method

    @abc.abstractmethod
    def start_login(self, callback_url: str) -> LoginStart:
        """Build the upstream authorization request."""

    @abc.abstractmethod
    def finish_login(
        self, callback_params: dict[str, str], pending: dict[str, Any]
    ) -> VerifiedIdentity:
        """Check the callback against what start_login kept and return the identity."""
