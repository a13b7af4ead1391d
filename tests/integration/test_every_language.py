"""No English left on a Latvian or Russian page or mail (issue 13).

A person walks the demo IdP in each language — the login page and its mistakes,
registration, the bank round trip, a forgotten password, the links that no longer work,
the USERS section, an invitation, consent, logout and the error pages — and every page
they meet is read as a person reads it: its text, its title and the words of its
buttons, labels and hints. Every mail is rendered in each language the same way.

What counts as English left behind:
- a text that is, word for word, a message of the catalogue (idp/translations/messages.pot)
  whose translation differs from it — a string that reached the page without gettext, or
  gettext'ed in the wrong language;
- a text with two or more common English words — English that never went through the
  catalogue (a hard-coded string, WTForms' or Flask-WTF's own messages).
The walk also checks that it saw every page template, so a new page must join it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from pprint import pformat
from typing import Any

import pytest
from babel.messages.pofile import read_po
from flask import Flask, template_rendered
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp import mail
from idp.demo import bank_sim
from idp.demo.seed import (
    DEMO_CUSTOMER,
    DEMO_EMAIL,
    DEMO_NEW_CUSTOMERS,
    DEMO_PASSWORD,
    PUBLIC_CLIENT_ID,
)
from idp.memberships.rights import Role
from idp.models import Customer, Interaction, Membership, UpstreamProviderConfig, User
from tests.conftest import csrf_token, pkce_pair, query
from tests.integration.demo_people import (
    ANNA_CODE,
    NEW_PASSWORD,
    PETERIS_CODE,
    Person,
    invite,
    local,
    text,
)
from tests.user_agents import SAFARI_IPHONE

PROJECT = Path(__file__).resolve().parents[2]
TEMPLATES = PROJECT / "templates"
LANGUAGES = ["lv", "ru"]
ANNA_CUSTOMER, PETERIS_CUSTOMER = (row[0] for row in DEMO_NEW_CUSTOMERS)
ANNA_BY_MAIL = "anna.liepa@example.lv"

# Words of English that neither Latvian nor Russian text contains as words ("to" and "no"
# are Latvian words, so they are not here).
ENGLISH_WORDS = frozenset(
    """the and your you of is are with for this that not has have was were be or in on an at
    by from it can will please enter log sign account password customer here again back page
    cannot could must may what who when which there their been into only our us if do does
    field required invalid valid choose select continue cancel allow deny""".split()
)
# Names that read the same in every language: the demo's people, customers and providers.
SAME_IN_EVERY_LANGUAGE = frozenset({"DEMO bank", "DEMO eParaksts", "eParaksts", "Smart-ID"})
# Data an admin typed, shown inside translated sentences or alone (the demo client's name,
# which is also the demo page's own msgid).
DATA_IN_SENTENCES = ("Demo relying page",)


INLINE_STYLE = re.compile(r"<style\b|\sstyle\s*=", re.IGNORECASE)
VOID_ELEMENTS = frozenset("area base br col embed hr img input link meta source track wbr".split())


class _VisibleText(HTMLParser):
    """The texts a person reads or hears on a page in its language: text nodes outside
    script/style, the title, and the attributes that carry words (alt, title,
    placeholder, aria-label, the value of a button). Text inside an element marked as
    another language (`lang="en"`: a protocol error's technical description, a language's
    own name in the switcher) is that language's, not the page's."""

    def __init__(self, language: str) -> None:
        super().__init__()
        self.language = language
        self.texts: list[str] = []
        # For each open element: whether its text is not the page's (script, style or
        # another language).
        self._open: list[tuple[str, bool]] = []

    def _skipping(self) -> bool:
        return any(skipped for _tag, skipped in self._open)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        lang = (values.get("lang") or "").split("-")[0]
        foreign = tag in ("script", "style") or (tag != "html" and lang not in ("", self.language))
        if tag not in VOID_ELEMENTS:
            self._open.append((tag, foreign))
        if foreign or self._skipping():
            return
        for name in ("alt", "title", "placeholder", "aria-label"):
            if values.get(name):
                self.texts.append(str(values[name]))
        if tag == "input" and values.get("type") in ("submit", "button") and values.get("value"):
            self.texts.append(str(values["value"]))

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index][0] == tag:
                del self._open[index:]
                break

    def handle_data(self, data: str) -> None:
        if not self._skipping() and data.strip():
            self.texts.append(" ".join(data.split()))


def visible_texts(html: str, language: str) -> list[str]:
    parser = _VisibleText(language)
    parser.feed(html)
    return parser.texts


def _catalogue_english() -> dict[str, frozenset[str]]:
    """Per language, the msgids (without placeholders) whose translation differs: seeing
    one of them on that language's page means it was not translated."""
    out: dict[str, frozenset[str]] = {}
    for language in LANGUAGES:
        path = PROJECT / "idp/translations" / language / "LC_MESSAGES/messages.po"
        with path.open("rb") as f:
            catalogue = read_po(f, locale=language)
        english = set()
        for message in catalogue:
            msgids = message.id if isinstance(message.id, tuple) else (message.id,)
            for msgid in msgids:
                if msgid and "%" not in msgid and message.string not in (msgid, (msgid,)):
                    english.add(" ".join(msgid.split()))
        out[language] = frozenset(english)
    return out


