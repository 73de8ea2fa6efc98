"""indexes for close-time reports in SQL

Revision ID: ledger_0003
Revises: ledger_0002
Create Date: 2026-12-06 00:40:00

Aging reads the items open now by a partial index and those open on an earlier day through
the settlements posted since; balances add up from the account index alone.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'ledger_0003'
down_revision = 'ledger_0002'
branch_labels = None
depends_on = None

OPEN = sa.text("open_minor <> 0")


def upgrade() -> None:
    with op.batch_alter_table('ledger_lines', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_lines_account')
        batch_op.create_index('ix_ledger_lines_account',
                              ['entity', 'account', 'posting_date', 'side', 'amount_minor'],
                              unique=False)

    with op.batch_alter_table('ledger_items', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_items_open', ['entity', 'posting_date'], unique=False,
                              sqlite_where=OPEN, postgresql_where=OPEN)

    with op.batch_alter_table('ledger_settlements', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_settlements_date', ['entity', 'posting_date'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ledger_settlements', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_settlements_date')

    with op.batch_alter_table('ledger_items', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_items_open')

    with op.batch_alter_table('ledger_lines', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_lines_account')
        batch_op.create_index('ix_ledger_lines_account', ['entity', 'account', 'posting_date'],
                              unique=False)
