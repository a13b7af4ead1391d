"""Demo data for `make run`: one customer, its contractor, a confidential and a public
client. Idempotent: a second run changes nothing and prints the same login."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.accounts.services import create_user, find_user_by_email
from idp.models import Client, Customer, CustomerContract
from idp.models.customers import PERSON
from idp.oidc import registry
from idp.security import Passwords
from idp.settings import Settings
from idp.upstream_providers.services import add_provider, find_provider

DEMO_EMAIL = "janis.berzins@example.lv"
DEMO_PASSWORD = "demo-password-2026"  # noqa: S105 (demo mode only; printed at every start)
DEMO_CUSTOMER = "100200300"
PUBLIC_CLIENT_ID = "demo-public"
CONFIDENTIAL_CLIENT_ID = "demo-portal"
# Customers without a portal account, to try registration by e-mail and `idp users invite`.
DEMO_NEW_CUSTOMERS = (
    ("200300400", "Anna", "Liepa", "01019010001", "L-200300400"),
    ("300400500", "Pēteris", "Ozols", "32098765438", "L-300400500"),
)
# The IdP as a client of the DEMO eParaksts simulator, served at {issuer}/demo-eparaksts in
# demo mode (idp/pages.py); the callback is the login pages' /upstream/callback/<provider>.
DEMO_EPARAKSTS_PREFIX = "/demo-eparaksts"
DEMO_EPARAKSTS_CLIENT_ID = "demo-idp"
DEMO_EPARAKSTS_SECRET = "demo-eparaksts-secret-not-for-production"  # noqa: S105 (demo only)
# The example resource servers (examples/), mounted in demo mode at these paths, and the
# audiences of their access tokens; the demo clients may call both.
INVOICE_AUDIENCE = "urn:gas-portal:invoices"
METER_AUDIENCE = "urn:gas-portal:meter-readings"
INVOICE_SERVICE_PREFIX = "/examples/invoices"
METER_SERVICE_PREFIX = "/examples/meters"
DEMO_SCOPES = ["openid", "profile", "email", "phone", "invoices.read", "meter_readings.submit"]


def seed(session: Session, passwords: Passwords, settings: Settings) -> list[str]:
    lines: list[str] = []
    if session.scalar(select(Customer).where(Customer.number == DEMO_CUSTOMER)) is None:
        session.add(
            Customer(
                number=DEMO_CUSTOMER,
                kind="person",
                name="Jānis Bērziņš",
                personal_code="32123456785",
                email=DEMO_EMAIL,
            )
        )
        session.flush()
    for number, given, family, code, contract in DEMO_NEW_CUSTOMERS:
        if session.scalar(select(Customer).where(Customer.number == number)) is None:
            session.add(
                Customer(
                    number=number,
                    kind=PERSON,
                    name=f"{given} {family}",
                    given_name=given,
                    family_name=family,
                    personal_code=code,
                    contracts=[CustomerContract(number=contract)],
                )
            )
    session.flush()
    if find_user_by_email(session, DEMO_EMAIL) is None:
        create_user(
            session,
            passwords,
            email=DEMO_EMAIL,
            name="Jānis Bērziņš",
            password=DEMO_PASSWORD,
            customer_number=DEMO_CUSTOMER,
        )
    callback = f"{settings.issuer}/demo/callback"
    if session.scalar(select(Client).where(Client.client_id == PUBLIC_CLIENT_ID)) is None:
        registry.add_client(
            session,
            name="Demo relying page",
            client_id=PUBLIC_CLIENT_ID,
            auth_method="none",
            redirect_uris=[callback],
            post_logout_redirect_uris=[f"{settings.issuer}/demo/"],
            scopes=DEMO_SCOPES,
            audience=f"{INVOICE_AUDIENCE} {METER_AUDIENCE}",
        )
    if session.scalar(select(Client).where(Client.client_id == CONFIDENTIAL_CLIENT_ID)) is None:
        new = registry.add_client(
            session,
            name="Customer portal (demo)",
            client_id=CONFIDENTIAL_CLIENT_ID,
            redirect_uris=["http://127.0.0.1:8000/callback"],
            first_party=True,
            scopes=DEMO_SCOPES,
            audience=f"{INVOICE_AUDIENCE} {METER_AUDIENCE}",
            grant_types=["authorization_code", "refresh_token", "client_credentials"],
        )
        lines.append(
            f"confidential client {CONFIDENTIAL_CLIENT_ID} secret (shown once): {new.secret}"
        )
    _update_demo_clients(session)
    lines.extend(_seed_upstream_providers(session, settings))
    session.commit()
    number, _given, _family, code, _contract = DEMO_NEW_CUSTOMERS[0]
    lines[:0] = [
        f"demo login: {DEMO_EMAIL} / {DEMO_PASSWORD}",
        f"demo relying page: {settings.issuer}/demo/",
        f"public PKCE client: {PUBLIC_CLIENT_ID}",
        f"register by e-mail as customer {number} with personal code "
        f"{code[:6]}-{code[6:]} (mails: {settings.instance_dir / 'mail'})",
    ]
    return lines


def _update_demo_clients(session: Session) -> None:
    """Demo clients seeded by an older version get the domain scopes and the example
    services' audiences (demo data only: an admin's clients are never touched)."""
    for row in session.scalars(
        select(Client).where(Client.client_id.in_([PUBLIC_CLIENT_ID, CONFIDENTIAL_CLIENT_ID]))
    ):
        row.allowed_scopes = list(DEMO_SCOPES)
        row.audience = f"{INVOICE_AUDIENCE} {METER_AUDIENCE}"


def _seed_upstream_providers(session: Session, settings: Settings) -> list[str]:
    """The DEMO upstreams (simulators mounted in demo mode by idp/pages.py), if missing."""
    from idp.demo import bank_sim

    lines = []
    if find_provider(session, "demo-bank") is None:
        add_provider(
            session,
            settings,
            name="demo-bank",
            kind="oidc",
            method="bank",
            display_name="DEMO bank",
            base_url=bank_sim.issuer_for(settings.issuer),
            client_id=bank_sim.CLIENT_ID,
            client_secret=bank_sim.CLIENT_SECRET,
            options={
                "personal_code_claim": "personal_code",
                "acr_map": {bank_sim.ACR: "substantial"},
            },
        )
        lines.append(f"upstream provider demo-bank: {bank_sim.issuer_for(settings.issuer)}")
    if find_provider(session, "demo-eparaksts") is None:
        add_provider(
            session,
            settings,
            name="demo-eparaksts",
            kind="eparaksts",
            method="esignature",
            display_name="DEMO eParaksts",
            base_url=settings.issuer + DEMO_EPARAKSTS_PREFIX,
            client_id=DEMO_EPARAKSTS_CLIENT_ID,
            client_secret=DEMO_EPARAKSTS_SECRET,
            options={},
        )
        lines.append(f"upstream provider demo-eparaksts: {settings.issuer}{DEMO_EPARAKSTS_PREFIX}")
    return lines


def eparaksts_simulator(settings: Settings) -> Flask:
    """The DEMO eParaksts simulator, knowing the IdP as the client seeded above."""
    from idp.demo import eparaksts_sim

    callback = f"{settings.issuer}/upstream/callback/demo-eparaksts"
    return eparaksts_sim.create_simulator(
        {DEMO_EPARAKSTS_CLIENT_ID: eparaksts_sim.SimClient(DEMO_EPARAKSTS_SECRET, (callback,))},
        require_pkce=True,
    )


def example_services(issuer: str) -> dict[str, Flask]:
    """The example resource servers (examples/), mounted in demo mode so that a newcomer
    sees them answer without starting anything else. They fetch the JWKS over HTTP like
    any relying app (python -m examples.invoice_service runs one on its own)."""
    from examples import invoice_service, meter_service

    jwks_url = f"{issuer}/jwks.json"
    return {
        INVOICE_SERVICE_PREFIX: invoice_service.create_app(issuer, INVOICE_AUDIENCE, jwks_url),
        METER_SERVICE_PREFIX: meter_service.create_app(issuer, METER_AUDIENCE, jwks_url),
    }
