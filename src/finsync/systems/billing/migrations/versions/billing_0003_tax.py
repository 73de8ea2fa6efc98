"""billing: held invoices, jurisdiction lines, tax-inclusive prices

Revision ID: billing_0003
Revises: billing_0002
Create Date: 2026-12-06 15:20:00

- `billing_held_invoices`: invoices billing could not tax, held as unnumbered drafts (the
  latest version of each; `invoice_id` once released).
- `billing_line_taxes`: the jurisdiction lines of each invoice and credit memo line.
  Documents stored before have none (their tax reads as one line of jurisdiction "").
- `billing_prices.tax_behavior`: "exclusive" (every price stored before) or "inclusive".
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import finsync.dbtypes

revision = 'billing_0003'
down_revision = 'billing_0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('billing_held_invoices',
    sa.Column('seq', finsync.dbtypes.Serial, autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=255), nullable=False),
    sa.Column('customer_id', sa.String(length=255), nullable=False),
    sa.Column('contract_id', sa.String(length=255), nullable=True),
    sa.Column('legal_entity', sa.String(length=64), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('issue_date', sa.Date(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('transient', sa.Boolean(), nullable=False),
    sa.Column('subtotal_minor', sa.BigInteger(), nullable=False),
    sa.Column('invoice_id', sa.String(length=255), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_billing_held_invoices'))
    )
    with op.batch_alter_table('billing_held_invoices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_billing_held_invoices_customer_id'),
                              ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_billing_held_invoices_invoice_id'),
                              ['invoice_id'], unique=False)
        batch_op.create_index('ux_billing_held_invoices_id', ['id'], unique=True)
    op.create_table('billing_line_taxes',
    sa.Column('document_id', sa.String(length=255), nullable=False),
    sa.Column('line_no', sa.Integer(), nullable=False),
    sa.Column('detail_no', sa.Integer(), nullable=False),
    sa.Column('jurisdiction', sa.String(length=32), nullable=False),
    sa.Column('tax_type', sa.String(length=32), nullable=False),
    sa.Column('rate', sa.String(length=40), nullable=False),
    sa.Column('treatment', sa.String(length=16), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('taxable_minor', sa.BigInteger(), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('document_id', 'line_no', 'detail_no',
                            name=op.f('pk_billing_line_taxes'))
    )
    with op.batch_alter_table('billing_prices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tax_behavior', sa.String(length=16), nullable=False,
                                      server_default='exclusive'))


def downgrade() -> None:
    with op.batch_alter_table('billing_prices', schema=None) as batch_op:
        batch_op.drop_column('tax_behavior')
    op.drop_table('billing_line_taxes')
    with op.batch_alter_table('billing_held_invoices', schema=None) as batch_op:
        batch_op.drop_index('ux_billing_held_invoices_id')
        batch_op.drop_index(batch_op.f('ix_billing_held_invoices_invoice_id'))
        batch_op.drop_index(batch_op.f('ix_billing_held_invoices_customer_id'))
    op.drop_table('billing_held_invoices')
