"""Log in and register "by internet bank" over real HTTP, as a newcomer does after
`make run`: a demo-mode server whose DEMO bank (idp/demo/bank_sim.py, a real OpenID
provider mounted in the same process) is reached by the IdP's generic OIDC connector over
HTTP; a relying app then gets an ID token whose acr/amr tell how the person logged in."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import pytest
import requests

from tests.conftest import Mailbox, SmtpServer, csrf_token, pkce_pair, query
from tests.e2e.conftest import (
    HTTP_TIMEOUT,
    ServerProcess,
    demo_deployment,
    run_idp,
    start_server,
)

pytestmark = pytest.mark.e2e


class DemoDeployment:
    def __init__(self, server: ServerProcess, env: dict[str, str]) -> None:
        self.server = server
        self.env = env
        self.issuer = server.issuer
        clients = run_idp(
            env,
            "clients",
            "add",
            "--name",
            "Portal (bank e2e)",
            "--redirect-uri",
            "http://127.0.0.1/bank-e2e/cb",
            "--first-party",
            "--auth-method",
            "client_secret_basic",
            "--scope",
            "openid,profile,email",
            "--json",
        )
        self.client_id = clients["client_id"]
        self.client_secret = clients["client_secret"]
        self.redirect_uri = clients["redirect_uris"][0]


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory, smtp_server: SmtpServer
) -> Iterator[DemoDeployment]:
    with demo_deployment(tmp_path_factory.mktemp("bank-e2e"), smtp_server, "granian-demo.log") as (
        server,
        env,
    ):
        yield DemoDeployment(server, env)


class Person:
    """A browser: follows redirects inside the IdP and the DEMO bank, stops at the app."""

    def __init__(self, demo: DemoDeployment) -> None:
        self.demo = demo
        self.http = requests.Session()

    def get(self, url: str) -> requests.Response:
        return self.http.get(url, allow_redirects=False, timeout=HTTP_TIMEOUT)

    def follow(self, response: requests.Response) -> requests.Response:
        while response.status_code in (302, 303):
            location = urljoin(response.url, response.headers["Location"])
            if not location.startswith(self.demo.issuer + "/"):
                break
            response = self.get(location)
        return response

    def bank_login(self, login_page: requests.Response, personal_code: str) -> requests.Response:
        """Press the bank button on the login page, pick the demo person at the bank."""
        assert "DEMO bank" in login_page.text, login_page.text[:3000]
        form = re.search(
            r'<form method="post" action="(/login/upstream)".*?</form>', login_page.text, re.S
        )
        assert form, "no bank button on the login page"
        fields = dict(re.findall(r'name="(\w+)"[^>]*value="([^"]*)"', form.group(0)))
        to_bank = self.http.post(
            self.demo.issuer + "/login/upstream",
            data=fields,
            allow_redirects=False,
            timeout=HTTP_TIMEOUT,
        )
        assert to_bank.status_code == 303, to_bank.text[:2000]
        bank_page = self.get(to_bank.headers["Location"])
        assert bank_page.status_code == 200 and "DEMO bank" in bank_page.text
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
        return self.follow(self.get(answer.headers["Location"]))


def authorize_url(demo: DemoDeployment, **extra: str) -> tuple[str, str, str]:
    verifier, challenge = pkce_pair()
    nonce = secrets.token_urlsafe(8)
    params = {
        "response_type": "code",
        "client_id": demo.client_id,
        "redirect_uri": demo.redirect_uri,
        "scope": "openid profile email",
        "state": "s",
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return f"{demo.issuer}/authorize?{urlencode(params)}", verifier, nonce


def redeem(demo: DemoDeployment, callback: str, verifier: str) -> dict[str, Any]:
    code = query(callback)["code"]
    response = requests.post(
        demo.issuer + "/token",
        auth=(demo.client_id, demo.client_secret),
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": demo.redirect_uri,
            "code_verifier": verifier,
        },
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def id_token_claims(demo: DemoDeployment, token: dict[str, Any], nonce: str) -> dict[str, Any]:
    from tests.e2e.conftest import verify_id_token

    jwks = requests.get(demo.issuer + "/jwks.json", timeout=HTTP_TIMEOUT).json()
    return verify_id_token(
        token["id_token"],
        jwks,
        issuer=demo.issuer,
        client_id=demo.client_id,
        nonce=nonce,
        access_token=token["access_token"],
    )


def test_a_known_person_logs_in_by_bank_and_the_token_says_so(demo: DemoDeployment) -> None:
    # The demo contractor (registered by e-mail and password) logs in by bank: linked on the
    # verified personal code of their customer, never on the e-mail address.
    person = Person(demo)
    url, verifier, nonce = authorize_url(demo)
    login_page = person.follow(person.get(url))
    callback = person.bank_login(login_page, "32123456785")
    assert callback.status_code in (302, 303)
    location = callback.headers["Location"]
    assert location.startswith(demo.redirect_uri), location
    claims = id_token_claims(demo, redeem(demo, location, verifier), nonce)
    assert claims["acr"] == "substantial"
    assert claims["amr"] == ["ext", "bank"]
    assert claims["email"] == "janis.berzins@example.lv"
    assert "personal_code" not in claims


def test_a_customer_without_an_account_registers_by_bank(
    demo: DemoDeployment, mailbox: Mailbox
) -> None:
    person = Person(demo)
    url, verifier, nonce = authorize_url(demo)
    login_page = person.follow(person.get(url))
    form_page = person.bank_login(login_page, "01019010001")  # Anna Liepa, customer 200300400
    assert (
        form_page.status_code == 200
        and "Your bank confirmed that you are Anna Liepa" in form_page.text
    ), form_page.text[:3000]
    email = f"anna.{secrets.token_hex(3)}@example.lv"
    sent = person.http.post(
        form_page.url,
        timeout=HTTP_TIMEOUT,
        data={"csrf_token": csrf_token(form_page.text), "email": email, "phone": "+371 2000 0001"},
    )
    assert sent.status_code == 200 and "Check your mailbox" in sent.text

    link = mailbox.link_for(email, timeout=20)
    page = person.get(link)
    done = person.http.post(
        link,
        data={"csrf_token": csrf_token(page.text)},
        allow_redirects=False,
        timeout=HTTP_TIMEOUT,
    )
    assert done.status_code == 303

    # Active now: the next bank login goes straight through to the app.
    url, verifier, nonce = authorize_url(demo)
    again = Person(demo)
    callback = again.bank_login(again.follow(again.get(url)), "01019010001")
    claims = id_token_claims(demo, redeem(demo, callback.headers["Location"], verifier), nonce)
    assert claims["email"] == email and claims["acr"] == "substantial"


def test_cancelling_at_the_bank_returns_to_the_login_page(demo: DemoDeployment) -> None:
    person = Person(demo)
    callback = _to_the_bank_and_back(person, demo, "", cancel=True)
    back = person.follow(person.get(callback))
    assert back.status_code == 200 and "was cancelled" in back.text


def test_a_replayed_callback_is_refused(demo: DemoDeployment) -> None:
    person = Person(demo)
    callback_url = _to_the_bank_and_back(person, demo, "32098765438")
    first = person.get(callback_url)
    assert first.status_code in (302, 303)
    replay = requests.get(callback_url, allow_redirects=False, timeout=HTTP_TIMEOUT)
    assert replay.status_code == 400 and "Start the login again" in replay.text


def _to_the_bank_and_back(
    person: Person, demo: DemoDeployment, personal_code: str, cancel: bool = False
) -> str:
    """Start a bank login and pick the person (or cancel) at the bank; the callback URL,
    not opened."""
    url, _, _ = authorize_url(demo)
    login_page = person.follow(person.get(url))
    form = re.search(
        r'<form method="post" action="(/login/upstream)".*?</form>', login_page.text, re.S
    )
    assert form
    fields = dict(re.findall(r'name="(\w+)"[^>]*value="([^"]*)"', form.group(0)))
    to_bank = person.http.post(
        demo.issuer + "/login/upstream", data=fields, allow_redirects=False, timeout=HTTP_TIMEOUT
    )
    bank_page = person.get(to_bank.headers["Location"])
    hidden = dict(re.findall(r'name="(csrf_token|request)"[^>]*value="([^"]*)"', bank_page.text))
    choice = {"cancel": "1"} if cancel else {"person": personal_code}
    answer = person.http.post(
        urljoin(bank_page.url, urlsplit(bank_page.url).path),
        data={**hidden, **choice},
        allow_redirects=False,
        timeout=HTTP_TIMEOUT,
    )
    callback: str = answer.headers["Location"]
    assert callback.startswith(demo.issuer + "/upstream/callback/")
    return callback


def test_the_callback_may_arrive_on_another_instance_as_a_cross_site_post(
    demo: DemoDeployment, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The state is found in the database: a second app instance finishes the login, and a
    form_post carrying only the browser-binding cookie (a cross-site POST carries no Lax
    cookie; an https issuer sets the binding SameSite=None) works as well. Without it (the
    login planted in another browser) nobody is logged in."""
    second = start_server(
        demo.env, tmp_path_factory.mktemp("second") / "granian.log", issuer=demo.issuer
    )
    try:
        planted = _to_the_bank_and_back(Person(demo), demo, "32123456785")
        refused = requests.post(
            second.base_url + urlsplit(planted).path,
            data=query(planted),
            allow_redirects=False,
            timeout=HTTP_TIMEOUT,
        )  # no cookies: another browser
        assert refused.status_code == 400 and "idp_session" not in refused.cookies
        assert "Start the login again" in refused.text

        person = Person(demo)
        callback = _to_the_bank_and_back(person, demo, "32123456785")
        parts = urlsplit(callback)
        binding = {
            "idp_upstream": person.http.cookies.get("idp_upstream", path="/upstream/callback")
        }
        answer = requests.post(
            second.base_url + parts.path,
            data=query(callback),
            cookies=binding,
            allow_redirects=False,
            timeout=HTTP_TIMEOUT,
        )
        assert answer.status_code == 303, answer.text[:2000]
        assert answer.headers["Location"].startswith("/authorize/resume")
        assert "idp_session" in answer.cookies
    finally:
        second.stop()


