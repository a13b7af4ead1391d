"""The audit trail of memberships (issue 5, "Audit"): who changed whose membership, for
which customer, when and from where — and it still reads right after deletions."""

from __future__ import annotations

import datetime as dt
import getpass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from idp.audit import Action, Actor, history, record
from idp.db import utcnow
from idp.models import AuditEvent, Customer, Membership, User


def test_the_three_kinds_of_actor(user: User) -> None:
    cli = Actor.cli()
    assert (cli.user_id, cli.label, cli.origin) == (
        None,
        f"admin (CLI: {getpass.getuser()})",
        "cli",
    )
    assert Actor.system() == Actor(None, "system", "system")
    person = Actor.person(user, "2001:db8::1")
    assert (person.user_id, person.label, person.origin) == (
        user.id,
        "Janis.Berzins@Example.lv",
        "2001:db8::1",
    )
    assert len(Actor.person(user, "x" * 100).origin) == 64  # the column's size


def test_an_event_copies_the_customer_and_the_person_and_outlives_them(
    db: Session, user: User, customer: Customer
) -> None:
    membership = user.memberships[0]
    event = record(
        db,
        Action.RIGHTS_CHANGED,
        membership,
        Actor.person(user, "192.0.2.1"),
        {"previous": {"invoices.read"}, "until": dt.datetime(2030, 1, 1, tzinfo=dt.UTC)},
    )
    db.commit()
    assert (
        event.customer_id,
        event.customer_number,
        event.membership_id,
        event.subject_user_id,
        event.subject_email,
    ) == (customer.id, "100200300", membership.id, user.id, "Janis.Berzins@Example.lv")
    assert event.details == {"previous": ["invoices.read"], "until": "2030-01-01T00:00:00+00:00"}

    db.execute(delete(Membership))
    db.execute(delete(User))
    db.commit()
    db.expire_all()
    [kept] = db.scalars(select(AuditEvent)).all()
    assert (kept.membership_id, kept.subject_user_id, kept.actor_user_id) == (None, None, None)
    assert (kept.customer_number, kept.subject_email, kept.actor, kept.origin) == (
        "100200300",
        "Janis.Berzins@Example.lv",
        "Janis.Berzins@Example.lv",
        "192.0.2.1",
    )
    db.commit()


def test_history_is_newest_first_per_customer_and_limited(
    db: Session, user: User, customer: Customer
) -> None:
    other = Customer(number="900800700", kind="company", name="Gāzes Serviss SIA")
    db.add(other)
    db.flush()
    elsewhere = Membership(
        user_id=user.id,
        customer_id=other.id,
        role="additional_user",
        rights=["invoices.read"],
        state="invited",
    )
    db.add(elsewhere)
    db.flush()
    now = utcnow()
    for minutes, action, membership in [
        (3, Action.INVITED, user.memberships[0]),
        (2, Action.INVITED, elsewhere),
        (1, Action.REVOKED, user.memberships[0]),
    ]:
        record(db, action, membership, Actor.cli()).at = now - dt.timedelta(minutes=minutes)
    db.commit()

    assert [e.action for e in history(db)] == ["revoked", "invited", "invited"]
    assert [e.action for e in history(db, customer_id=customer.id)] == ["revoked", "invited"]
    assert [e.customer_number for e in history(db, customer_id=other.id)] == ["900800700"]
    assert len(history(db, limit=1)) == 1
    db.commit()
