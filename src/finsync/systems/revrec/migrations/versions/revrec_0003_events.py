"""revrec events: each contract's baseline state and the events applied to it since

Revision ID: revrec_0003
Revises: revrec_0002
Create Date: 2026-12-06 13:00:00

No back-fill: the events applied before this revision were never kept. A contract stored
before it gets its baseline (its state as it stands) when its first event after the upgrade
comes (`event_log.ensure_baseline`); a back-dated event is then put in canonical order among
the events kept since, and the events folded into the baseline stay where they were.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'revrec_0003'
down_revision = 'revrec_0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('revrec_event_baselines',
    sa.Column('revenue_contract_id', sa.String(length=64), nullable=False),
    sa.Column('state', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('revenue_contract_id', name=op.f('pk_revrec_event_baselines'))
    )
    op.create_table('revrec_events',
    sa.Column('revenue_contract_id', sa.String(length=64), nullable=False),
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.Column('effective_date', sa.Date(), nullable=False),
    sa.Column('precedence', sa.Integer(), nullable=False),
    sa.Column('contract_version', sa.Integer(), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('revenue_contract_id', 'event_id', name=op.f('pk_revrec_events'))
    )


def downgrade() -> None:
    op.drop_table('revrec_events')
    op.drop_table('revrec_event_baselines')
