"""the external-call log: one row per call a connector made, one per delivery it carried
(correlation id, idempotency key)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 03:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from finsync.dbtypes import Serial, UtcDateTime

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'external_calls',
        sa.Column('id', Serial, autoincrement=True, nullable=False),
        sa.Column('started_at', UtcDateTime(), nullable=False),
        sa.Column('system', sa.String(length=64), nullable=False),
        sa.Column('channel', sa.String(length=16), nullable=False),
        sa.Column('method', sa.String(length=255), nullable=False),
        sa.Column('endpoint', sa.String(length=1024), nullable=False),
        sa.Column('status', sa.String(length=32), nullable=False),
        sa.Column('error', sa.String(length=128), nullable=True),
        sa.Column('duration_us', sa.BigInteger(), nullable=False),
        sa.Column('request_bytes', sa.Integer(), nullable=True),
        sa.Column('response_bytes', sa.Integer(), nullable=True),
        sa.Column('request_excerpt', sa.Text(), nullable=True),
        sa.Column('response_excerpt', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id', name='pk_external_calls'),
    )
    op.create_index('ix_external_calls_started_at', 'external_calls', ['started_at'],
                    unique=False)
    op.create_table(
        'external_call_subjects',
        sa.Column('id', Serial, autoincrement=True, nullable=False),
        sa.Column('call_id', sa.BigInteger(), nullable=False),
        sa.Column('correlation_id', sa.String(length=255), nullable=False),
        sa.Column('idempotency_key', sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(['call_id'], ['external_calls.id'],
                                name='fk_external_call_subjects_call_id_external_calls'),
        sa.PrimaryKeyConstraint('id', name='pk_external_call_subjects'),
    )
    op.create_index('ix_external_call_subjects_correlation_id_call_id',
                    'external_call_subjects', ['correlation_id', 'call_id'], unique=False)
    op.create_index('ix_external_call_subjects_call_id', 'external_call_subjects',
                    ['call_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_external_call_subjects_call_id', table_name='external_call_subjects')
    op.drop_index('ix_external_call_subjects_correlation_id_call_id',
                  table_name='external_call_subjects')
    op.drop_table('external_call_subjects')
    op.drop_index('ix_external_calls_started_at', table_name='external_calls')
    op.drop_table('external_calls')
