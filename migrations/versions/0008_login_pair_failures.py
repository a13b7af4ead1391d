"""login throttling per (address, account) instead of per address

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Issue 11: counting every failure per address slowed down everyone behind one address
    # (CGNAT, offices). Failures are now kept per (address, account); the per-address
    # throttle counts the distinct accounts among them.
    op.create_table(
        "login_pair_failures",
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=320), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("address", "account", name=op.f("pk_login_pair_failures")),
    )
    # The old "ip:<address>" counters are read by nothing any more.
    op.execute(sa.text("DELETE FROM login_failures WHERE key LIKE 'ip:%'"))


def downgrade() -> None:
    # The old per-address counters start again from zero (they are only throttling state).
    op.drop_table("login_pair_failures")