def test_step_up_from_a_password_session_to_the_bank(demo: DemoDeployment) -> None:
    person = Person(demo)
    # A password login first (acr "low") ...
    url, verifier, nonce = authorize_url(demo)
    page = person.follow(person.get(url))
    logged_in = person.http.post(
        demo.issuer + "/login",
        allow_redirects=False,
        timeout=HTTP_TIMEOUT,
        data={
            "csrf_token": csrf_token(page.text),
            "email": "janis.berzins@example.lv",
            "password": "demo-password-2026",
            "interaction": query(page.url)["interaction"],
        },
    )
    callback = person.follow(person.get(urljoin(demo.issuer, logged_in.headers["Location"])))
    claims = id_token_claims(demo, redeem(demo, callback.headers["Location"], verifier), nonce)
    assert claims["acr"] == "low" and claims["amr"] == ["pwd"]
    # ... then the app asks for more: the bank, not a silent "low" token.
    url, verifier, nonce = authorize_url(demo, acr_values="substantial")
    page = person.follow(person.get(url))
    assert 'name="password"' not in page.text
    callback = person.bank_login(page, "32123456785")
    claims = id_token_claims(demo, redeem(demo, callback.headers["Location"], verifier), nonce)
    assert claims["acr"] == "substantial" and claims["amr"] == ["ext", "bank"]


