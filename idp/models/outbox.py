"""The mail outbox: mail is written in the caller's transaction and delivered later.

The bodies carry live links, so they are stored encrypted (like signing keys) and erased
once the mail is delivered; subject and address stay for `idp mail pending` and support.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, utcnow


class OutboxMail(Base):
    __tablename__ = "outbox_mails"

    id: Mapped[int] = mapped_column(primary_key=True)
    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(255))
    # Fernet-encrypted JSON {"text": ..., "html": ...}; emptied after delivery.
    body_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    language: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    # The sender picks mails with sent_at IS NULL and next_attempt_at <= now.
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    # A sender claims a mail until this moment, so two instances never send it twice.
    claimed_until: Mapped[dt.datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(String(500))
    sent_at: Mapped[dt.datetime | None] = mapped_column(index=True)
