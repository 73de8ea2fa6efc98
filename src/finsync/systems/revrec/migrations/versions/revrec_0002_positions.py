"""revrec positions: per-contract, per-month position rows, computed from every stored state

Revision ID: revrec_0002
Revises: revrec_0001
Create Date: 2026-12-06 00:55:00

The backfill decodes each stored state once, in batches, and writes its rows with the same
code the service writes them with on every change (`position_write.write`), so an upgraded
database reads exactly as a new one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'revrec_0002'
down_revision = 'revrec_0001'
branch_labels = None
depends_on = None

BATCH = 500


def upgrade() -> None:
    with op.batch_alter_table('revrec_contracts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('customer_id', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('positions_from', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('positions_to', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('transaction_price_minor', sa.BigInteger(),
                                      nullable=True))
    op.create_table('revrec_positions',
    sa.Column('revenue_contract_id', sa.String(length=64), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('billed_minor', sa.BigInteger(), nullable=False),
    sa.Column('recognised_minor', sa.BigInteger(), nullable=False),
    sa.Column('deferred_revenue_minor', sa.BigInteger(), nullable=False),
    sa.Column('contract_asset_minor', sa.BigInteger(), nullable=False),
    sa.Column('unbilled_receivable_minor', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('revenue_contract_id', 'day', name=op.f('pk_revrec_positions'))
    )
    with op.batch_alter_table('revrec_positions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_revrec_positions_day'), ['day'], unique=False)
    op.create_table('revrec_obligation_positions',
    sa.Column('revenue_contract_id', sa.String(length=64), nullable=False),
    sa.Column('ordinal', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('recognised_minor', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('revenue_contract_id', 'ordinal', 'day',
                            name=op.f('pk_revrec_obligation_positions'))
    )
    op.create_table('revrec_obligations',
    sa.Column('revenue_contract_id', sa.String(length=64), nullable=False),
    sa.Column('ordinal', sa.Integer(), nullable=False),
    sa.Column('obligation_id', sa.String(length=255), nullable=False),
    sa.Column('schedule_id', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('allocated_minor', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('revenue_contract_id', 'ordinal', name=op.f('pk_revrec_obligations'))
    )
    op.create_table('revrec_billings',
    sa.Column('revenue_contract_id', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('document_id', sa.String(length=255), nullable=False),
    sa.Column('obligation_id', sa.String(length=255), nullable=False),
    sa.Column('issued_on', sa.Date(), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('revenue_contract_id', 'seq', name=op.f('pk_revrec_billings'))
    )
    _backfill(op.get_bind())


def _backfill(conn: sa.Connection) -> None:
    """Rows for every stored state, in id order, a batch of states decoded at a time."""
    # Imported here: the backfill runs the engine's own code, which the schema above serves.
    from finsync.systems.revrec import position_write, tables
    from finsync.systems.revrec.position import contract_positions
    from finsync.systems.revrec.serial import loads_state

    contracts = tables.contracts
    after = ""
    while True:
        batch = conn.execute(sa.select(contracts.c.id, contracts.c.state)
                             .where(contracts.c.id > after)
                             .order_by(contracts.c.id).limit(BATCH)).all()
        if not batch:
            return
        for rc, text in batch:
            state = loads_state(text)
            conn.execute(sa.update(contracts).where(contracts.c.id == rc).values(
                customer_id=state.contract.customer_id))
            position_write.write(conn, rc, contract_positions(state))
        after = batch[-1].id


def downgrade() -> None:
    op.drop_table('revrec_billings')
    op.drop_table('revrec_obligations')
    op.drop_table('revrec_obligation_positions')
    with op.batch_alter_table('revrec_positions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_revrec_positions_day'))
    op.drop_table('revrec_positions')
    with op.batch_alter_table('revrec_contracts', schema=None) as batch_op:
        batch_op.drop_column('transaction_price_minor')
        batch_op.drop_column('positions_to')
        batch_op.drop_column('positions_from')
        batch_op.drop_column('customer_id')
