"""refused bodies stored once and counted; lease expiries per delivery; exception occurrences

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 22:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('raw_events') as batch:
        batch.add_column(sa.Column('body_sha256', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('refusals', sa.Integer(), server_default='0',
                                   nullable=False))
        batch.create_index('ix_raw_events_source_body_sha256', ['source', 'body_sha256'],
                           unique=False)
    with op.batch_alter_table('deliveries') as batch:
        batch.add_column(sa.Column('lease_expiries', sa.Integer(), server_default='0',
                                   nullable=False))
    with op.batch_alter_table('exceptions') as batch:
        batch.add_column(sa.Column('occurrences', sa.Integer(), server_default='1',
                                   nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('exceptions') as batch:
        batch.drop_column('occurrences')
    with op.batch_alter_table('deliveries') as batch:
        batch.drop_column('lease_expiries')
    with op.batch_alter_table('raw_events') as batch:
        batch.drop_index('ix_raw_events_source_body_sha256')
        batch.drop_column('refusals')
        batch.drop_column('body_sha256')
