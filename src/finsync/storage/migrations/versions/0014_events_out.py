"""events out (`finsync.streaming.events_out`): where each namespace's relay has got to in
the event log and in the milestone log (`relay_cursors`), and the events it passed before
they were accepted, which it publishes once they are (`relay_waiting`)

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-07 00:15:00

Written on branch i20-ops. Revision 0013 (ERP lanes, branch i20-lanes) was not on main yet:
this one revises 0012; at merge it revises 0013 (set `down_revision = '0013'`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from finsync.dbtypes import UtcDateTime

revision = '0014'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'relay_cursors',
        sa.Column('relay', sa.String(length=64), nullable=False),
        sa.Column('log', sa.String(length=16), nullable=False),
        sa.Column('position', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('relay', 'log', name=op.f('pk_relay_cursors')),
    )
    op.create_table(
        'relay_waiting',
        sa.Column('relay', sa.String(length=64), nullable=False),
        sa.Column('position', sa.BigInteger(), nullable=False),
        sa.Column('since', UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('relay', 'position', name=op.f('pk_relay_waiting')),
    )


def downgrade() -> None:
    op.drop_table('relay_waiting')
    op.drop_table('relay_cursors')
