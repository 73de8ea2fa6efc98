"""the pending deliveries of each target in id order (`ix_deliveries_pending`, partial): a
claim walks them and stops at its limit, whatever the backlog

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

_PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_index('ix_deliveries_pending', 'deliveries', ['target', 'id'],
                    postgresql_where=_PENDING, sqlite_where=_PENDING)


def downgrade() -> None:
    op.drop_index('ix_deliveries_pending', table_name='deliveries')
