"""Behind a load balancer: "from where" is the client's address when the balancer is
trusted (the `trusted_proxies` setting), and a spoofed X-Forwarded-For from anyone else
changes nothing (issue 11, point 3). The rule itself is tests/unit/test_proxies.py."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.models import AuditEvent, User
from tests.conftest import Browser
from tests.integration.test_users_pages import add_user

CLIENT = "203.0.113.9"
SPOOFED = "198.51.100.66"


def _origin_of_add_user(client: Any, db: Session) -> str:
    assert Browser(client).login().status_code == 302
    assert add_user(client).status_code == 303
    db.expire_all()
    origin = db.scalar(select(AuditEvent.origin).order_by(AuditEvent.id.desc()).limit(1))
    db.commit()
    assert origin is not None
    return origin


def test_a_spoofed_forwarded_for_from_an_untrusted_client_changes_nothing(
    client: Any, db: Session, user: User
) -> None:
    client.environ_base.update({"REMOTE_ADDR": CLIENT, "HTTP_X_FORWARDED_FOR": SPOOFED})
    assert _origin_of_add_user(client, db) == CLIENT


def test_behind_a_trusted_balancer_the_client_address_is_recorded(
    make_app: Any, db: Session, user: User
) -> None:
    client = make_app(trusted_proxies=["10.0.0.0/8"]).test_client()
    # The client itself claims SPOOFED; the balancer (10.0.0.5) appended what it saw.
    client.environ_base.update(
        {"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": f"{SPOOFED}, {CLIENT}"}
    )
    assert _origin_of_add_user(client, db) == CLIENT