CATALOGUE_ENGLISH = _catalogue_english()


def english_left(language: str, texts: list[str]) -> list[str]:
    found = []
    for piece in texts:
        if piece in SAME_IN_EVERY_LANGUAGE or piece in DATA_IN_SENTENCES:
            continue
        sentence = piece
        for data in DATA_IN_SENTENCES:
            sentence = sentence.replace(data, "")
        # Whole words of any script: "šis" is not the English "is" (a split at "š" made it so).
        words = {w.lower() for w in re.findall(r"[^\W\d_]+", sentence)}
        if piece in CATALOGUE_ENGLISH[language] or len(words & ENGLISH_WORDS) >= 2:
            found.append(piece)
    return found


class Walk:
    """Records every page the walk meets in one language."""

    def __init__(self, app: Flask, db: Session, mailbox: Any, language: str) -> None:
        self.app = app
        self.db = db
        self.mailbox = mailbox
        self.language = language
        self.pages: dict[str, list[str]] = {}
        self.templates: set[str] = set()

    def person(self) -> Person:
        person = Person(self.app)
        person.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = f"{self.language},en;q=0.5"
        return person

    def saw(self, name: str, response: Any, person: Person) -> Any:
        """Record the page `response` shows (after the IdP's own redirects)."""
        issuer = self.app.config["IDP_SETTINGS"].issuer
        for _ in range(4):
            location = response.headers.get("Location", "")
            if response.status_code not in (302, 303) or not location.startswith(("/", issuer)):
                break
            response = person.get(location)
        if response.mimetype == "text/html" and not response.request.path.startswith(
            ("/demo-bank", "/demo-eparaksts")  # stand-ins for a bank's own pages
        ):
            html = text(response)
            assert f'lang="{self.language}"' in html, f"{name}: <html lang> is not {self.language}"
            # The pages' CSP is style-src 'self': an inline style would be refused (issue 14).
            assert not INLINE_STYLE.search(html), f"{name}: an inline style"
            self.pages[name] = visible_texts(html, self.language)
        return response

    @property
    def problems(self) -> dict[str, list[str]]:
        found = {name: english_left(self.language, texts) for name, texts in self.pages.items()}
        return {name: texts for name, texts in found.items() if texts}


@pytest.fixture
def recorded_templates(demo: Flask) -> Iterator[set[str]]:
    seen: set[str] = set()

    def record(sender: Flask, template: Any, context: dict[str, Any], **extra: Any) -> None:
        seen.add(str(template.name))

    template_rendered.connect(record, demo)
    yield seen
    template_rendered.disconnect(record, demo)


