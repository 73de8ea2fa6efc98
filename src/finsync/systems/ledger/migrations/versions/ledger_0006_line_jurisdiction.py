"""a ledger line's tax jurisdiction, in its own column

Revision ID: ledger_0006
Revises: ledger_0005
Create Date: 2026-12-06 15:30:00

Invoices and credit memos credit tax payable one line per jurisdiction, each with the
dimension `jurisdiction`; reconciliation reads tax payable per document and jurisdiction in
SQL, so the jurisdiction is also kept in a column. Lines posted before this revision carry
no jurisdiction dimension (their tax had no breakdown): the column stays null on them, and
nothing needs backfilling.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'ledger_0006'
down_revision = 'ledger_0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ledger_lines", sa.Column("jurisdiction", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ledger_lines") as batch:
        batch.drop_column("jurisdiction")
