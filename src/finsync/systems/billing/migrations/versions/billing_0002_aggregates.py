"""billing: per-aggregate state: document numbers, the clock's next step, rated usage key

Revision ID: billing_0002
Revises: billing_0001
Create Date: 2026-12-06 00:45:00

- `billing_document_numbers` (the last number of each document kind and legal entity) is
  seeded with the count of each entity's invoices and credit memos, which is what numbering
  counted before (numbers are gapless from 1).
- `billing_subscriptions.next_step_on` is backfilled with a lower bound of the clock's next
  step (the earlier of billed-through and arrears-through: every step falls on or after
  it); the exact day is written the next time the subscription is saved or a clock run
  reads it.
- `(contract_id, line_id, period_start)` becomes unique in `billing_usage_charges`: a usage
  line is rated once per period (the id already derives from those three, so existing
  rows comply).
- PostgreSQL only: each `position` column draws its default from a sequence of its own
  (starting after the rows stored), so concurrent commands on different customers never
  race for the same position; SQLite, one writer at a time, takes max + 1.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

POSITIONED = ('billing_subscriptions', 'billing_invoices', 'billing_credit_memos',
              'billing_payments', 'billing_payment_declines', 'billing_refunds',
              'billing_usage_records', 'billing_usage_charges')

revision = 'billing_0002'
down_revision = 'billing_0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('billing_document_numbers',
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('legal_entity', sa.String(length=64), nullable=False),
    sa.Column('last_number', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('kind', 'legal_entity', name=op.f('pk_billing_document_numbers'))
    )
    op.execute("INSERT INTO billing_document_numbers (kind, legal_entity, last_number) "
               "SELECT 'invoice', legal_entity, count(*) FROM billing_invoices "
               "GROUP BY legal_entity")
    op.execute("INSERT INTO billing_document_numbers (kind, legal_entity, last_number) "
               "SELECT 'credit_memo', legal_entity, count(*) FROM billing_credit_memos "
               "GROUP BY legal_entity")
    with op.batch_alter_table('billing_subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_step_on', sa.Date(), nullable=True))
        batch_op.create_index(batch_op.f('ix_billing_subscriptions_next_step_on'),
                              ['next_step_on'], unique=False)
    op.execute("UPDATE billing_subscriptions SET next_step_on = CASE "
               "WHEN billed_through < arrears_through THEN billed_through "
               "ELSE arrears_through END")
    with op.batch_alter_table('billing_usage_charges', schema=None) as batch_op:
        batch_op.create_index('ux_billing_usage_charges_line_period',
                              ['contract_id', 'line_id', 'period_start'], unique=True)
    if op.get_bind().dialect.name == 'postgresql':
        for table in POSITIONED:
            op.execute(f"CREATE SEQUENCE {table}_position_seq MINVALUE 0 START 0 "
                       f"OWNED BY {table}.position")
            op.execute(f"SELECT setval('{table}_position_seq', "
                       f"(SELECT coalesce(max(position) + 1, 0) FROM {table}), false)")
            op.execute(f"ALTER TABLE {table} ALTER COLUMN position "
                       f"SET DEFAULT nextval('{table}_position_seq')")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for table in POSITIONED:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN position DROP DEFAULT")
            op.execute(f"DROP SEQUENCE {table}_position_seq")
    with op.batch_alter_table('billing_usage_charges', schema=None) as batch_op:
        batch_op.drop_index('ux_billing_usage_charges_line_period')
    with op.batch_alter_table('billing_subscriptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_billing_subscriptions_next_step_on'))
        batch_op.drop_column('next_step_on')
    op.drop_table('billing_document_numbers')
