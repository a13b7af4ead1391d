"""one remembered consent per user and client when acting for no customer

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 12:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The unique (user_id, client_id, customer_id) constraint of 0005 lets rows with
    # customer_id NULL repeat (NULLs are distinct); two "Allow" clicks at once could store
    # two. Keep the newest of each, then let a partial unique index refuse another.
    op.execute(
        sa.text(
            "DELETE FROM consent_grants WHERE customer_id IS NULL AND id < ("
            "SELECT MAX(newer.id) FROM consent_grants AS newer "
            "WHERE newer.customer_id IS NULL AND newer.user_id = consent_grants.user_id "
            "AND newer.client_id = consent_grants.client_id)"
        )
    )
    with op.batch_alter_table("consent_grants", schema=None) as batch_op:
        batch_op.create_index(
            "uq_consent_grants_no_customer",
            ["user_id", "client_id"],
            unique=True,
            sqlite_where=sa.text("customer_id IS NULL"),
            postgresql_where=sa.text("customer_id IS NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("consent_grants", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_consent_grants_no_customer",
            sqlite_where=sa.text("customer_id IS NULL"),
            postgresql_where=sa.text("customer_id IS NULL"),
        )
