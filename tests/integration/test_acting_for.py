"""Acting for a customer (docs/domain.md, "What relying apps receive"): the customer is chosen
after login, bound to the code, the tokens, the refresh-token family and the consent; the
scopes are cut to the membership's rights; a removed or expired membership stops working at
once."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from idp.db import utcnow
from idp.models import Customer, Membership, User
from idp.token_families import revoke_customer_families
from tests.conftest import csrf_token, query
from tests.integration.conftest import (
    bearer,
    decode,
    get_code,
    introspect,
    redeem,
    refresh,
)

DOMAIN_SCOPES = "openid profile invoices.read meter_readings.submit"


@pytest.fixture
def three_customers(db: Session, user: User, customer: Customer) -> dict[str, Customer]:
    """The user is contractor of `customer` (fixture), authorised person of a company and
    an additional user of a neighbour who let them only view invoices."""
    company = Customer(
        number="400500600", kind="company", name="Gāze SIA", registration_number="40003000001"
    )
    neighbour = Customer(
        number="200300400", kind="person", name="Anna Kalniņa", personal_code="01019010001"
    )
    db.add_all([company, neighbour])
    db.flush()
    db.add_all(
        [
            Membership(
                user_id=user.id,
                customer_id=company.id,
                role="authorised_person",
                valid_until=utcnow() + dt.timedelta(days=30),
                evidence="APP-1",
            ),
            Membership(
                user_id=user.id,
                customer_id=neighbour.id,
                role="additional_user",
                rights=["invoices.read"],
            ),
        ]
    )
    db.commit()
    return {"own": customer, "company": company, "neighbour": neighbour}


@pytest.fixture
def domain_client(make_client):
    return make_client(
        name="Invoice app",
        first_party=True,
        scopes=["openid", "profile", "email", "invoices.read", "meter_readings.submit"],
        audience="urn:gas-portal:invoices urn:gas-portal:meter-readings",
        grant_types=["authorization_code", "refresh_token"],
    )


def _tokens(client, browser, rp, act_for: int | None, **extra: str) -> dict[str, Any]:
    from tests.conftest import auth_params

    params, verifier = auth_params(rp, **extra)
    response = browser.authorize(params, act_for=act_for)
    assert response.status_code == 302, response.get_data(as_text=True)
    answer = query(response.headers["Location"])
    assert "code" in answer, answer
    token = redeem(client, rp, answer["code"], verifier)
    assert token.status_code == 200, token.get_data(as_text=True)
    return token.get_json()


def _claims(client, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    id_token = dict(decode(client, body["id_token"], "RS256").claims)
    access = dict(decode(client, body["access_token"], "ES256").claims)
    return id_token, access


def test_one_membership_needs_no_choice(client, browser, user, customer, domain_client):
    body = _tokens(client, browser, domain_client, None, scope=DOMAIN_SCOPES)
    id_token, access = _claims(client, body)
    expected_customer = {"id": customer.id, "number": "100200300", "name": "Jānis Bērziņš"}
    assert id_token["customer"] == access["customer"] == expected_customer
    assert id_token["role"] == access["role"] == "contractor"
    assert id_token["rights"] == ["invoices.read", "meter_readings.submit", "users.manage"]
    assert "rights" not in access
    assert body["scope"] == access["scope"] == DOMAIN_SCOPES
    # Several audiences: the invoice and the meter-reading services.
    assert access["aud"] == ["urn:gas-portal:invoices", "urn:gas-portal:meter-readings"]


def test_the_person_with_three_memberships_chooses_each_in_turn(
    client, browser, db, user, three_customers, domain_client
):
    expected = {
        "own": (
            "contractor",
            ["invoices.read", "meter_readings.submit", "users.manage"],
            DOMAIN_SCOPES,
        ),
        "company": (
            "authorised_person",
            ["invoices.read", "meter_readings.submit", "users.manage"],
            DOMAIN_SCOPES,
        ),
        # Asked for both domain scopes; the membership allows only viewing invoices.
        "neighbour": ("additional_user", ["invoices.read"], "openid profile invoices.read"),
    }
    # The first login asks; later ones in the same browser ask again with select_account.
    first = client.get("/authorize", query_string=_params(domain_client))
    login = browser.login(interaction=query(first.headers["Location"])["interaction"])
    page = client.get(client.get(login.headers["Location"]).headers["Location"])
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for name in (
        "Jānis Bērziņš",
        "Gāze SIA",
        "Anna Kalniņa",
        "100200300",
        "400500600",
        "200300400",
        "Account holder",
        "Authorised person",
        "Additional user",
    ):
        assert name in html
    for key, (role, rights, scope) in expected.items():
        chosen = three_customers[key]
        body = _tokens(
            client, browser, domain_client, chosen.id, scope=DOMAIN_SCOPES, prompt="select_account"
        )
        id_token, access = _claims(client, body)
        assert id_token["customer"]["number"] == access["customer"]["number"] == chosen.number
        assert id_token["customer"]["name"] == chosen.name
        assert id_token["role"] == access["role"] == role
        assert id_token["rights"] == rights
        assert body["scope"] == access["scope"] == scope
        info = client.get("/userinfo", headers=bearer(body["access_token"])).get_json()
        assert info["customer"]["id"] == chosen.id and info["role"] == role
        # A refresh keeps the customer and the cut scope.
        renewed = refresh(client, domain_client, body["refresh_token"]).get_json()
        assert (
            decode(client, renewed["access_token"], "ES256").claims["customer"]["number"]
            == chosen.number
        )
        assert renewed["scope"] == scope


def _params(rp, **extra: str) -> dict[str, str]:
    from tests.conftest import auth_params

    params, _verifier = auth_params(rp, scope=DOMAIN_SCOPES, **extra)
    return params


def test_silent_login_reuses_the_choice_or_asks_for_one(
    client, browser, user, three_customers, domain_client
):
    browser.login()
    silent = client.get("/authorize", query_string=_params(domain_client, prompt="none"))
    assert query(silent.headers["Location"])["error"] == "account_selection_required"
    company = three_customers["company"]
    _tokens(client, browser, domain_client, company.id, scope=DOMAIN_SCOPES)
    silent = client.get("/authorize", query_string=_params(domain_client, prompt="none"))
    assert "code" in query(silent.headers["Location"])


def test_a_tampered_choice_is_refused(client, browser, db, user, three_customers, domain_client):
    stranger = Customer(
        number="900900900", kind="person", name="Svešinieks", personal_code="32000000001"
    )
    db.add(stranger)
    db.commit()
    stranger_id = stranger.id
    first = client.get("/authorize", query_string=_params(domain_client))
    interaction = query(first.headers["Location"])["interaction"]
    browser.login(interaction=interaction)
    page = client.get("/act-for", query_string={"interaction": interaction})
    token = csrf_token(page.get_data(as_text=True))
    for value in (str(stranger_id), "abc", "", "-1", "9" * 40):
        response = client.post(
            "/act-for", data={"csrf_token": token, "interaction": interaction, "customer": value}
        )
        assert response.status_code == 400, value
        assert "Choose one of the customers" in response.get_data(as_text=True)
    # Without the CSRF token nothing is chosen either.
    assert (
        client.post(
            "/act-for",
            data={"interaction": interaction, "customer": str(three_customers["own"].id)},
        ).status_code
        == 400
    )


def test_removing_a_membership_takes_effect_at_once(
    client, browser, db, user, three_customers, domain_client, confidential_client
):
    neighbour = three_customers["neighbour"]
    body = _tokens(client, browser, domain_client, neighbour.id, scope=DOMAIN_SCOPES)
    db.execute(
        update(Membership).where(Membership.customer_id == neighbour.id).values(state="revoked")
    )
    revoke_customer_families(db, user.id, neighbour.id, "membership_revoked")
    db.commit()
    assert (
        refresh(client, domain_client, body["refresh_token"]).get_json()["error"] == "invalid_grant"
    )
    assert client.get("/userinfo", headers=bearer(body["access_token"])).status_code == 401
    # The next login no longer offers that customer.
    first = client.get("/authorize", query_string=_params(domain_client, prompt="select_account"))
    location = first.headers["Location"]
    page = client.get(location)
    login = client.post(
        "/login",
        data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "interaction": query(location)["interaction"],
            "continue": "1",
        },
    )
    chooser = client.get(client.get(login.headers["Location"]).headers["Location"])
    html = chooser.get_data(as_text=True)
    assert "Gāze SIA" in html and "Anna Kalniņa" not in html


def test_an_authorisation_past_its_end_date_stops_working(
    client, browser, db, user, three_customers, domain_client
):
    company = three_customers["company"]
    body = _tokens(client, browser, domain_client, company.id, scope=DOMAIN_SCOPES)
    # Nobody revoked anything: the end date alone ends it.
    db.execute(
        update(Membership)
        .where(Membership.customer_id == company.id)
        .values(valid_until=utcnow() - dt.timedelta(seconds=1))
    )
    db.commit()
    answer = refresh(client, domain_client, body["refresh_token"])
    assert answer.status_code == 400 and answer.get_json()["error"] == "invalid_grant"
    assert client.get("/userinfo", headers=bearer(body["access_token"])).status_code == 401


def test_introspection_says_inactive_after_removal(
    client, browser, db, user, customer, make_client
):
    rp = make_client(
        name="Portal",
        first_party=True,
        audience="https://api.example.lv",
        scopes=["openid", "invoices.read"],
        grant_types=["authorization_code", "refresh_token"],
    )
    code, verifier, _params_ = get_code(browser, rp, scope="openid invoices.read")
    body = redeem(client, rp, code, verifier).get_json()
    active = introspect(client, rp, body["access_token"])
    assert active["active"] is True and active["role"] == "contractor"
    assert active["customer"]["number"] == "100200300"
    assert introspect(client, rp, body["refresh_token"])["customer"]["number"] == "100200300"
    db.execute(update(Membership).where(Membership.user_id == user.id).values(state="revoked"))
    db.commit()
    assert introspect(client, rp, body["access_token"]) == {"active": False}
    assert introspect(client, rp, body["refresh_token"]) == {"active": False}


def test_no_tampering_yields_a_scope_the_rights_do_not_allow(
    client, browser, db, user, three_customers, domain_client
):
    neighbour = three_customers["neighbour"]
    body = _tokens(client, browser, domain_client, neighbour.id, scope=DOMAIN_SCOPES)
    assert "meter_readings.submit" not in body["scope"].split()
    # Asking for it at refresh is beyond the grant: invalid_scope, nothing issued.
    widened = client.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
            "scope": "openid meter_readings.submit",
        },
        auth=(domain_client.client_id, domain_client.secret),
    )
    assert widened.status_code == 400 and widened.get_json()["error"] == "invalid_scope"


def test_consent_is_remembered_per_customer(
    client, browser, db, user, three_customers, make_client
):
    rp = make_client(name="Third-party app", scopes=["openid", "invoices.read"])
    own, company = three_customers["own"], three_customers["company"]
    params = _params(rp)
    params["scope"] = "openid invoices.read"
    response = browser.authorize(params, act_for=own.id)
    assert "code" in query(response.headers["Location"])
    # The same app for the company: consent is asked again, naming the customer.
    params = dict(params, prompt="select_account")
    first = client.get("/authorize", query_string=params)
    location = first.headers["Location"]
    page = client.get(location)
    interaction = query(location)["interaction"]
    client.post(
        "/login",
        data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "interaction": interaction,
            "continue": "1",
        },
    )
    chooser = client.get("/act-for", query_string={"interaction": interaction})
    chosen = client.post(
        "/act-for",
        data={
            "csrf_token": csrf_token(chooser.get_data(as_text=True)),
            "interaction": interaction,
            "customer": str(company.id),
        },
    )
    consent = client.get(client.get(chosen.headers["Location"]).headers["Location"])
    html = consent.get_data(as_text=True)
    assert consent.status_code == 200 and "Gāze SIA" in html and "See the invoices" in html


def test_consent_given_for_one_customer_does_not_carry_to_another(
    client, browser, db, user, three_customers, make_client
):
    rp = make_client(name="Third-party app", scopes=["openid", "invoices.read"])
    own, company = three_customers["own"], three_customers["company"]
    db.execute(
        update(Membership)
        .where(Membership.customer_id == three_customers["neighbour"].id)
        .values(state="revoked")
    )
    db.commit()
    params = _params(rp)
    params["scope"] = "openid invoices.read"
    first = client.get("/authorize", query_string=params)
    interaction = query(first.headers["Location"])["interaction"]
    browser.login(interaction=interaction)
    chooser = client.get("/act-for", query_string={"interaction": interaction})
    client.post(
        "/act-for",
        data={
            "csrf_token": csrf_token(chooser.get_data(as_text=True)),
            "interaction": interaction,
            "customer": str(company.id),
        },
    )
    consent = client.get("/consent", query_string={"interaction": interaction})
    assert "Gāze SIA" in consent.get_data(as_text=True)
    allowed = client.post(
        "/consent",
        data={
            "csrf_token": csrf_token(consent.get_data(as_text=True)),
            "interaction": interaction,
            "allow": "Allow",
        },
    )
    assert allowed.status_code == 302
    # The company's authorisation is withdrawn between "Allow" and the resumed request.
    db.execute(
        update(Membership).where(Membership.customer_id == company.id).values(state="revoked")
    )
    db.commit()
    resumed = client.get(allowed.headers["Location"])
    # No code for the one customer left (own) on the strength of the company's consent:
    # consent is asked again, for that customer.
    location = resumed.headers["Location"]
    assert location.startswith("/consent"), location
    assert own.name in client.get(location).get_data(as_text=True)


def test_choosing_another_customer_after_allow_asks_for_consent_again(
    client, browser, db, user, three_customers, make_client
):
    rp = make_client(name="Third-party app", scopes=["openid", "invoices.read"])
    own, company = three_customers["own"], three_customers["company"]
    params = _params(rp)
    params["scope"] = "openid invoices.read"
    first = client.get("/authorize", query_string=params)
    interaction = query(first.headers["Location"])["interaction"]
    browser.login(interaction=interaction)
    chooser = client.get("/act-for", query_string={"interaction": interaction})
    token = csrf_token(chooser.get_data(as_text=True))
    client.post(
        "/act-for", data={"csrf_token": token, "interaction": interaction, "customer": str(own.id)}
    )
    consent = client.get("/consent", query_string={"interaction": interaction})
    allowed = client.post(
        "/consent",
        data={
            "csrf_token": csrf_token(consent.get_data(as_text=True)),
            "interaction": interaction,
            "allow": "Allow",
        },
    )
    assert allowed.status_code == 302
    # Before the redirect is followed, the same request is switched to the company.
    switched = client.post(
        "/act-for",
        data={"csrf_token": token, "interaction": interaction, "customer": str(company.id)},
    )
    resumed = client.get(switched.headers["Location"])
    location = resumed.headers["Location"]
    assert location.startswith("/consent"), location
    assert company.name in client.get(location).get_data(as_text=True)
