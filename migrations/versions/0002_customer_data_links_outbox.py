"""customer data, e-mail links, mail outbox

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 05:32:23.445322
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox_mails",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("to_address", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("body_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("claimed_until", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_mails")),
    )
    with op.batch_alter_table("outbox_mails", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_outbox_mails_next_attempt_at"), ["next_attempt_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_outbox_mails_sent_at"), ["sent_at"], unique=False)

    op.create_table(
        "customer_contracts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_contracts_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_contracts")),
        sa.UniqueConstraint("number", name=op.f("uq_customer_contracts_number")),
    )
    with op.batch_alter_table("customer_contracts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_customer_contracts_customer_id"), ["customer_id"], unique=False
        )

    op.create_table(
        "email_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=128), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("state_hash", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.Column("voided_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_email_links_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_email_links_token_hash")),
    )
    with op.batch_alter_table("email_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_email_links_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index("ix_email_links_user_purpose", ["user_id", "purpose"], unique=False)

    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("given_name", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("family_name", sa.String(length=255), nullable=True))
        # Existing rows get the migration time.
        batch_op.add_column(
            sa.Column(
                "updated_at",
                sa.DateTime(),
                nullable=False,
                server_default=sa.text("CURRENT_TIMESTAMP"),
            )
        )
        batch_op.create_index(
            batch_op.f("ix_customers_registration_number"), ["registration_number"], unique=False
        )
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.alter_column("updated_at", server_default=None)

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("language", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("language")

    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customers_registration_number"))
        batch_op.drop_column("updated_at")
        batch_op.drop_column("family_name")
        batch_op.drop_column("given_name")

    with op.batch_alter_table("email_links", schema=None) as batch_op:
        batch_op.drop_index("ix_email_links_user_purpose")
        batch_op.drop_index(batch_op.f("ix_email_links_expires_at"))

    op.drop_table("email_links")
    with op.batch_alter_table("customer_contracts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_contracts_customer_id"))

    op.drop_table("customer_contracts")
    with op.batch_alter_table("outbox_mails", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_mails_sent_at"))
        batch_op.drop_index(batch_op.f("ix_outbox_mails_next_attempt_at"))

    op.drop_table("outbox_mails")