def _walk_without_an_account(walk: Walk) -> None:
    anyone = walk.person()
    get = anyone.get

    def saw(name: str, response: Any) -> Any:
        return walk.saw(name, response, anyone)

    saw("login", get("/login"))
    page = text(get("/login"))
    saw(
        "login: wrong password",
        anyone.client.post(
            "/login",
            data={"csrf_token": csrf_token(page), "email": DEMO_EMAIL, "password": "wrong"},
        ),
    )
    saw(
        "login: empty",
        anyone.client.post("/login", data={"csrf_token": csrf_token(page)}),
    )
    saw("login: form expired", anyone.client.post("/login", data={"email": DEMO_EMAIL}))
    saw("register", get("/register"))
    saw("register: empty", anyone.post_page("/register"))
    saw(
        "register: bad values",
        anyone.post_page(
            "/register",
            customer_number="x" * 40,
            identifier="123",
            name="",
            email="not an address",
            password="short",
            password_confirm="other",
        ),
    )
    saw(
        "register: no such customer",
        anyone.post_page(
            "/register",
            customer_number="999999999",
            identifier="01019010001",
            name="Anna Liepa",
            email="anna@example.lv",
            password=NEW_PASSWORD,
            password_confirm=NEW_PASSWORD,
            terms="y",
        ),
    )
    saw("forgot password", get("/forgot-password"))
    saw("forgot password: empty", anyone.post_page("/forgot-password"))
    saw("forgot password: sent", anyone.post_page("/forgot-password", email=DEMO_EMAIL))
    reset_link = walk.mailbox.link_for(DEMO_EMAIL)
    saw("reset password", get(reset_link))
    saw("reset password: empty", anyone.post_page(local(reset_link)))
    saw(
        "register: sent",
        anyone.post_page(
            "/register",
            customer_number=ANNA_CUSTOMER,
            identifier=ANNA_CODE,
            name="Anna Liepa",
            email=ANNA_BY_MAIL,
            password=NEW_PASSWORD,
            password_confirm=NEW_PASSWORD,
            terms="y",
        ),
    )
    saw("register: confirmation link", get(walk.mailbox.link_for(ANNA_BY_MAIL)))
    start = text(get("/login"))
    _location, theirs = _authorize_url(walk, walk.person())  # another browser's request
    for provider, interaction in (
        ("no-such-bank", ""),
        ("demo-bank", "gone"),
        ("demo-bank", theirs),
    ):
        saw(
            f"bank: {provider} {interaction}",
            anyone.client.post(
                "/login/upstream",
                data={
                    "csrf_token": csrf_token(start),
                    "provider": provider,
                    "interaction": interaction,
                },
            ),
        )
    for path in (
        "/reset-password/not-a-link",
        "/register/confirm/not-a-link",
        "/activate/not-a-link",
        "/invitation/not-a-link",
        "/register/upstream/not-a-link",
        "/upstream/callback/demo-bank?state=unknown&code=x",
        "/no-such-page",
        "/authorize",
        "/authorize?client_id=nobody&response_type=code",
        "/consent?interaction=gone",
        "/act-for?interaction=gone",
        "/contact",
        "/logged-out",
        "/users",
        "/demo/",
    ):
        saw(f"GET {path}", get(path))


def _to_the_bank(person: Person) -> Any:
    page = text(person.get("/login"))
    return person.client.post(
        "/login/upstream", data={"csrf_token": csrf_token(page), "provider": "demo-bank"}
    )


def _walk_a_bank_registration(walk: Walk) -> None:
    """Pēteris, a customer without an account, logs in at the DEMO bank and registers."""
    peteris = walk.person()
    back = walk.saw(
        "bank: registration form", peteris.at_the_bank(_to_the_bank(peteris), PETERIS_CODE), peteris
    )
    form = local(back.request.url)
    walk.saw("bank: registration empty", peteris.post_page(form), peteris)
    walk.saw(
        "bank: registration sent",
        peteris.post_page(form, email="peteris@example.lv", phone="+371 2000 0004"),
        peteris,
    )
    walk.saw(
        "bank: registration waits for its confirmation",
        peteris.at_the_bank(_to_the_bank(peteris), PETERIS_CODE),
        peteris,
    )
    walk.saw("bank: cancelled", peteris.at_the_bank(_to_the_bank(peteris), None), peteris)
    ilze = walk.person()  # the DEMO bank knows her; she is nobody's customer
    walk.saw("bank: no customer", ilze.at_the_bank(_to_the_bank(ilze), "15058510006"), ilze)


def _walk_the_way_back(walk: Walk) -> None:
    """A sign-in that expired and was deleted: the pages name the application (issue 14)."""
    someone = walk.person()
    _location, interaction = _authorize_url(walk, someone)
    row = walk.db.get(Interaction, interaction)
    assert row is not None
    walk.db.delete(row)
    walk.db.commit()
    walk.saw("sign-in expired", someone.get(f"/consent?interaction={interaction}"), someone)
    walk.saw("logged out, back to the app", someone.get("/logged-out"), someone)
    walk.saw("no such page, back to the app", someone.get("/no-such-page"), someone)


