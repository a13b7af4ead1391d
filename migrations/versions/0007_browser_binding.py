"""bind upstream logins and paused authorization requests to the browser

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 12:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: rows in flight during the upgrade have no binding and match no browser
    # (those people start again; both kinds of row live minutes).
    with op.batch_alter_table("upstream_logins", schema=None) as batch_op:
        batch_op.add_column(sa.Column("browser_hash", sa.String(length=64), nullable=True))
    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("browser_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.drop_column("browser_hash")
    with op.batch_alter_table("upstream_logins", schema=None) as batch_op:
        batch_op.drop_column("browser_hash")
