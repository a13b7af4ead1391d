"""Issue 5's scenarios end to end inside one process: the demo IdP served over real HTTP
(its DEMO bank is a real OpenID provider the connector reaches over HTTP), real SMTP, and
the example resource servers validating the IdP's real tokens against its JWKS.

- an authorised person (flow 7, from a signed application at the CLI) reads invoices,
  reports a meter reading and manages users;
- a contractor removes a right and the user's next refresh fails; the next login gets the
  narrower scope.
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import Flask
from sqlalchemy.orm import Session

from examples import invoice_service, meter_service
from idp.demo.seed import DEMO_CUSTOMER, INVOICE_AUDIENCE, METER_AUDIENCE
from tests.conftest import RegisteredClient, auth_params, query
from tests.integration.test_invitation_acceptance import (
    ANNA,
    ANNA_CODE,
    NEW_PASSWORD,
    Person,
    invite,
    membership,
    text,
)

BOTH = "openid profile invoices.read meter_readings.submit"


def portal(make_client) -> RegisteredClient:
    return make_client(
        name="Portal",
        first_party=True,
        scopes=["openid", "profile", "invoices.read", "meter_readings.submit"],
        audience=f"{INVOICE_AUDIENCE} {METER_AUDIENCE}",
        grant_types=["authorization_code", "refresh_token"],
    )


def tokens_for(person: Person, rp: RegisteredClient, scope: str = BOTH) -> dict[str, Any]:
    """The portal logs in the person (already signed in at the IdP) and redeems the code."""
    params, verifier = auth_params(rp, scope=scope)
    answer = person.client.get("/authorize", query_string=params)
    while answer.status_code == 302 and answer.headers["Location"].startswith("/"):
        answer = person.client.get(answer.headers["Location"])
    assert answer.status_code == 302, text(answer)
    code = query(answer.headers["Location"])["code"]
    token = person.client.post(
        "/token",
        auth=(rp.client_id, rp.secret),
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": rp.redirect_uri,
            "code_verifier": verifier,
        },
    )
    assert token.status_code == 200, text(token)
    body: dict[str, Any] = token.get_json()
    return body


def services(demo_app: Flask) -> tuple[Any, Any]:
    issuer = demo_app.config["IDP_SETTINGS"].issuer
    invoices = invoice_service.create_app(issuer, INVOICE_AUDIENCE, f"{issuer}/jwks.json")
    meters = meter_service.create_app(issuer, METER_AUDIENCE, f"{issuer}/jwks.json")
    return invoices.test_client(), meters.test_client()


def accept(link: str, demo_app: Flask) -> Person:
    """The invited person: password, the DEMO bank as Anna, the contact form."""
    anna = Person(demo_app)
    to_bank = anna.post_page(
        link, password=NEW_PASSWORD, password_confirm=NEW_PASSWORD, provider="demo-bank"
    )
    back = anna.at_the_bank(to_bank, ANNA_CODE)
    assert back.status_code == 303 and back.headers["Location"].endswith("/contact")
    assert anna.confirm_contact().status_code == 303
    return anna


def test_an_authorised_person_reads_invoices_reports_readings_and_manages_users(
    demo: Flask, db: Session, mailbox: Any, make_client
) -> None:
    added = demo.test_cli_runner().invoke(
        args=[
            "delegation",
            "add-authorised",
            "--customer",
            DEMO_CUSTOMER,
            "--email",
            ANNA,
            "--name",
            "Anna Liepa",
            "--until",
            "2099-12-31",
            "--evidence",
            "Application 2026/77",
        ]
    )
    assert added.exit_code == 0, added.output
    anna = accept(str(mailbox.link_for(ANNA, timeout=20)), demo)
    row = membership(db, ANNA)
    assert (row.role, row.state) == ("authorised_person", "active")

    rp = portal(make_client)
    body = tokens_for(anna, rp)
    assert body["scope"] == BOTH  # everything the contractor has
    invoices, meters = services(demo)
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    listed = invoices.get("/invoices", headers=bearer)
    assert listed.status_code == 200 and listed.get_json()["customer"]["number"] == DEMO_CUSTOMER
    reading = meters.post(
        "/readings", headers=bearer, data={"meter": "GM-1001", "value": "1500.25"}
    )
    assert reading.status_code == 201, reading.get_data(as_text=True)
    # Managing users: the USERS section is hers too.
    assert anna.get(f"/users/{DEMO_CUSTOMER}").status_code == 200
    email = f"guest.{secrets.token_hex(3)}@example.lv"
    answer = anna.post_page(
        f"/users/{DEMO_CUSTOMER}/add",
        name="Guest",
        email=email,
        personal_code="",
        rights=["invoices.read"],
    )
    assert answer.status_code == 303, text(answer)
    db.commit()
    assert mailbox.link_for(email, timeout=20)


def test_removing_a_right_stops_the_next_refresh(
    demo: Flask, db: Session, mailbox: Any, make_client
) -> None:
    contractor = Person(demo)
    contractor.log_in()
    link = invite(contractor, db, mailbox, rights=("invoices.read", "meter_readings.submit"))
    anna = accept(link, demo)
    rp = portal(make_client)
    body = tokens_for(anna, rp)
    assert body["scope"] == BOTH

    row = membership(db, ANNA)
    changed = contractor.post_page(
        f"/users/{DEMO_CUSTOMER}/{row.id}/rights", rights=["invoices.read"]
    )
    assert changed.status_code == 303, text(changed)
    refreshed = anna.client.post(
        "/token",
        auth=(rp.client_id, rp.secret),
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
    )
    assert refreshed.status_code == 400 and refreshed.get_json()["error"] == "invalid_grant"

    # The next login gets what is left; the meter service refuses it.
    again = tokens_for(anna, rp)
    assert again["scope"] == "openid profile invoices.read"
    _invoices, meters = services(demo)
    refused = meters.post(
        "/readings",
        data={"meter": "GM-1001", "value": "1"},
        headers={"Authorization": f"Bearer {again['access_token']}"},
    )
    assert refused.status_code == 403
    assert 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]
