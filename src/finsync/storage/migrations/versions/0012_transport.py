"""scale-out on NATS JetStream (`finsync.streaming`): a raw event's transport message id
(`raw_events.transport_id`, unique: an archiver that stores a redelivered message stores
nothing new), and each delivery's lane (the legal entity of its event, for the ERP lanes)
and a stable hash of its partition key (`partition_hash`: a worker claims the deliveries of
the partitions it owns as `partition_hash % partitions`, so the count can change)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 00:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('raw_events') as batch:
        batch.add_column(sa.Column('transport_id', sa.String(length=255), nullable=True))
        batch.create_index('ux_raw_events_transport_id', ['transport_id'], unique=True)
    with op.batch_alter_table('deliveries') as batch:
        batch.add_column(sa.Column('lane', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('partition_hash', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('deliveries') as batch:
        batch.drop_column('partition_hash')
        batch.drop_column('lane')
    with op.batch_alter_table('raw_events') as batch:
        batch.drop_index('ux_raw_events_transport_id')
        batch.drop_column('transport_id')