def _authorize_url(walk: Walk, person: Person) -> tuple[str, str]:
    """Start a login for the demo relying page: (where /authorize sends the browser, the
    paused request's id)."""
    _verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": PUBLIC_CLIENT_ID,
        "redirect_uri": walk.app.config["IDP_SETTINGS"].issuer + "/demo/callback",
        "scope": "openid profile email invoices.read",
        "state": "s",
        "nonce": "n",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    started = person.client.get("/authorize", query_string=params)
    location = started.headers.get("Location", "")
    return location, query(location).get("interaction", "")


def _walk_the_contractor(walk: Walk) -> Person:
    """Jānis logs in for an application, gives consent, manages USERS and logs out."""
    janis = walk.person()
    location, interaction = _authorize_url(walk, janis)
    walk.saw("authorize: login", janis.get(location), janis)
    consent = walk.saw(
        "authorize: after login",
        janis.post_page(
            f"/login?interaction={interaction}",
            email=DEMO_EMAIL,
            password=DEMO_PASSWORD,
            interaction=interaction,
        ),
        janis,
    )
    assert "/consent" in consent.request.path, consent.request.path
    walk.saw(
        "consent: allowed",
        janis.post_page(f"/consent?interaction={interaction}", interaction=interaction, allow="y"),
        janis,
    )
    walk.saw("home", janis.get("/"), janis)
    walk.saw("users", janis.get("/users"), janis)
    walk.saw("users: customer", janis.get(f"/users/{DEMO_CUSTOMER}"), janis)
    walk.saw("users: add", janis.get(f"/users/{DEMO_CUSTOMER}/add"), janis)
    walk.saw("users: add empty", janis.post_page(f"/users/{DEMO_CUSTOMER}/add"), janis)
    walk.saw(
        "users: add bad",
        janis.post_page(
            f"/users/{DEMO_CUSTOMER}/add",
            name="x" * 300,
            email="not an address",
            personal_code="123",
        ),
        janis,
    )
    link = invite(janis, walk.db, walk.mailbox, email="someone@example.lv")
    walk.saw("users: after add", janis.get(f"/users/{DEMO_CUSTOMER}"), janis)
    walk.saw("users: history", janis.get(f"/users/{DEMO_CUSTOMER}/history"), janis)
    walk.saw("users: logins", janis.get(f"/users/{DEMO_CUSTOMER}/logins"), janis)
    walk.saw("users: no such customer", janis.get("/users/999999999"), janis)
    invited = walk.person()
    walk.saw("invitation", invited.get(link), invited)
    walk.saw("invitation: empty", invited.post_page(local(link)), invited)
    return janis


def _walk_history_and_data(walk: Walk, janis: Person) -> None:
    """Jānis's own pages: his access history (his wrong password and the app's login in
    it) and what the download of his data holds."""
    walk.saw("account: history", janis.get("/account/history"), janis)
    walk.saw("account: my data", janis.get("/account/data"), janis)


def _walk_invitations(walk: Walk, janis: Person) -> None:
    """Invited people at the bank: cancelling, the wrong person, accepting (and the
    contact form), a code of another account, too weak a login."""

    def at_the_bank(name: str, code: str | None, personal_code: str = "") -> Person:
        email = f"{name}@example.lv"
        link = invite(janis, walk.db, walk.mailbox, email=email, personal_code=personal_code)
        invited = walk.person()
        walk.saw(f"invitation {name}", invited.get(link), invited)
        to_bank = invited.post_page(
            link, password=NEW_PASSWORD, password_confirm=NEW_PASSWORD, provider="demo-bank"
        )
        walk.saw(f"invitation {name}: bank", invited.at_the_bank(to_bank, code), invited)
        return invited

    at_the_bank("cancels", None)
    at_the_bank("someone-else", PETERIS_CODE, personal_code="010190-10001")
    anna = at_the_bank("anna", ANNA_CODE)
    walk.saw("invitation: contact", anna.get("/contact"), anna)
    walk.saw("invitation: contact confirmed", anna.confirm_contact(), anna)
    at_the_bank("anna-again", ANNA_CODE)
    bank = walk.db.scalar(
        select(UpstreamProviderConfig).where(UpstreamProviderConfig.name == "demo-bank")
    )
    assert bank is not None
    options = bank.options
    bank.options = {**options, "acr_map": {bank_sim.ACR: "low"}}
    walk.db.commit()
    at_the_bank("weak", ANNA_CODE)
    bank.options = options
    walk.db.commit()


