"""the ledger's parties: the customer master as the ERP keeps it

Revision ID: ledger_0007
Revises: ledger_0006
Create Date: 2026-12-06 18:30:00

One row a customer (its canonical id): name, legal entity, currency, country and region,
tax id, postal address and the master's version that wrote it, with the delivery key of
that write. Nothing to backfill: the rows come with the customer master's next upsert.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import finsync.dbtypes

revision = 'ledger_0007'
down_revision = 'ledger_0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_parties",
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("legal_entity", sa.String(255), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("country", sa.Text(), nullable=False),
        sa.Column("region", sa.Text(), nullable=True),
        sa.Column("tax_id", sa.Text(), nullable=True),
        sa.Column("street", sa.Text(), nullable=True),
        sa.Column("city", sa.Text(), nullable=True),
        sa.Column("postal_code", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("delivery_key", sa.String(255), nullable=False),
        sa.Column("updated_at", finsync.dbtypes.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_parties")),
    )
    op.create_index(op.f("ix_ledger_parties_delivery_key"), "ledger_parties",
                    ["delivery_key"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_ledger_parties_delivery_key"), table_name="ledger_parties")
    op.drop_table("ledger_parties")
