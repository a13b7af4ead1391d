"""upstream providers, logins and links

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 06:45:29.962658
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "upstream_logins",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("state_hash", sa.String(length=128), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("pending_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("interaction_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.Column("identity_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("form_token_hash", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upstream_logins")),
        sa.UniqueConstraint("form_token_hash", name=op.f("uq_upstream_logins_form_token_hash")),
        sa.UniqueConstraint("state_hash", name=op.f("uq_upstream_logins_state_hash")),
    )
    with op.batch_alter_table("upstream_logins", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_upstream_logins_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "upstream_providers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        sa.Column("base_url", sa.String(length=255), nullable=False),
        sa.Column("client_id", sa.String(length=255), nullable=False),
        sa.Column("client_secret_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upstream_providers")),
        sa.UniqueConstraint("name", name=op.f("uq_upstream_providers_name")),
    )
    op.create_table(
        "upstream_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_login_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_upstream_links_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upstream_links")),
        sa.UniqueConstraint("provider", "subject", name=op.f("uq_upstream_links_provider")),
    )
    with op.batch_alter_table("upstream_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_upstream_links_user_id"), ["user_id"], unique=False)

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("verified_personal_code", sa.String(length=16), nullable=True)
        )
        # Existing accounts: not legacy, contact data as it is.
        batch_op.add_column(
            sa.Column("legacy", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("contact_confirmed", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch_op.add_column(sa.Column("legacy_personal_code", sa.String(length=16), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_users_legacy_personal_code"), ["legacy_personal_code"], unique=False
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_users_verified_personal_code"), ["verified_personal_code"]
        )

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.alter_column("legacy", server_default=None)
        batch_op.alter_column("contact_confirmed", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_users_verified_personal_code"), type_="unique")
        batch_op.drop_index(batch_op.f("ix_users_legacy_personal_code"))
        batch_op.drop_column("legacy_personal_code")
        batch_op.drop_column("contact_confirmed")
        batch_op.drop_column("legacy")
        batch_op.drop_column("verified_personal_code")

    with op.batch_alter_table("upstream_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_upstream_links_user_id"))

    op.drop_table("upstream_links")
    op.drop_table("upstream_providers")
    with op.batch_alter_table("upstream_logins", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_upstream_logins_expires_at"))

    op.drop_table("upstream_logins")
