"""the usage log: raw meter events (unique per source and event id), aggregation runs, and
the totals per subscription, product and day handed to billing

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 00:40:00

Chained after 0004 on branch i19-serve; re-chained after 0005 (i19-pipeline) when merged.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from finsync.dbtypes import Serial, UtcDateTime

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'usage_events',
        sa.Column('id', Serial, autoincrement=True, nullable=False),
        sa.Column('source', sa.String(length=64), nullable=False),
        sa.Column('event_id', sa.String(length=255), nullable=False),
        sa.Column('subscription_id', sa.String(length=255), nullable=False),
        sa.Column('product_id', sa.String(length=255), nullable=False),
        sa.Column('quantity', sa.BigInteger(), nullable=False),
        sa.Column('occurred_at', UtcDateTime(), nullable=False),
        sa.Column('usage_day', sa.Date(), nullable=False),
        sa.Column('received_at', UtcDateTime(), nullable=False),
        sa.Column('run_id', sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint('id', name='pk_usage_events'),
        sa.UniqueConstraint('source', 'event_id', name='uq_usage_events_source_event_id'),
    )
    op.create_index('ix_usage_events_run_id_usage_day', 'usage_events',
                    ['run_id', 'usage_day'], unique=False)
    op.create_table(
        'usage_runs',
        sa.Column('id', Serial, autoincrement=True, nullable=False),
        sa.Column('run_at', UtcDateTime(), nullable=False),
        sa.Column('through_day', sa.Date(), nullable=False),
        sa.Column('events', sa.Integer(), nullable=False),
        sa.Column('totals', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_usage_runs'),
    )
    op.create_table(
        'usage_totals',
        sa.Column('id', Serial, autoincrement=True, nullable=False),
        sa.Column('run_id', sa.BigInteger(), nullable=False),
        sa.Column('source', sa.String(length=64), nullable=False),
        sa.Column('subscription_id', sa.String(length=255), nullable=False),
        sa.Column('product_id', sa.String(length=255), nullable=False),
        sa.Column('usage_day', sa.Date(), nullable=False),
        sa.Column('quantity', sa.BigInteger(), nullable=False),
        sa.Column('events', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('error_code', sa.String(length=64), nullable=True),
        sa.Column('error_detail', sa.Text(), nullable=True),
        sa.Column('recorded_at', UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['run_id'], ['usage_runs.id'],
                                name='fk_usage_totals_run_id_usage_runs'),
        sa.PrimaryKeyConstraint('id', name='pk_usage_totals'),
        sa.UniqueConstraint('run_id', 'source', 'subscription_id', 'product_id', 'usage_day',
                            name='uq_usage_totals_key'),
    )
    op.create_index('ix_usage_totals_status_id', 'usage_totals', ['status', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_usage_totals_status_id', table_name='usage_totals')
    op.drop_table('usage_totals')
    op.drop_table('usage_runs')
    op.drop_index('ix_usage_events_run_id_usage_day', table_name='usage_events')
    op.drop_table('usage_events')
