"""the commercial layer: the period a catalogue entry's unit price covers, and billing's own
correlation id of the version that answered an order

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 19:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cpq_catalog_entries') as batch:
        batch.add_column(sa.Column('price_months', sa.Integer(), nullable=True))
    with op.batch_alter_table('cpq_orders') as batch:
        batch.add_column(sa.Column('billing_correlation_id', sa.String(length=255),
                                   nullable=True))
    op.create_index('ix_cpq_orders_billing_correlation_id', 'cpq_orders',
                    ['billing_correlation_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_cpq_orders_billing_correlation_id', table_name='cpq_orders')
    with op.batch_alter_table('cpq_orders') as batch:
        batch.drop_column('billing_correlation_id')
    with op.batch_alter_table('cpq_catalog_entries') as batch:
        batch.drop_column('price_months')
