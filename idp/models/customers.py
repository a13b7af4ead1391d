"""Customers: parties holding a supply contract, copied from the utility's customer database.

Rows come only from `idp customers import` (docs/domain.md: "registration is only possible after
receiving accurate customer data"); the portal never creates a customer.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from idp.db import Base, utcnow

# Customer.kind
PERSON = "person"
COMPANY = "company"


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The utility's customer number: the key of an import (upsert).
    number: Mapped[str] = mapped_column(String(32), unique=True)
    # "person" (private person) or "company".
    kind: Mapped[str] = mapped_column(String(16))
    # Display name: "Given Family" for a person, the registered name for a company.
    name: Mapped[str] = mapped_column(String(255))
    # Persons only.
    given_name: Mapped[str | None] = mapped_column(String(255))
    family_name: Mapped[str | None] = mapped_column(String(255))
    # Persons only: 11 digits without the hyphen (validated on import).
    personal_code: Mapped[str | None] = mapped_column(String(16), index=True)
    # Companies only.
    registration_number: Mapped[str | None] = mapped_column(String(32), index=True)
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    contracts: Mapped[list[CustomerContract]] = relationship(
        back_populates="customer", cascade="all, delete-orphan", order_by="CustomerContract.number"
    )

    @property
    def contract_numbers(self) -> list[str]:
        return [contract.number for contract in self.contracts]


class CustomerContract(Base):
    """A supply contract number; one customer may hold several."""

    __tablename__ = "customer_contracts"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[str] = mapped_column(String(32), unique=True)

    customer: Mapped[Customer] = relationship(back_populates="contracts")
