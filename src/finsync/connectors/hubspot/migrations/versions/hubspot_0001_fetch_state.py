"""hubspot: objects waiting to be fetched, and the versions given to approved states

Revision ID: hubspot_0001
Revises:
Create Date: 2026-12-06 18:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import finsync.dbtypes

revision = "hubspot_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hubspot_pending",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=32), nullable=False),
        sa.Column("object_id", sa.String(length=64), nullable=False),
        sa.Column("noted_at", finsync.dbtypes.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", "object_type", "object_id",
                                name=op.f("pk_hubspot_pending")),
    )
    op.create_table(
        "hubspot_versions",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=32), nullable=False),
        sa.Column("object_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("modified_at", finsync.dbtypes.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("source", "object_type", "object_id", "version",
                                name=op.f("pk_hubspot_versions")),
    )


def downgrade() -> None:
    op.drop_table("hubspot_versions")
    op.drop_table("hubspot_pending")
