"""the ERP posting budget shared by every worker process (`storage.posting_budget`): a
calls-per-minute token bucket and a count of calls per day per ERP target, and the leases
of its concurrency slots (a slot whose holder died comes back when its lease runs out)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 01:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from finsync.dbtypes import UtcDateTime

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'posting_budget',
        sa.Column('target', sa.String(length=64), nullable=False),
        sa.Column('window', sa.String(length=8), nullable=False),
        sa.Column('window_start', sa.BigInteger(), nullable=False),
        sa.Column('calls', sa.BigInteger(), nullable=False),
        sa.Column('tokens', sa.Float(), nullable=True),
        sa.Column('refilled_at_s', sa.Float(), nullable=True),
        sa.Column('paused_until_s', sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint('target', 'window', 'window_start',
                                name='pk_posting_budget'),
    )
    op.create_table(
        'posting_slots',
        sa.Column('target', sa.String(length=64), nullable=False),
        sa.Column('slot', sa.Integer(), nullable=False),
        sa.Column('holder', sa.String(length=128), nullable=True),
        sa.Column('expires_at', UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint('target', 'slot', name='pk_posting_slots'),
    )


def downgrade() -> None:
    op.drop_table('posting_slots')
    op.drop_table('posting_budget')
