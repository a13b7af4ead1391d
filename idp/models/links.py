"""Links sent by e-mail (confirm an address, activate an account, reset a password).

Only a hash of the token is stored. A link is bound to one purpose, one user and a
fingerprint of the user's state when it was issued (docs/domain.md, "Every link sent by e-mail").
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, utcnow


class EmailLink(Base):
    __tablename__ = "email_links"
    __table_args__ = (Index("ix_email_links_user_purpose", "user_id", "purpose"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # SHA-256 of the token in the link (idp.security.hash_secret).
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    # idp.accounts.links.Purpose
    purpose: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # An invitation link (flows 6 and 7) belongs to one membership: a person invited by
    # two customers holds two live links.
    membership_id: Mapped[int | None] = mapped_column(
        ForeignKey("memberships.id", ondelete="CASCADE")
    )
    # Fingerprint of what the link was issued for (e.g. the password hash for a reset):
    # when the user's state changes, the link no longer matches and dies.
    state_hash: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    # Set exactly once, by the atomic consume, or when a newer link of the purpose is issued.
    used_at: Mapped[dt.datetime | None] = mapped_column()
    voided_at: Mapped[dt.datetime | None] = mapped_column()
    # purpose change_email: the address the account moves to when the link is used (as
    # typed; it is normalised again then).
    new_email: Mapped[str | None] = mapped_column(String(320))
