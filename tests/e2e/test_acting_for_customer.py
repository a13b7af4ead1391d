"""The README walkthrough of issue 5 over real HTTP, against a demo-mode server (granian):
the demo contractor adds a user who may only view invoices; that person activates the
invitation through the mail (a real SMTP server), the DEMO bank and the contact form; the
invoice service (an example resource server, mounted in demo mode) answers and the meter
service refuses, even though the client asked for both scopes; when the contractor removes
the user, their next refresh fails."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import pytest
import requests

from tests.conftest import Mailbox, SmtpServer, csrf_token, pkce_pair, query
from tests.e2e.conftest import HTTP_TIMEOUT, ServerProcess, demo_deployment, run_idp

pytestmark = pytest.mark.e2e

DEMO_EMAIL, DEMO_PASSWORD = "janis.berzins@example.lv", "demo-password-2026"
ILZE_CODE = "15058510006"  # a person the DEMO bank knows; nobody's customer
ILZE_PASSWORD = "quiet harbour lantern 2026"


class Deployment:
    def __init__(self, server: ServerProcess, env: dict[str, str]) -> None:
        self.server, self.env, self.issuer = server, env, server.issuer
        app = run_idp(
            env,
            "clients",
            "add",
            "--name",
            "Invoice portal (e2e)",
            "--redirect-uri",
            "http://127.0.0.1/acting-e2e/cb",
            "--first-party",
            "--auth-method",
            "client_secret_basic",
            "--scope",
            "openid,profile,invoices.read,meter_readings.submit",
            "--audience",
            "urn:gas-portal:invoices urn:gas-portal:meter-readings",
            "--json",
        )
        self.client_id, self.secret = app["client_id"], app["client_secret"]
        self.redirect_uri = app["redirect_uris"][0]


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, smtp_server: SmtpServer
) -> Iterator[Deployment]:
    with demo_deployment(
        tmp_path_factory.mktemp("acting-e2e"), smtp_server, "granian-acting.log"
    ) as (server, env):
        yield Deployment(server, env)


class Browser:
    """One person's browser: cookies, redirects followed inside the IdP only."""

    def __init__(self, deployment: Deployment) -> None:
        self.issuer = deployment.issuer
        self.http = requests.Session()

    def get(self, url: str) -> requests.Response:
        return self.http.get(
            urljoin(self.issuer + "/", url), allow_redirects=False, timeout=HTTP_TIMEOUT
        )

    def follow(self, response: requests.Response) -> requests.Response:
        while response.status_code in (302, 303):
            location = urljoin(response.url, response.headers["Location"])
            if not location.startswith(self.issuer + "/"):
                break
            response = self.get(location)
        return response

    def submit(self, url: str, **data: Any) -> requests.Response:
        """Open the page and post its form (with its CSRF token) back to the same URL."""
        page = self.get(url)
        assert page.status_code == 200, page.text[:2000]
        return self.http.post(
            page.url,
            data={"csrf_token": csrf_token(page.text), **data},
            allow_redirects=False,
            timeout=HTTP_TIMEOUT,
        )

    def at_the_bank(self, to_bank: requests.Response, personal_code: str) -> requests.Response:
        bank_page = self.follow(to_bank) if to_bank.status_code != 200 else to_bank
        assert "DEMO bank" in bank_page.text, bank_page.text[:2000]
        hidden = dict(
            re.findall(r'name="(csrf_token|request)"[^>]*value="([^"]*)"', bank_page.text)
        )
        answer = self.http.post(
            urljoin(bank_page.url, urlsplit(bank_page.url).path),
            data={**hidden, "person": personal_code},
            allow_redirects=False,
            timeout=HTTP_TIMEOUT,
        )
        assert answer.status_code == 302, answer.text[:2000]
        return self.get(answer.headers["Location"])


def _tokens(deployment: Deployment, browser: Browser) -> dict[str, Any]:
    """The invoice portal logs the browser's person in (already signed in at the IdP) and
    asks for both domain scopes."""
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": deployment.client_id,
        "redirect_uri": deployment.redirect_uri,
        "scope": "openid profile invoices.read meter_readings.submit",
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    answer = browser.follow(browser.get(f"/authorize?{urlencode(params)}"))
    location = answer.headers["Location"]
    assert location.startswith(deployment.redirect_uri), location
    token = requests.post(
        deployment.issuer + "/token",
        timeout=HTTP_TIMEOUT,
        auth=(deployment.client_id, deployment.secret),
        data={
            "grant_type": "authorization_code",
            "code": query(location)["code"],
            "redirect_uri": deployment.redirect_uri,
            "code_verifier": verifier,
        },
    )
    assert token.status_code == 200, token.text
    body: dict[str, Any] = token.json()
    return body