def test_a_previous_portal_user_logs_in_by_bank_and_confirms_contact_details_first(
    demo: DemoDeployment, tmp_path_factory: pytest.TempPathFactory, mailbox: Mailbox
) -> None:
    """Flow 4 over HTTP: loaded by `idp users import-legacy` (no password), the first login
    is by bank with the loaded code; the contact form comes before any code."""
    csv = tmp_path_factory.mktemp("legacy") / "legacy.csv"
    csv.write_text(
        "email;name;personal_code;customer_number;phone\n"
        "peteris.old@example.lv;Pēteris Ozols;320987-65438;300400500;\n",
        encoding="utf-8",
    )
    run_idp(demo.env, "users", "import-legacy", str(csv), "--json")

    person = Person(demo)
    url, verifier, nonce = authorize_url(demo)
    contact = person.bank_login(person.follow(person.get(url)), "32098765438")
    assert urlsplit(contact.url).path == "/contact", contact.url
    assert 'value="peteris.old@example.lv"' in contact.text
    done = person.http.post(
        demo.issuer + "/contact",
        allow_redirects=False,
        timeout=HTTP_TIMEOUT,
        data={
            "csrf_token": csrf_token(contact.text),
            "email": "peteris@example.lv",
            "phone": "+371 2000 0003",
            "correct": "y",
            "interaction": query(contact.url).get("interaction", ""),
        },
    )
    assert done.status_code == 303, done.text[:2000]
    callback = person.follow(person.get(urljoin(demo.issuer, done.headers["Location"])))
    claims = id_token_claims(demo, redeem(demo, callback.headers["Location"], verifier), nonce)
    assert claims["acr"] == "substantial" and claims["email"] == "peteris@example.lv"
    assert "/register/confirm/" in mailbox.link_for("peteris@example.lv", timeout=20)
