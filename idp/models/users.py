"""Portal users (natural persons who log in) and their memberships in customers."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from idp.db import Base, utcnow
from idp.models.customers import Customer

# User.status: an account that may log in and hold tokens; one that waits for its e-mail
# link (registration confirmation or admin activation); one an admin switched off.
ACTIVE = "active"
PENDING = "pending"
INACTIVE = "inactive"


def new_subject() -> str:
    return str(uuid.uuid4())


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    # `sub` in tokens: stable and opaque, never the database id or the e-mail.
    subject: Mapped[str] = mapped_column(String(64), unique=True, default=new_subject)
    # Normalised address (idp.accounts.services.normalize_email), unique.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    # The address as the person typed it, for display and mail.
    email_display: Mapped[str] = mapped_column(String(320))
    email_verified: Mapped[bool] = mapped_column(default=False)
    name: Mapped[str] = mapped_column(String(255))
    phone: Mapped[str | None] = mapped_column(String(32))
    # argon2id hash; None for accounts that cannot log in with a password.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    # ACTIVE, PENDING or INACTIVE.
    status: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    # Language of the pages and mails for this person, when known ("en", "lv", "ru").
    language: Mapped[str | None] = mapped_column(String(8))
    # The personal code a bank or eSignature asserted for this person (11 digits), never
    # one typed into a form: the key people are linked on (docs/domain.md).
    verified_personal_code: Mapped[str | None] = mapped_column(String(16), unique=True)
    # A user of the previous portal (flow 4): first login by bank or eSignature only, then
    # the contact form must be confirmed before anything else.
    legacy: Mapped[bool] = mapped_column(default=False)
    # The personal code the previous portal had for a legacy user: NOT verified. Their first
    # bank or eSignature login must assert the same code; it then becomes the verified one.
    legacy_personal_code: Mapped[str | None] = mapped_column(String(16), index=True)
    # The person still owes the contact-information form (legacy users, bank registration).
    contact_confirmed: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    memberships: Mapped[list[Membership]] = relationship(
        back_populates="user", foreign_keys="Membership.user_id"
    )

    @property
    def is_active(self) -> bool:
        return self.status == ACTIVE


class Membership(Base):
    """User U may act for customer C as ROLE (docs/domain.md, "Membership")."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("user_id", "customer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    # idp.memberships.rights.Role
    role: Mapped[str] = mapped_column(String(32))
    # Granted rights (idp.memberships.rights.Right values); what they allow is decided by
    # idp.memberships.rights.effective_rights (contractors and authorised persons: all).
    rights: Mapped[list[str]] = mapped_column(default=list)
    # idp.memberships.rights.MembershipState (models import nothing from features, so the
    # default is spelled out here)
    state: Mapped[str] = mapped_column(String(16), default="active")
    # Who granted it (None: the person registered themselves, or an admin from the CLI),
    # when, and on what evidence (e.g. the number of a signed application).
    granted_by_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    granted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    evidence: Mapped[str | None] = mapped_column(String(255))
    # Validity; an authorisation may end at a date.
    valid_from: Mapped[dt.datetime | None] = mapped_column()
    valid_until: Mapped[dt.datetime | None] = mapped_column()
    # An invitation (flows 6 and 7): the personal code the inviter typed, if any (the
    # person's bank or eSignature login must assert the same one), and when that login
    # proved the person; the membership turns active once the contact form is confirmed.
    invited_personal_code: Mapped[str | None] = mapped_column(String(16))
    accepted_at: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship(back_populates="memberships", foreign_keys=[user_id])
    customer: Mapped[Customer] = relationship()
