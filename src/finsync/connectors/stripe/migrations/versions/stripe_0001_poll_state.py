"""stripe: poll cursors and the versions given to events of versioned objects

Revision ID: stripe_0001
Revises:
Create Date: 2026-11-27 20:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import finsync.dbtypes

revision = "stripe_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stripe_cursors",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Text(), nullable=False),
        sa.Column("updated_at", finsync.dbtypes.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_stripe_cursors")),
    )
    op.create_table(
        "stripe_versions",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("object_id", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("source", "event_id", name=op.f("pk_stripe_versions")),
        sa.UniqueConstraint("source", "object_id", "version",
                            name=op.f("uq_stripe_versions_source_object_id_version")),
    )


def downgrade() -> None:
    op.drop_table("stripe_versions")
    op.drop_table("stripe_cursors")