def _walk_the_users_section(walk: Walk, janis: Person) -> None:
    """Jānis's USERS pages for a member, and for two customers."""
    walk.db.expire_all()
    member = walk.db.scalar(
        select(Membership)
        .join(User, User.id == Membership.user_id)
        .where(User.email == "anna@example.lv")
    )
    assert member is not None
    walk.db.commit()  # end the read: SQLite lets no one write meanwhile
    base = f"/users/{DEMO_CUSTOMER}/{member.id}"
    walk.saw("users: rights", janis.get(f"{base}/rights"), janis)
    walk.saw("users: rights empty", janis.post_page(f"{base}/rights"), janis)
    walk.saw("users: remove", janis.get(f"{base}/remove"), janis)
    page = text(janis.get(f"/users/{DEMO_CUSTOMER}"))
    walk.saw(
        "users: resend refused",
        janis.client.post(f"{base}/resend", data={"csrf_token": csrf_token(page)}),
        janis,
    )
    # Jānis becomes the contractor of a second customer: he chooses whom to act for.
    contractor = walk.db.scalar(select(User).where(User.email == DEMO_EMAIL))
    second = walk.db.scalar(select(Customer).where(Customer.number == PETERIS_CUSTOMER))
    assert contractor is not None and second is not None
    walk.db.add(Membership(user_id=contractor.id, customer_id=second.id, role=Role.CONTRACTOR))
    walk.db.commit()
    walk.saw("users: choose", janis.get("/users"), janis)
    walk.saw("authorize: act for", janis.get(local(_authorize_url(walk, janis)[0])), janis)


def _walk_my_account(walk: Walk, janis: Person) -> None:
    """Jānis's "My account": profile, e-mail change by link, password, ways to log in."""
    walk.saw("account: profile", janis.get("/account"), janis)
    walk.saw("account: profile bad", janis.post_page("/account", name="", phone="x"), janis)
    walk.saw("account: profile saved", janis.post_page("/account", name="Jānis Bērziņš"), janis)
    walk.saw("account: email", janis.get("/account/email"), janis)
    walk.saw("account: email empty", janis.post_page("/account/email"), janis)
    walk.saw("account: email same", janis.post_page("/account/email", email=DEMO_EMAIL), janis)
    walk.saw(
        "account: email sent",
        janis.post_page("/account/email", email="janis.jauns@example.lv"),
        janis,
    )
    walk.db.commit()
    link = walk.mailbox.link_for("janis.jauns@example.lv")
    walk.saw("account: email confirm", janis.get(link), janis)
    walk.saw("account: password", janis.get("/account/password"), janis)
    walk.saw("account: password empty", janis.post_page("/account/password"), janis)
    walk.saw(
        "account: password wrong",
        janis.post_page(
            "/account/password",
            current="not it",
            password=NEW_PASSWORD,
            password_confirm=NEW_PASSWORD,
        ),
        janis,
    )
    walk.saw("account: ways to log in", janis.get("/account/logins"), janis)
    walk.saw(
        "account: confirm it is you",
        janis.get("/account/confirm-login?next=/account/email"),
        janis,
    )
    walk.saw(
        "account: confirm it is you, wrong",
        janis.post_page("/account/confirm-login", password="wrong", next="/account/email"),
        janis,
    )
    walk.saw("account: email changed", janis.post_page(local(link)), janis)


def _walk_sessions_and_apps(walk: Walk, janis: Person) -> None:
    """Jānis's "Sessions" with a second browser, and "Apps with access" with the consent he
    gave: the withdraw question, logging the other browser out, withdrawing (issue 15)."""
    phone = walk.person()
    phone.client.environ_base["HTTP_USER_AGENT"] = SAFARI_IPHONE
    phone.log_in()
    sessions = walk.saw("account: sessions", janis.get("/account/sessions"), janis)
    walk.saw(
        "account: sessions, the others logged out",
        janis.client.post(
            "/account/sessions/end-others", data={"csrf_token": csrf_token(text(sessions))}
        ),
        janis,
    )
    apps = text(walk.saw("account: apps", janis.get("/account/apps"), janis))
    withdraw = re.search(r'href="(/account/apps/\d+/withdraw)"', apps)
    assert withdraw, "no consent to withdraw"
    walk.saw("account: withdraw?", janis.get(withdraw.group(1)), janis)
    walk.saw("account: withdrawn", janis.post_page(withdraw.group(1)), janis)
    walk.saw("account: no apps", janis.get("/account/apps"), janis)


