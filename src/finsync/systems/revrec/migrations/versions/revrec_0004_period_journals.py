"""revrec period journals: stored at close, the change log, contracts split for contra

Revision ID: revrec_0004
Revises: revrec_0003
Create Date: 2026-12-06 13:15:00

No backfill: no journal was stored before this revision (a period closed before it is
journaled again as before, once, when a close asks), and the change log starts empty (so
nothing counts as changed after a close it did not see). A contract stored before it is
marked for the contra split on its next change.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'revrec_0004'
down_revision = 'revrec_0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'revrec_changes',
        sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                  autoincrement=True, nullable=False),
        sa.Column('revenue_contract_id', sa.String(length=64), nullable=False),
        sa.Column('event_id', sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint('seq', name=op.f('pk_revrec_changes')))
    op.create_index(op.f('ix_revrec_changes_revenue_contract_id'), 'revrec_changes',
                    ['revenue_contract_id'])
    op.create_table(
        'revrec_split_contracts',
        sa.Column('revenue_contract_id', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('revenue_contract_id', name=op.f('pk_revrec_split_contracts')))
    op.create_table(
        'revrec_journals',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('legal_entity', sa.String(length=64), nullable=False),
        sa.Column('period_start', sa.Date(), nullable=False),
        sa.Column('period_end', sa.Date(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('entry', sa.Text(), nullable=False),
        sa.Column('request_id', sa.String(length=255), nullable=False),
        sa.Column('change_seq', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_revrec_journals')))
    op.create_index(op.f('ix_revrec_journals_legal_entity_period_start_currency'),
                    'revrec_journals', ['legal_entity', 'period_start', 'currency'],
                    unique=True)
    op.create_table(
        'revrec_journal_movements',
        sa.Column('journal_id', sa.String(length=64), nullable=False),
        sa.Column('legal_entity', sa.String(length=64), nullable=False),
        sa.Column('revenue_contract_id', sa.String(length=64), nullable=False),
        sa.Column('adjusts_start', sa.Date(), nullable=False),
        *(sa.Column(f'{name}_minor', sa.BigInteger(), nullable=False) for name in (
            'revenue', 'contra', 'deferred_revenue', 'refund_liability', 'contract_asset',
            'unbilled_receivable')),
        sa.PrimaryKeyConstraint('journal_id', 'revenue_contract_id', 'adjusts_start',
                                name=op.f('pk_revrec_journal_movements')))
    op.create_index(op.f('ix_revrec_journal_movements_legal_entity_revenue_contract_id'),
                    'revrec_journal_movements', ['legal_entity', 'revenue_contract_id'])


def downgrade() -> None:
    op.drop_table('revrec_journal_movements')
    op.drop_table('revrec_journals')
    op.drop_table('revrec_split_contracts')
    op.drop_table('revrec_changes')
