"""Two app instances on ONE database behind one issuer, as a load balancer runs them (issue
16): two granian processes receive the same single-use thing at the same moment, released
together by a barrier, for dozens of rounds. Exactly one wins every round; the other gets
the answer of a used thing:

- an authorization code: the loser gets invalid_grant, and a code presented twice revokes
  what the winner got (RFC 6749 §4.1.2);
- a refresh token: the loser gets invalid_grant, and since it presented a rotated token,
  the family is revoked, the winner's new tokens included (RFC 9700 §4.14.2);
- an e-mail link (a password reset, a change of address): one POST changes the account,
  the other gets the link-invalid page (404);
- consent: two "Allow" of the same person for the same client leave one ConsentGrant row,
  and the paused request they resume gives one code.

On SQLite the two processes share one database file; it must hold there too. Each race
counts its rounds and its double spends (both won) and prints them (`pytest -s`).

The last test rotates the signing keys under two instances that re-read them every
KEYS_REFRESH_INTERVAL seconds: both publish the new key within that bound.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import requests
from sqlalchemy import Row, Select, func, select
from sqlalchemy.orm import Session

from tests.conftest import PASSWORD, Mailbox, csrf_token, fresh_database, pkce_pair, query
from tests.e2e.conftest import (
    HTTP_TIMEOUT,
    SCOPE,
    Browser,
    LiveServer,
    Person,
    ServerProcess,
    _base_env,
    race,
    redeem_code,
    refresh,
    run_idp,
    start_server,
)

pytestmark = pytest.mark.e2e

ROUNDS = 30
# The key rotation test's instances re-read the keys this often (seconds; default 30).
KEYS_REFRESH_INTERVAL = 2
# What a rotation may take beyond that: the poll's own period and one reload.
ROTATION_MARGIN = 1.5


@pytest.fixture(scope="module")
def second_server(live_server: LiveServer) -> Iterator[ServerProcess]:
    with live_server.another_instance() as server:
        yield server


@dataclass
class Instance:
    """One instance and a kept-alive connection to it, opened in advance, so that the
    barrier releases two requests that are already on their way rather than two TCP
    handshakes."""

    base_url: str
    http: requests.Session

    def send(
        self, method: str, path: str, cookies: dict[str, str] | None = None, **data: str
    ) -> requests.Response:
        """A request as the browser whose `cookies` are given (the connection keeps none of
        its own: every round is another browser)."""
        self.http.cookies.clear()
        return self.http.request(
            method,
            self.base_url + path,
            data=data or None,
            cookies=cookies,
            allow_redirects=False,
            timeout=HTTP_TIMEOUT,
        )


@pytest.fixture
def instances(live_server: LiveServer, second_server: ServerProcess) -> Iterator[list[Instance]]:
    pair = []
    for base_url in (live_server.base_url, second_server.base_url):
        http = requests.Session()
        http.get(base_url + "/.well-known/openid-configuration", timeout=HTTP_TIMEOUT)
        pair.append(Instance(base_url, http))
    yield pair
    for instance in pair:
        instance.http.close()


@dataclass
class Tally:
    """Rounds raced and what went wrong: a double spend (both won), or any other answer
    than one winner and one loser (the round's statuses)."""

    name: str
    rounds: int = 0
    doubles: int = 0
    odd: list[str] | None = None

    def count(self, winners: int, detail: str) -> None:
        self.rounds += 1
        if winners > 1:
            self.doubles += 1
        if winners != 1:
            self.odd = [*(self.odd or []), f"round {self.rounds}: {detail}"]

    def check(self) -> None:
        print(f"\n{self.name}: {self.rounds} rounds, {self.doubles} double spends")
        assert self.rounds == ROUNDS
        assert self.doubles == 0 and not self.odd, f"{self.name}: {self.odd}"


def ordered(instances: list[Instance], index: int) -> list[Instance]:
    """Alternate which instance's thread starts first, round by round."""
    return instances if index % 2 == 0 else instances[::-1]


def new_people(live_server: LiveServer, count: int) -> list[Person]:
    """`count` fresh accounts (no consent, no session, no link yet) written in one go by
    the library the `idp users create` command calls: a subprocess each would cost a
    second apiece, and the accounts are only the stage of the races."""
    from idp.accounts.services import create_user
    from idp.db import make_engine
    from idp.security import Passwords
    from idp.settings import load_settings

    passwords = Passwords(load_settings(environ=live_server.env))
    engine = make_engine(live_server.database_url)
    try:
        with Session(engine) as session:
            emails = [f"race-{secrets.token_hex(5)}@example.lv" for _ in range(count)]
            users = [
                create_user(session, passwords, email=e, name="Līga Race", password=PASSWORD)
                for e in emails
            ]
            session.commit()
            return [Person(e, PASSWORD, u.subject) for e, u in zip(emails, users, strict=True)]
    finally:
        engine.dispose()


def database_rows(live_server: LiveServer, statement: Select[Any]) -> list[Row[Any]]:
    """Rows read from the database both instances use (what the races left behind)."""
    from idp.db import make_engine

    engine = make_engine(live_server.database_url)
    try:
        with Session(engine) as session:
            return list(session.execute(statement).all())
    finally:
        engine.dispose()


def log_in(live_server: LiveServer, person: Person) -> requests.Session:
    """A browser logged in (no authorization request): its cookies carry the session."""
    http = requests.Session()
    page = http.get(live_server.issuer + "/login", timeout=HTTP_TIMEOUT)
    answer = http.post(
        live_server.issuer + "/login",
        data={"csrf_token": csrf_token(page.text), "email": person.email, "password": PASSWORD},
        allow_redirects=False,
        timeout=HTTP_TIMEOUT,
    )
    assert answer.status_code in (302, 303), answer.text[:2000]
    return http


def link_path(link: str) -> str:
    return urlsplit(link).path


# --- authorization codes and refresh tokens ---------------------------------------------------


def _one_token_winner(responses: list[requests.Response]) -> requests.Response | None:
    """The winner when exactly one answered 200 and the other invalid_grant, else None."""
    statuses = sorted(r.status_code for r in responses)
    if statuses != [200, 400]:
        return None
    loser = next(r for r in responses if r.status_code == 400)
    if loser.json().get("error") != "invalid_grant":
        return None
    return next(r for r in responses if r.status_code == 200)


def _statuses(responses: list[requests.Response]) -> str:
    return " ".join(f"{r.status_code} {r.text[:200]!r}" for r in responses)


def test_two_instances_share_one_database(
    live_server: LiveServer,
    second_server: ServerProcess,
    person: Person,
    browser_for: Callable[[Person], Browser],
) -> None:
    # A code issued through one instance is redeemable at the other.
    assert second_server.process.pid != live_server.server.process.pid
    assert second_server.base_url != live_server.base_url
    app = live_server.confidential
    code, verifier = browser_for(person).obtain_code(app)
    response = redeem_code(second_server.base_url, app, code, verifier)
    assert response.status_code == 200, response.text
    again = refresh(live_server.base_url, app, response.json()["refresh_token"])
    assert again.status_code == 200, again.text


def test_each_code_is_redeemed_exactly_once_when_two_instances_race(
    live_server: LiveServer,
    person: Person,
    browser_for: Callable[[Person], Browser],
    instances: list[Instance],
) -> None:
    app = live_server.confidential
    browser = browser_for(person)
    codes = [browser.obtain_code(app) for _ in range(ROUNDS)]

    tally = Tally("authorization code")
    winners: list[dict[str, str]] = []
    for index, (code, verifier) in enumerate(codes):
        responses = race(
            [
                partial(redeem_code, i.base_url, app, code, verifier, i.http)
                for i in ordered(instances, index)
            ]
        )
        winner = _one_token_winner(responses)
        tally.count(sum(r.status_code == 200 for r in responses), _statuses(responses))
        if winner is not None:
            winners.append(winner.json())
    tally.check()

    # The code was presented twice, so what the winner got is revoked: its refresh token
    # and its access token (at both instances).
    for index, token in enumerate(winners):
        response = refresh(instances[index % 2].base_url, app, token["refresh_token"])
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_grant"
        userinfo = requests.get(
            f"{instances[(index + 1) % 2].base_url}/userinfo",
            headers={"Authorization": f"Bearer {token['access_token']}"},
            timeout=HTTP_TIMEOUT,
        )
        assert userinfo.status_code == 401, userinfo.text


def test_each_refresh_token_is_used_exactly_once_when_two_instances_race(
    live_server: LiveServer,
    person: Person,
    browser_for: Callable[[Person], Browser],
    instances: list[Instance],
) -> None:
    app = live_server.confidential
    browser = browser_for(person)
    refresh_tokens = []
    for _ in range(ROUNDS):
        code, verifier = browser.obtain_code(app)
        response = redeem_code(live_server.base_url, app, code, verifier)
        assert response.status_code == 200, response.text
        refresh_tokens.append(response.json()["refresh_token"])

    tally = Tally("refresh token")
    winners: list[dict[str, str]] = []
    for index, refresh_token in enumerate(refresh_tokens):
        responses = race(
            [
                partial(refresh, i.base_url, app, refresh_token, i.http)
                for i in ordered(instances, index)
            ]
        )
        winner = _one_token_winner(responses)
        tally.count(sum(r.status_code == 200 for r in responses), _statuses(responses))
        if winner is not None:
            assert winner.json()["refresh_token"] != refresh_token
            winners.append(winner.json())
    tally.check()

    # The loser presented an already-rotated token: a replay, so the whole family is
    # revoked, the winner's new refresh and access tokens too (RFC 9700 §4.14.2), at
    # both instances.
    for index, token in enumerate(winners):
        again = refresh(instances[(index + 1) % 2].base_url, app, token["refresh_token"])
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant", again.text
        userinfo = requests.get(
            f"{instances[index % 2].base_url}/userinfo",
            headers={"Authorization": f"Bearer {token['access_token']}"},
            timeout=HTTP_TIMEOUT,
        )
        assert userinfo.status_code == 401, userinfo.text


# --- e-mail links ------------------------------------------------------------------------------


def test_each_password_reset_link_changes_the_password_once_when_two_instances_race(
    live_server: LiveServer, instances: list[Instance], mailbox: Mailbox
) -> None:
    from idp.accounts.services import normalize_email
    from idp.models import User
    from idp.security import Passwords
    from idp.settings import load_settings

    people = new_people(live_server, ROUNDS)
    passwords = Passwords(load_settings(environ=live_server.env))
    tally = Tally("password reset link")
    for index, person in enumerate(people):
        browser = requests.Session()
        page = browser.get(live_server.issuer + "/forgot-password", timeout=HTTP_TIMEOUT)
        sent = browser.post(
            live_server.issuer + "/forgot-password",
            data={"csrf_token": csrf_token(page.text), "email": person.email},
            timeout=HTTP_TIMEOUT,
        )
        assert sent.status_code == 200, sent.text[:2000]
        path = link_path(mailbox.link_for(person.email, timeout=20))
        form = browser.get(live_server.issuer + path, timeout=HTTP_TIMEOUT)
        assert form.status_code == 200 and 'name="password"' in form.text, form.text[:2000]
        cookies = browser.cookies.get_dict()
        token = csrf_token(form.text)
        # Each instance is given another new password: the one that works tells who won.
        new_passwords = {
            i.base_url: f"reset {i.base_url[-5:]} {secrets.token_hex(6)}" for i in instances
        }
        racers = ordered(instances, index)
        responses = race(
            [
                partial(
                    i.send,
                    "POST",
                    path,
                    cookies,
                    csrf_token=token,
                    password=new_passwords[i.base_url],
                    password_confirm=new_passwords[i.base_url],
                )
                for i in racers
            ]
        )
        changed = [r.status_code == 303 for r in responses]
        tally.count(sum(changed), _statuses(responses))
        if changed.count(True) == 1:
            loser = responses[changed.index(False)]
            assert loser.status_code == 404, _statuses(responses)
            (stored,) = database_rows(
                live_server,
                select(User.password_hash).where(User.email == normalize_email(person.email)),
            )
            winner, other = (racers[0], racers[1]) if changed[0] else (racers[1], racers[0])
            assert passwords.verify(stored[0], new_passwords[winner.base_url])
            assert not passwords.verify(stored[0], new_passwords[other.base_url])
        browser.close()
    tally.check()


def test_each_email_change_link_changes_the_address_once_when_two_instances_race(
    live_server: LiveServer, instances: list[Instance], mailbox: Mailbox
) -> None:
    from idp.models import User

    people = new_people(live_server, ROUNDS)
    tally = Tally("e-mail change link")
    for index, person in enumerate(people):
        browser = log_in(live_server, person)
        page = browser.get(live_server.issuer + "/account/email", timeout=HTTP_TIMEOUT)
        assert page.status_code == 200, page.text[:2000]
        new_email = f"moved-{secrets.token_hex(5)}@example.lv"
        asked = browser.post(
            live_server.issuer + "/account/email",
            data={"csrf_token": csrf_token(page.text), "email": new_email},
            timeout=HTTP_TIMEOUT,
        )
        assert asked.status_code == 200, asked.text[:2000]
        path = link_path(mailbox.link_for(new_email, timeout=20))
        form = browser.get(live_server.issuer + path, timeout=HTTP_TIMEOUT)
        assert form.status_code == 200, form.text[:2000]
        cookies = browser.cookies.get_dict()
        token = csrf_token(form.text)
        responses = race(
            [
                partial(i.send, "POST", path, cookies, csrf_token=token)
                for i in ordered(instances, index)
            ]
        )
        changed = [r.status_code == 200 for r in responses]
        tally.count(sum(changed), _statuses(responses))
        if changed.count(True) == 1:
            assert responses[changed.index(False)].status_code == 404, _statuses(responses)
            (row,) = database_rows(
                live_server, select(User.email).where(User.subject == person.sub)
            )
            assert row[0] == new_email
        browser.close()
    tally.check()


# --- consent ------------------------------------------------------------------------------------


def _authorize_url(live_server: LiveServer) -> str:
    app = live_server.confidential
    _verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": app.redirect_uri,
        "scope": SCOPE,
        "state": secrets.token_urlsafe(12),
        "nonce": secrets.token_urlsafe(12),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return f"{live_server.issuer}/authorize?{urlencode(params)}"


def _paused_at_consent(live_server: LiveServer, browser: requests.Session) -> tuple[str, str]:
    """A new authorization request in this (logged-in) browser, paused at the consent
    page: its interaction id and the page's CSRF token."""
    answer = browser.get(_authorize_url(live_server), allow_redirects=False, timeout=HTTP_TIMEOUT)
    location = answer.headers.get("Location", "")
    assert answer.status_code == 302 and urlsplit(location).path == "/consent", location
    interaction = query(location)["interaction"]
    page = browser.get(live_server.issuer + location, timeout=HTTP_TIMEOUT)
    assert page.status_code == 200 and 'name="allow"' in page.text, page.text[:2000]
    return interaction, csrf_token(page.text)


def test_two_allows_at_once_leave_one_consent_and_one_code_when_two_instances_race(
    live_server: LiveServer, instances: list[Instance]
) -> None:
    """Two tabs of one person at the consent page of the same client, "Allow" pressed in
    both at once, each answered by another instance: both inserts race for the one
    "no customer" row (the partial unique index; idp.consent.services.remember). Then the
    first tab's request is resumed at both instances at once: one code."""
    from idp.models import ConsentGrant, User

    people = new_people(live_server, ROUNDS)
    consents = Tally("consent (two Allows, one record)")
    resumes = Tally("consent (one paused request resumed twice)")
    overlapped = 0  # rounds whose loser had read the request before the winner deleted it
    for index, person in enumerate(people):
        browser = log_in(live_server, person)
        first, token = _paused_at_consent(live_server, browser)
        second, _same = _paused_at_consent(live_server, browser)
        cookies = browser.cookies.get_dict()
        racers = ordered(instances, index)
        allowed = race(
            [
                partial(
                    i.send,
                    "POST",
                    "/consent",
                    cookies,
                    csrf_token=token,
                    interaction=x,
                    allow="Allow",
                )
                for i, x in zip(racers, (first, second), strict=True)
            ]
        )
        assert all(r.status_code == 302 for r in allowed), _statuses(allowed)
        assert all("/authorize/resume" in r.headers["Location"] for r in allowed)
        (rows,) = database_rows(
            live_server,
            select(func.count())
            .select_from(ConsentGrant)
            .join(User, User.id == ConsentGrant.user_id)
            .where(User.subject == person.sub),
        )
        consents.count(rows[0], f"{rows[0]} consent rows")

        resumed = race(
            [
                partial(i.send, "GET", f"/authorize/resume?interaction={first}", cookies)
                for i in racers
            ]
        )
        codes = [
            r
            for r in resumed
            if r.status_code == 302 and "code" in query(r.headers.get("Location", ""))
        ]
        resumes.count(len(codes), _statuses(resumed))
        if len(codes) == 1:
            assert codes[0].headers["Location"].startswith(live_server.confidential.redirect_uri)
            # The loser found the request finished: deleted already ("expired") or
            # deleted under it ("already completed"); a page, never a second code.
            other = next(r for r in resumed if r is not codes[0])
            assert other.status_code == 400, _statuses(resumed)
            overlapped += "already completed" in other.text
        browser.close()
    print(f"\nresumes whose loser read the request before it was deleted: {overlapped}")
    consents.check()
    resumes.check()


# --- key rotation -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fast_key_refresh(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[dict[str, str], list[ServerProcess]]]:
    """A deployment of its own (a fresh database) whose two instances re-read the keys
    every KEYS_REFRESH_INTERVAL seconds; yields the admin commands' env and the servers."""
    workdir = tmp_path_factory.mktemp("key-rotation")
    with fresh_database(workdir) as database_url:
        env = {
            **_base_env(database_url, workdir),
            "IDP_KEYS_REFRESH_INTERVAL": str(KEYS_REFRESH_INTERVAL),
        }
        run_idp(env, "db", "upgrade")
        first = start_server(env, workdir / "granian-a.log")
        try:
            second = start_server(env, workdir / "granian-b.log", issuer=first.issuer)
            try:
                yield {**env, "IDP_ISSUER": first.issuer}, [first, second]
            finally:
                second.stop()
        finally:
            first.stop()
        for server in (first, second):
            assert "Traceback" not in server.log(), server.log_tail()


def _kids(base_url: str) -> set[str]:
    answer = requests.get(base_url + "/jwks.json", timeout=HTTP_TIMEOUT)
    assert answer.status_code == 200, answer.text
    return {key["kid"] for key in answer.json()["keys"]}


def test_a_key_rotation_is_seen_by_both_instances_within_the_refresh_interval(
    fast_key_refresh: tuple[dict[str, str], list[ServerProcess]],
) -> None:
    env, servers = fast_key_refresh
    # Both have loaded (and the JWKS fast path recorded) the keys before the rotation.
    before = [_kids(s.base_url) for s in servers]
    assert before[0] == before[1] and len(before[0]) == 2

    started = time.monotonic()
    created = {row["kid"] for row in run_idp(env, "keys", "rotate", "--json")}
    committed = time.monotonic()  # the rotation was committed before the command ended
    assert len(created) == 2 and not created & before[0]

    seen_after: dict[str, float] = {}
    deadline = committed + KEYS_REFRESH_INTERVAL + ROTATION_MARGIN + 5  # to measure a miss too
    while len(seen_after) < len(servers) and time.monotonic() < deadline:
        for server in servers:
            if server.base_url not in seen_after and created <= _kids(server.base_url):
                seen_after[server.base_url] = time.monotonic() - committed
        time.sleep(0.05)
    print(
        f"\nkey rotation (`idp keys rotate` took {committed - started:.2f} s): new kids in "
        "JWKS after "
        + ", ".join(f"{seen_after.get(s.base_url, float('nan')):.2f} s" for s in servers)
        + f" (keys_refresh_interval {KEYS_REFRESH_INTERVAL} s)"
    )
    for server in servers:
        assert server.base_url in seen_after, f"{server.base_url} never published the new keys"
        assert seen_after[server.base_url] <= KEYS_REFRESH_INTERVAL + ROTATION_MARGIN
    # Nothing else changed: the old keys are still published.
    for server in servers:
        assert before[0] <= _kids(server.base_url)