def test_the_readme_walkthrough(deployment: Deployment, mailbox: Mailbox) -> None:
    issuer = deployment.issuer
    # 1. The demo contractor logs in and adds Ilze with only "view invoices".
    contractor = Browser(deployment)
    assert contractor.submit("/login", email=DEMO_EMAIL, password=DEMO_PASSWORD).status_code == 302
    users = contractor.follow(contractor.get("/users"))
    assert users.url.endswith("/users/100200300") and "Jānis Bērziņš" in users.text
    email = f"ilze.{secrets.token_hex(3)}@example.lv"
    added = contractor.submit(
        "/users/100200300/add",
        name="Ilze Kalniņa",
        email=email,
        personal_code="150585-10006",
        rights=["invoices.read"],
    )
    assert added.status_code == 303, added.text[:2000]

    # 2. Ilze opens the mail, chooses a password, proves who she is at the DEMO bank,
    #    confirms the contact form: only then is she an active user of the customer.
    link = mailbox.link_for(email, timeout=20)
    ilze = Browser(deployment)
    page = ilze.get(link)
    assert page.status_code == 200 and "View invoices" in page.text
    to_bank = ilze.http.post(
        link,
        timeout=HTTP_TIMEOUT,
        allow_redirects=False,
        data={
            "csrf_token": csrf_token(page.text),
            "password": ILZE_PASSWORD,
            "password_confirm": ILZE_PASSWORD,
            "provider": "demo-bank",
        },
    )
    assert to_bank.status_code == 303, to_bank.text[:2000]
    back = ilze.at_the_bank(to_bank, ILZE_CODE)
    assert back.status_code == 303 and back.headers["Location"].endswith("/contact")
    contact = ilze.get("/contact")
    confirmed = ilze.http.post(
        contact.url,
        allow_redirects=False,
        timeout=HTTP_TIMEOUT,
        data={
            "csrf_token": csrf_token(contact.text),
            "email": email,
            "phone": "+371 2000 0009",
            "correct": "y",
        },
    )
    assert confirmed.status_code == 303
    assert "You can now act for" in ilze.follow(confirmed).text
    listed = run_idp(deployment.env, "delegation", "list", "--customer", "100200300", "--json")
    assert any(row["email"] == email and row["state"] == "active" for row in listed)

    # 3. Her tokens: the client asked for both scopes; she gets invoices.read only.
    tokens = _tokens(deployment, ilze)
    assert tokens["scope"].split() == ["openid", "profile", "invoices.read"]
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    invoices = requests.get(
        f"{issuer}/examples/invoices/invoices", headers=bearer, timeout=HTTP_TIMEOUT
    )
    assert invoices.status_code == 200, invoices.text
    assert invoices.json()["customer"]["number"] == "100200300"
    assert invoices.json()["invoices"]
    reading = requests.post(
        f"{issuer}/examples/meters/readings",
        headers=bearer,
        data={"meter": "GM-1001", "value": "1234.5"},
        timeout=HTTP_TIMEOUT,
    )
    assert reading.status_code == 403
    assert 'error="insufficient_scope"' in reading.headers["WWW-Authenticate"]

    # The contractor may report a reading (all rights) through the same client.
    contractor_tokens = _tokens(deployment, contractor)
    assert "meter_readings.submit" in contractor_tokens["scope"].split()
    own = requests.post(
        f"{issuer}/examples/meters/readings",
        timeout=HTTP_TIMEOUT,
        headers={"Authorization": f"Bearer {contractor_tokens['access_token']}"},
        data={"meter": "GM-1001", "value": "1234.5"},
    )
    assert own.status_code == 201, own.text

    # 4. Ilze cannot open the USERS section; the contractor removes her; her refresh fails.
    assert ilze.get("/users/100200300").status_code == 403
    membership_id = re.search(
        r"/users/100200300/(\d+)/remove", contractor.get("/users/100200300").text
    )
    assert membership_id, "a remove link for the additional user"
    removed = contractor.submit(f"/users/100200300/{membership_id.group(1)}/remove")
    assert removed.status_code == 303, removed.text[:2000]
    refreshed = requests.post(
        issuer + "/token",
        timeout=HTTP_TIMEOUT,
        auth=(deployment.client_id, deployment.secret),
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
    )
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
    introspected = requests.post(
        issuer + "/introspect",
        timeout=HTTP_TIMEOUT,
        auth=(deployment.client_id, deployment.secret),
        data={"token": tokens["access_token"]},
    )
    assert introspected.json() == {"active": False}
    history = contractor.get("/users/100200300/history")
    assert history.status_code == 200 and email in history.text
