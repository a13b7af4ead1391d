"""membership rights, grant and validity

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 07:34:39.771970
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing memberships keep what they had: contractors (the only role so far) hold
    # every right through their role; the grant time is when the membership was made.
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("rights", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
        batch_op.add_column(sa.Column("granted_by_user_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "granted_at",
                sa.DateTime(),
                nullable=False,
                server_default=sa.text("CURRENT_TIMESTAMP"),
            )
        )
        batch_op.add_column(sa.Column("evidence", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("valid_from", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("valid_until", sa.DateTime(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_memberships_granted_by_user_id_users"),
            "users",
            ["granted_by_user_id"],
            ["id"],
            ondelete="SET NULL",
        )
    op.execute("UPDATE memberships SET granted_at = created_at")
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.alter_column("rights", server_default=None)
        batch_op.alter_column("granted_at", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_memberships_granted_by_user_id_users"), type_="foreignkey"
        )
        batch_op.drop_column("valid_until")
        batch_op.drop_column("valid_from")
        batch_op.drop_column("evidence")
        batch_op.drop_column("granted_at")
        batch_op.drop_column("granted_by_user_id")
        batch_op.drop_column("rights")
