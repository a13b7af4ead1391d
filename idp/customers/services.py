"""Customer data as the rest of the IdP reads it: one customer, the list, the portal users
acting for one, and the match a registration by e-mail needs (docs/domain.md flow 2).

The import that loads the data is idp.customers.importer (rows: idp.customers.rows).
Functions take the DB session explicitly and never commit.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from idp.customers.rows import CONTRACT_MAX, NUMBER_MAX
from idp.identifiers import compact_identifier
from idp.models import Customer, CustomerContract, Membership, User
from idp.models.customers import PERSON


def get_customer(session: Session, number: str) -> Customer | None:
    return session.scalar(
        select(Customer)
        .where(Customer.number == number.strip())
        .options(selectinload(Customer.contracts))
    )


def list_customers(session: Session, limit: int | None = None) -> list[Customer]:
    query = select(Customer).order_by(Customer.number).options(selectinload(Customer.contracts))
    if limit:
        query = query.limit(limit)
    return list(session.scalars(query))


def customer_users(session: Session, customer: Customer) -> list[tuple[Membership, User]]:
    """The portal users linked to a customer, with their membership (role, state)."""
    query = (
        select(Membership, User)
        .join(User, User.id == Membership.user_id)
        .where(Membership.customer_id == customer.id)
        .order_by(User.email)
    )
    return [(membership, user) for membership, user in session.execute(query)]


def find_customer_for_registration(
    session: Session, number: str, identifier: str
) -> Customer | None:
    """The customer a person registering by e-mail may act for, or None.

    docs/domain.md flow 2: the data typed must match the customer data. `number` is the customer
    number or one of its contract numbers; `identifier` the personal code of a private person
    (with or without the hyphen) or the registration number of a company. Any mismatch gives
    the same None, so a form cannot tell which half was wrong.
    """
    number = number.strip()
    code = compact_identifier(identifier)
    if not number or not code or len(number) > max(NUMBER_MAX, CONTRACT_MAX):
        return None
    candidates = [
        session.scalar(select(Customer).where(Customer.number == number)),
        # A value may be one customer's number and another's contract: try both.
        session.scalar(
            select(Customer).join(CustomerContract).where(CustomerContract.number == number)
        ),
    ]
    for customer in candidates:
        if customer is None:
            continue
        expected = (
            customer.personal_code if customer.kind == PERSON else customer.registration_number
        )
        if expected and expected == code:
            return customer
    return None
