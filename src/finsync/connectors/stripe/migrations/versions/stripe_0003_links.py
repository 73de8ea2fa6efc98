"""stripe: what the subscription platform made at Stripe (customers, subscriptions, receipts)

Revision ID: stripe_0003
Revises: stripe_0002
Create Date: 2026-12-06 18:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "stripe_0003"
down_revision = "stripe_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stripe_links",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("stripe_id", sa.String(length=255), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("source", "kind", "key", name=op.f("pk_stripe_links")),
    )


def downgrade() -> None:
    op.drop_table("stripe_links")
