"""acting for a customer

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 08:47:47.404602
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # docs/domain.md "What relying apps receive": codes, token families, paused requests,
    # browser sessions and remembered consent are bound to the customer acted for;
    # invitations carry the invited personal code; membership changes are audited.
    # Existing consent (per user and client) stays valid for "no customer" only.
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("customer_number", sa.String(length=32), nullable=False),
        sa.Column("membership_id", sa.Integer(), nullable=True),
        sa.Column("subject_user_id", sa.Integer(), nullable=True),
        sa.Column("subject_email", sa.String(length=320), nullable=False),
        sa.Column("actor_user_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("origin", sa.String(length=64), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_user_id"],
            ["users.id"],
            name=op.f("fk_audit_events_actor_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_audit_events_customer_id_customers"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["membership_id"],
            ["memberships.id"],
            name=op.f("fk_audit_events_membership_id_memberships"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["subject_user_id"],
            ["users.id"],
            name=op.f("fk_audit_events_subject_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_events_at"), ["at"], unique=False)
        batch_op.create_index("ix_audit_events_customer_at", ["customer_id", "at"], unique=False)

    with op.batch_alter_table("authorization_codes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("customer_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_authorization_codes_customer_id_customers"),
            "customers",
            ["customer_id"],
            ["id"],
            ondelete="CASCADE",
        )

    with op.batch_alter_table("browser_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("acting_customer_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_browser_sessions_acting_customer_id_customers"),
            "customers",
            ["acting_customer_id"],
            ["id"],
            ondelete="SET NULL",
        )

    with op.batch_alter_table("consent_grants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("customer_id", sa.Integer(), nullable=True))
        batch_op.drop_constraint(batch_op.f("uq_consent_grants_user_id"), type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_consent_grants_user_id"), ["user_id", "client_id", "customer_id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_consent_grants_customer_id_customers"),
            "customers",
            ["customer_id"],
            ["id"],
            ondelete="CASCADE",
        )

    with op.batch_alter_table("email_links", schema=None) as batch_op:
        batch_op.add_column(sa.Column("membership_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_email_links_membership_id_memberships"),
            "memberships",
            ["membership_id"],
            ["id"],
            ondelete="CASCADE",
        )

    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("customer_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_interactions_customer_id_customers"),
            "customers",
            ["customer_id"],
            ["id"],
            ondelete="CASCADE",
        )

    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.add_column(sa.Column("invited_personal_code", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("accepted_at", sa.DateTime(), nullable=True))

    with op.batch_alter_table("token_families", schema=None) as batch_op:
        batch_op.add_column(sa.Column("customer_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_token_families_customer_id"), ["customer_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_token_families_customer_id_customers"),
            "customers",
            ["customer_id"],
            ["id"],
            ondelete="CASCADE",
        )

    with op.batch_alter_table("upstream_logins", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email_link_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("password_hash", sa.String(length=255), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_upstream_logins_email_link_id_email_links"),
            "email_links",
            ["email_link_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    with op.batch_alter_table("upstream_logins", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_upstream_logins_email_link_id_email_links"), type_="foreignkey"
        )
        batch_op.drop_column("password_hash")
        batch_op.drop_column("email_link_id")

    with op.batch_alter_table("token_families", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_token_families_customer_id_customers"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_token_families_customer_id"))
        batch_op.drop_column("customer_id")

    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_column("accepted_at")
        batch_op.drop_column("invited_personal_code")

    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_interactions_customer_id_customers"), type_="foreignkey"
        )
        batch_op.drop_column("customer_id")

    with op.batch_alter_table("email_links", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_email_links_membership_id_memberships"), type_="foreignkey"
        )
        batch_op.drop_column("membership_id")

    with op.batch_alter_table("consent_grants", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_consent_grants_customer_id_customers"), type_="foreignkey"
        )
        batch_op.drop_constraint(batch_op.f("uq_consent_grants_user_id"), type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_consent_grants_user_id"), ["user_id", "client_id"]
        )
        batch_op.drop_column("customer_id")

    with op.batch_alter_table("browser_sessions", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_browser_sessions_acting_customer_id_customers"), type_="foreignkey"
        )
        batch_op.drop_column("acting_customer_id")

    with op.batch_alter_table("authorization_codes", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_authorization_codes_customer_id_customers"), type_="foreignkey"
        )
        batch_op.drop_column("customer_id")

    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_customer_at")
        batch_op.drop_index(batch_op.f("ix_audit_events_at"))

    op.drop_table("audit_events")
