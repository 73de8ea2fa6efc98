"""two-person requests and the approved configuration fingerprints

Revision ID: controls_0001
Revises:
Create Date: 2026-12-06 03:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from finsync.dbtypes import UtcDateTime

revision = 'controls_0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'controls_requests',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('subject', sa.String(length=255), nullable=False),
        sa.Column('params', sa.Text(), nullable=False),
        sa.Column('needs', sa.String(length=255), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('requested_by', sa.String(length=128), nullable=False),
        sa.Column('requested_at', UtcDateTime(), nullable=False),
        sa.Column('expires_at', UtcDateTime(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('decided_by', sa.String(length=128), nullable=True),
        sa.Column('decided_at', UtcDateTime(), nullable=True),
        sa.Column('decision_note', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_controls_requests')),
    )
    op.create_index('ix_controls_requests_kind_status', 'controls_requests',
                    ['kind', 'status'])
    op.create_table(
        'controls_config',
        sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('sections', sa.Text(), nullable=False),
        sa.Column('adopted_at', UtcDateTime(), nullable=False),
        sa.Column('adopted_by', sa.String(length=128), nullable=False),
        sa.Column('request_id', sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint('seq', name=op.f('pk_controls_config')),
    )


def downgrade() -> None:
    op.drop_table('controls_config')
    op.drop_index('ix_controls_requests_kind_status', table_name='controls_requests')
    op.drop_table('controls_requests')
