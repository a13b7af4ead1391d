"""Each way into an account — registration by e-mail, an admin's invitation, a password
reset — over real HTTP against the running IdP, with the mail read from the real SMTP
server, and each ending in a login by a real OIDC client library."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import Mailbox, csrf_token, query
from tests.e2e.conftest import HTTP_TIMEOUT, Browser, LiveServer, Person, run_idp
from tests.e2e.test_login_end_to_end import RelyingParty

pytestmark = pytest.mark.e2e

PASSWORD = "river copper lantern meadow"
CSV_HEADER = (
    "customer_number,kind,given_name,family_name,company_name,personal_code,"
    "registration_number,contract_numbers,email,phone\n"
)


def import_customer(live_server: LiveServer, tmp_path: Path, number: str, code: str) -> None:
    """The customer data, loaded the way an admin loads it."""
    path = tmp_path / f"customers-{number}.csv"
    path.write_text(CSV_HEADER + f"{number},person,Līga,Ozoliņa,,{code},,,,\n", encoding="utf-8")
    summary = run_idp(live_server.env, "customers", "import", str(path), "--json")
    assert json.dumps(summary)  # parsed JSON: the import succeeded


def submit(http: requests.Session, url: str, fields: dict[str, str]) -> requests.Response:
    """Open a page and send its form, as a browser does (CSRF token from the page)."""
    page = http.get(url, timeout=HTTP_TIMEOUT)
    assert page.status_code == 200, page.text[:2000]
    target = urlsplit(url)._replace(query="").geturl() if "?" not in url else url
    return http.post(
        target,
        data={"csrf_token": csrf_token(page.text), **fields},
        allow_redirects=False,
        timeout=HTTP_TIMEOUT,
    )


def login_with_client(
    live_server: LiveServer,
    who: Person,
    relying_party: Callable[[Any], RelyingParty],
    browser_for: Callable[[Person], Browser],
) -> dict[str, Any]:
    rp = relying_party(live_server.confidential)
    token, claims = rp.login(browser_for(who))
    assert claims["sub"] == who.sub and claims["email"].lower() == who.email.lower()
    return token


@pytest.fixture
def relying_party(live_server: LiveServer) -> Any:
    made: list[RelyingParty] = []

    def factory(app: Any) -> RelyingParty:
        made.append(RelyingParty(live_server.issuer, app))
        return made[-1]

    yield factory
    for rp in made:
        rp.close()


def test_register_by_email_then_log_in_with_an_oidc_client(
    live_server: LiveServer,
    tmp_path: Path,
    mailbox: Mailbox,
    relying_party: Any,
    browser_for: Callable[[Person], Browser],
) -> None:
    number = str(700000000 + secrets.randbelow(99999999))
    import_customer(live_server, tmp_path, number, "32123456785")
    email = f"Liga.{secrets.token_hex(3)}@Example.lv"
    http = requests.Session()
    sent = submit(
        http,
        live_server.base_url + "/register",
        {
            "customer_number": number,
            "identifier": "321234-56785",
            "name": "",
            "email": email,
            "password": PASSWORD,
            "password_confirm": PASSWORD,
            "interaction": "",
        },
    )
    assert sent.status_code == 200 and "Check your mailbox" in sent.text

    link = mailbox.link_for(email, timeout=20)
    assert link.startswith(live_server.issuer + "/register/confirm/")
    confirmed = submit(http, link, {})
    assert confirmed.status_code == 303
    assert query(confirmed.headers["Location"])["notice"] == "confirmed"

    user = run_idp(live_server.env, "customers", "show", number, "--json")
    assert email.lower() in json.dumps(user).lower()
    sub = _subject_of(live_server, email)
    login_with_client(live_server, Person(email, PASSWORD, sub), relying_party, browser_for)


def test_an_invited_person_activates_and_logs_in_with_an_oidc_client(
    live_server: LiveServer,
    tmp_path: Path,
    mailbox: Mailbox,
    relying_party: Any,
    browser_for: Callable[[Person], Browser],
) -> None:
    number = str(800000000 + secrets.randbelow(99999999))
    import_customer(live_server, tmp_path, number, "010190-10001")
    email = f"invited.{secrets.token_hex(3)}@example.lv"
    invited = live_server.idp(
        "users",
        "invite",
        "--customer",
        number,
        "--email",
        email,
        "--name",
        "Līga Ozoliņa",
        "--expires-in",
        "2h",
    )
    link = mailbox.link_for(email, timeout=20)
    assert link.startswith(live_server.issuer + "/activate/")
    done = submit(requests.Session(), link, {"password": PASSWORD, "password_confirm": PASSWORD})
    assert done.status_code == 303, done.text[:2000]
    login_with_client(
        live_server, Person(email, PASSWORD, invited["sub"]), relying_party, browser_for
    )


def test_a_password_reset_then_log_in_with_an_oidc_client(
    live_server: LiveServer,
    person: Person,
    mailbox: Mailbox,
    relying_party: Any,
    browser_for: Callable[[Person], Browser],
) -> None:
    before = login_with_client(live_server, person, relying_party, browser_for)
    asked = submit(
        requests.Session(),
        live_server.base_url + "/forgot-password",
        {"email": person.email.upper()},
    )
    assert asked.status_code == 200
    link = mailbox.link_for(person.email, timeout=20)
    assert link.startswith(live_server.issuer + "/reset-password/")
    done = submit(requests.Session(), link, {"password": PASSWORD, "password_confirm": PASSWORD})
    assert done.status_code == 303, done.text[:2000]
    # The refresh token from before the reset is dead; the new password logs in.
    rp = relying_party(live_server.confidential)
    stale = requests.post(
        rp.meta["token_endpoint"],
        timeout=HTTP_TIMEOUT,
        auth=live_server.confidential.auth,
        data={"grant_type": "refresh_token", "refresh_token": before["refresh_token"]},
    )
    assert stale.status_code == 400 and stale.json()["error"] == "invalid_grant"
    login_with_client(
        live_server, Person(person.email, PASSWORD, person.sub), relying_party, browser_for
    )


def _subject_of(live_server: LiveServer, email: str) -> str:
    """The `sub` of an account, read from the database the server uses."""
    from sqlalchemy import create_engine, select

    from idp.accounts.services import normalize_email
    from idp.models import User

    engine = create_engine(live_server.database_url)
    try:
        with engine.connect() as conn:
            sub = conn.scalar(select(User.subject).where(User.email == normalize_email(email)))
    finally:
        engine.dispose()
    assert sub
    return str(sub)
