"""usage totals per billing period: `usage_totals.usage_day` becomes `period_start`, beside a
new `period_end` (a total made per day before this keeps its day: [day, day + 1)); the
periods an aggregation run totals by (`usage_run_periods`, emptied by the run itself); the
events indexed by run, subscription and day (what joins them to their periods)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 21:40:00

Written on branch i19-usage after 0010; another branch's 0011 may need this one renumbered.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index('ix_usage_events_run_id_usage_day', table_name='usage_events')
    op.create_index('ix_usage_events_run_id_subscription_id_usage_day', 'usage_events',
                    ['run_id', 'subscription_id', 'usage_day'], unique=False)
    with op.batch_alter_table('usage_totals') as batch:
        batch.alter_column('usage_day', new_column_name='period_start',
                           existing_type=sa.Date(), existing_nullable=False)
        batch.add_column(sa.Column('period_end', sa.Date(), nullable=True))
    day_after = ("date(period_start, '+1 day')" if op.get_bind().dialect.name == 'sqlite'
                 else 'period_start + 1')
    op.execute(f'UPDATE usage_totals SET period_end = {day_after}')
    with op.batch_alter_table('usage_totals') as batch:
        batch.alter_column('period_end', existing_type=sa.Date(), nullable=False)
    op.create_table(
        'usage_run_periods',
        sa.Column('run_id', sa.BigInteger(), nullable=False),
        sa.Column('subscription_id', sa.String(length=255), nullable=False),
        sa.Column('period_start', sa.Date(), nullable=False),
        sa.Column('period_end', sa.Date(), nullable=False),
        sa.Column('daily', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('run_id', 'subscription_id', 'period_start',
                                name='pk_usage_run_periods'),
    )


def downgrade() -> None:
    op.drop_index('ix_usage_events_run_id_subscription_id_usage_day', table_name='usage_events')
    op.create_index('ix_usage_events_run_id_usage_day', 'usage_events',
                    ['run_id', 'usage_day'], unique=False)
    op.drop_table('usage_run_periods')
    with op.batch_alter_table('usage_totals') as batch:
        batch.drop_column('period_end')
        batch.alter_column('period_start', new_column_name='usage_day',
                           existing_type=sa.Date(), existing_nullable=False)
