"""the commercial layer: catalogue map versions and entries, the orders sent to billing per
quote, and each contract's renewal baseline

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 18:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from finsync.dbtypes import UtcDateTime

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'cpq_catalog_versions',
        sa.Column('version', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('digest', sa.String(length=64), nullable=False),
        sa.Column('source', sa.String(length=1000), nullable=False),
        sa.Column('entries', sa.Integer(), nullable=False),
        sa.Column('loaded_at', UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('version', name='pk_cpq_catalog_versions'),
    )
    op.create_table(
        'cpq_catalog_entries',
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('code', sa.String(length=255), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('billing_product', sa.String(length=255), nullable=False),
        sa.Column('prices', sa.Text(), nullable=False),
        sa.Column('ssp_product', sa.String(length=255), nullable=False),
        sa.Column('revenue_account', sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(['version'], ['cpq_catalog_versions.version'],
                                name='fk_cpq_catalog_entries_version_cpq_catalog_versions'),
        sa.PrimaryKeyConstraint('version', 'code', name='pk_cpq_catalog_entries'),
    )
    op.create_table(
        'cpq_orders',
        sa.Column('quote_id', sa.String(length=255), nullable=False),
        sa.Column('contract_id', sa.String(length=255), nullable=False),
        sa.Column('cpq_version', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('catalog_version', sa.Integer(), nullable=True),
        sa.Column('delivery_key', sa.String(length=255), nullable=True),
        sa.Column('body', sa.Text(), nullable=True),
        sa.Column('detail', sa.Text(), nullable=True),
        sa.Column('updated_at', UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('quote_id', name='pk_cpq_orders'),
    )
    op.create_index('ix_cpq_orders_contract_id', 'cpq_orders', ['contract_id'], unique=False)
    op.create_table(
        'cpq_baselines',
        sa.Column('contract_id', sa.String(length=255), nullable=False),
        sa.Column('cpq_version', sa.Integer(), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('updated_at', UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('contract_id', name='pk_cpq_baselines'),
    )


def downgrade() -> None:
    op.drop_table('cpq_baselines')
    op.drop_index('ix_cpq_orders_contract_id', table_name='cpq_orders')
    op.drop_table('cpq_orders')
    op.drop_table('cpq_catalog_entries')
    op.drop_table('cpq_catalog_versions')
