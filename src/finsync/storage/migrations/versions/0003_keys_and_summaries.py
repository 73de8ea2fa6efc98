"""distinct names for the business key and the delivery key; summary members join the
hub's own migration chain

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 21:30:00

The posting buffer's `summary_members` table had a chain of its own (version table
`summary_alembic_version`); a database that ran it keeps its table and rows, and the old
version table is dropped.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def _rename_unique(table: str, old: str, new: str) -> None:
    with op.batch_alter_table(table) as batch:
        batch.drop_constraint(f'uq_{table}_{old}', type_='unique')
        batch.alter_column(old, new_column_name=new, existing_type=sa.String(length=255))
    with op.batch_alter_table(table) as batch:
        batch.create_unique_constraint(f'uq_{table}_{new}', [new])


def upgrade() -> None:
    _rename_unique('events', 'idempotency_key', 'business_key')
    _rename_unique('deliveries', 'idempotency_key', 'delivery_key')
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table('summary_members'):
        op.create_table(
            'summary_members',
            sa.Column('summary_key', sa.String(length=200), nullable=False),
            sa.Column('delivery_id', sa.BigInteger(), autoincrement=False, nullable=False),
            sa.Column('document_id', sa.String(length=200), nullable=False),
            sa.PrimaryKeyConstraint('delivery_id', name=op.f('pk_summary_members')),
        )
        with op.batch_alter_table('summary_members') as batch:
            batch.create_index(batch.f('ix_summary_members_summary_key'), ['summary_key'],
                               unique=False)
    if inspector.has_table('summary_alembic_version'):
        op.drop_table('summary_alembic_version')


def downgrade() -> None:
    _rename_unique('deliveries', 'delivery_key', 'idempotency_key')
    _rename_unique('events', 'business_key', 'idempotency_key')
