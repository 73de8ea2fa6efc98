"""triage actions, delivery overrides, reconciliation runs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 20:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import finsync.dbtypes


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('deliveries') as batch:
        batch.add_column(sa.Column('override', sa.Text(), nullable=True))
    with op.batch_alter_table('exceptions') as batch:
        batch.alter_column('status', type_=sa.String(length=24),
                           existing_type=sa.String(length=16), existing_nullable=False)
    op.create_table('triage_actions',
    sa.Column('id', finsync.dbtypes.Serial, autoincrement=True, nullable=False),
    sa.Column('exception_id', sa.BigInteger(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('params', sa.Text(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('requested_by', sa.String(length=128), nullable=False),
    sa.Column('requested_at', finsync.dbtypes.UtcDateTime(), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('decided_by', sa.String(length=128), nullable=True),
    sa.Column('decided_at', finsync.dbtypes.UtcDateTime(), nullable=True),
    sa.Column('decision_note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['exception_id'], ['exceptions.id'], name=op.f('fk_triage_actions_exception_id_exceptions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_triage_actions'))
    )
    op.create_index(op.f('ix_triage_actions_exception_id'), 'triage_actions', ['exception_id'], unique=False)
    op.create_table('recon_runs',
    sa.Column('id', finsync.dbtypes.Serial, autoincrement=True, nullable=False),
    sa.Column('legal_entity', sa.String(length=64), nullable=False),
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('run_at', finsync.dbtypes.UtcDateTime(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('total_variance_minor', sa.BigInteger(), nullable=False),
    sa.Column('breaks', sa.Integer(), nullable=False),
    sa.Column('checks', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recon_runs'))
    )
    op.create_index('ix_recon_runs_entity_as_of', 'recon_runs', ['legal_entity', 'as_of'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_recon_runs_entity_as_of', table_name='recon_runs')
    op.drop_table('recon_runs')
    op.drop_index(op.f('ix_triage_actions_exception_id'), table_name='triage_actions')
    op.drop_table('triage_actions')
    with op.batch_alter_table('exceptions') as batch:
        batch.alter_column('status', type_=sa.String(length=16),
                           existing_type=sa.String(length=24), existing_nullable=False)
    with op.batch_alter_table('deliveries') as batch:
        batch.drop_column('override')
