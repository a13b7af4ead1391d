"""People on a demo-mode IdP (its DEMO bank, the demo contractor): the helpers of the
invitation and delegation scenarios. The `demo` fixture is in tests/integration/conftest.py."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.demo.seed import DEMO_CUSTOMER, DEMO_EMAIL, DEMO_PASSWORD
from idp.models import Customer, Membership, User
from tests.conftest import csrf_token

ANNA = "Anna.Liepa@Example.lv"
ANNA_CODE = "01019010001"  # a person the DEMO bank knows
PETERIS_CODE = "32098765438"  # another one
NEW_PASSWORD = "harbour violet lamp seventeen"


def local(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def text(response: Any) -> str:
    return str(response.get_data(as_text=True))


class Person:
    """One browser (its own cookies) on the demo IdP and its DEMO bank."""

    def __init__(self, app: Flask) -> None:
        self.client = app.test_client()
        self.issuer = app.config["IDP_SETTINGS"].issuer

    def get(self, url: str) -> Any:
        return self.client.get(local(url))

    def post_page(self, url: str, **data: Any) -> Any:
        """Open the page at `url` and post its form with its CSRF token."""
        page = self.get(url)
        assert page.status_code == 200, text(page)
        return self.client.post(local(url), data={"csrf_token": csrf_token(text(page)), **data})

    def log_in(self, email: str = DEMO_EMAIL, password: str = DEMO_PASSWORD) -> None:
        assert self.post_page("/login", email=email, password=password).status_code == 302

    def at_the_bank(self, to_bank: Any, person: str | None) -> Any:
        """Follow the redirect to the DEMO bank, pick `person` there (None: Cancel); the
        IdP's answer to the bank's callback."""
        assert to_bank.status_code == 303, text(to_bank)
        assert to_bank.headers["Location"].startswith(self.issuer + "/demo-bank/authorize")
        html = text(self.get(to_bank.headers["Location"]))
        assert "DEMO bank" in html
        form = {
            "csrf_token": csrf_token(html),
            "request": html.split('name="request" value="')[1].split('"')[0],
        }
        form.update({"person": person} if person else {"cancel": "Cancel"})
        answer = self.client.post("/demo-bank/authorize", data=form)
        assert answer.status_code == 302
        assert answer.headers["Location"].startswith(self.issuer + "/upstream/callback/")
        return self.get(answer.headers["Location"])

    def confirm_contact(self) -> Any:
        page = text(self.get("/contact"))
        email = page.split('name="email" ')[1].split('value="')[1].split('"')[0]
        return self.client.post(
            "/contact",
            data={
                "csrf_token": csrf_token(page),
                "email": email,
                "phone": "+371 2000 0003",
                "correct": "y",
            },
        )


def invite(
    contractor: Person,
    db: Session,
    mailbox: Any,
    *,
    email: str = ANNA,
    name: str = "Anna Liepa",
    personal_code: str = "",
    rights: tuple[str, ...] = ("invoices.read",),
) -> str:
    """ADD USER in the contractor's USERS section; the link of the invitation mail."""
    answer = contractor.post_page(
        f"/users/{DEMO_CUSTOMER}/add",
        name=name,
        email=email,
        personal_code=personal_code,
        rights=list(rights),
    )
    assert answer.status_code == 303, text(answer)
    db.commit()
    link = str(mailbox.link_for(email, timeout=20))
    assert urlsplit(link).path.startswith("/invitation/")
    return link


def membership(db: Session, email: str, number: str = DEMO_CUSTOMER) -> Membership:
    db.expire_all()
    row = db.scalar(
        select(Membership)
        .join(User, User.id == Membership.user_id)
        .join(Customer, Customer.id == Membership.customer_id)
        .where(User.email == email.lower(), Customer.number == number)
    )
    assert row is not None
    db.refresh(row.user)
    db.commit()
    return row