@pytest.mark.parametrize("language", LANGUAGES)
def test_no_english_on_any_page(
    demo: Flask, db: Session, mailbox: Any, recorded_templates: set[str], language: str
) -> None:
    walk = Walk(demo, db, mailbox, language)
    _walk_without_an_account(walk)
    _walk_a_bank_registration(walk)
    _walk_the_way_back(walk)
    janis = _walk_the_contractor(walk)
    _walk_history_and_data(walk, janis)
    _walk_invitations(walk, janis)
    _walk_the_users_section(walk, janis)
    _walk_sessions_and_apps(walk, janis)
    _walk_my_account(walk, janis)  # last: it changes his e-mail address
    walk.saw("logout", janis.get("/logout"), janis)
    walk.saw("logout: confirmed", janis.post_page("/logout"), janis)
    assert not walk.problems, pformat(walk.problems, width=100)
    unseen = _page_templates() - recorded_templates - NOT_WALKED
    assert not unseen, f"pages the walk never met (add them to it): {sorted(unseen)}"


# Pages the walk does not reach, each with the test that shows it in every language.
NOT_WALKED = frozenset(
    {
        "base.html",  # the layout of every page
        # The database unavailable: test_database_unavailable.py reads it in lv and ru.
        "errors/unavailable.html",
    }
)


def _page_templates() -> set[str]:
    return {
        str(path.relative_to(TEMPLATES))
        for path in TEMPLATES.rglob("*.html")
        if not path.name.startswith("_") and path.parent.name not in ("mail", "demo_bank")
    }


# --- mails -----------------------------------------------------------------------------------

MAIL_CONTEXT: dict[str, Any] = {
    "name": "Anna Liepa",
    "customer_name": "SIA Gāzes Lietotājs",
    "inviter": "Jānis Bērziņš",
    "link": "https://idp.example.lv/x",
    "login_url": "https://idp.example.lv/login",
    "reset_url": "https://idp.example.lv/forgot-password",
    "hours": 24,
    "minutes": 30,
    "valid_through": dt.date(2026, 12, 31),
    "valid_until": dt.datetime(2026, 12, 31, 21, 59, tzinfo=dt.UTC),
    "rights": ["invoices.read", "meter_readings.submit"],
    "new_email": "anna.jauna@example.lv",
    "first": False,
}


def _mail_templates() -> list[str]:
    return sorted(
        path.stem for path in (TEMPLATES / "mail").glob("*.txt") if not path.stem.startswith("_")
    )


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("template", _mail_templates())
@pytest.mark.parametrize(
    "variant",
    [
        {"has_account": True},
        # The other branches: no account yet, a moment instead of a day, sent by the utility.
        {"has_account": False, "valid_through": None, "inviter": None, "name": "", "first": True},
    ],
)
def test_no_english_in_any_mail(
    app: Flask, template: str, language: str, variant: dict[str, Any]
) -> None:
    context = {
        **MAIL_CONTEXT,
        **variant,
        "expires_at": dt.datetime(2026, 12, 2, 12, 30, tzinfo=dt.UTC),
    }
    with app.test_request_context():
        subject, body, html = mail.render(template, language, context)
    problems = {
        "subject": english_left(language, [subject]),
        "text": english_left(
            language, [line.strip() for line in body.splitlines() if line.strip()]
        ),
        "html": english_left(language, visible_texts(html, language)),
    }
    assert {part: found for part, found in problems.items() if found} == {}


@pytest.mark.parametrize(
    ("language", "hours", "expected"),
    [
        ("lv", 1, "1 stundas laikā"),
        ("lv", 21, "21 stundas laikā"),
        ("lv", 24, "24 stundu laikā"),
        ("ru", 1, "в течение 1 часа"),
        ("ru", 3, "в течение 3 часов"),
        ("ru", 24, "в течение 24 часов"),
        ("en", 1, "for 1 hour."),
        ("en", 24, "for 24 hours."),
    ],
)
def test_a_count_takes_the_plural_form_of_its_language(
    app: Flask, language: str, hours: int, expected: str
) -> None:
    with app.test_request_context():
        _subject, body, html = mail.render(
            "confirm_email", language, {**MAIL_CONTEXT, "hours": hours}
        )
    assert expected in body and expected in html
