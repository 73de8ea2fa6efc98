"""ledger balances per currency from the account index alone

Revision ID: ledger_0008
Revises: ledger_0007
Create Date: 2026-12-06 22:40:00

Reconciliation reads each account's balances per transaction currency; with the lines'
transaction currency and amount in the account index, that read (like the functional one)
needs the index only, not the lines' rows.
"""

from __future__ import annotations

from alembic import op

revision = 'ledger_0008'
down_revision = 'ledger_0007'
branch_labels = None
depends_on = None

BEFORE = ['entity', 'account', 'posting_date', 'side', 'amount_minor']
AFTER = [*BEFORE, 'txn_currency', 'txn_amount_minor']


def upgrade() -> None:
    with op.batch_alter_table('ledger_lines', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_lines_account')
        batch_op.create_index('ix_ledger_lines_account', AFTER, unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ledger_lines', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_lines_account')
        batch_op.create_index('ix_ledger_lines_account', BEFORE, unique=False)
