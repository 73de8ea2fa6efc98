"""summary members of the posting buffer

Revision ID: summary_0001
Revises:
Create Date: 2026-12-01 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'summary_0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'summary_members',
        sa.Column('summary_key', sa.String(length=200), nullable=False),
        sa.Column('delivery_id', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('document_id', sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint('delivery_id', name=op.f('pk_summary_members')),
    )
    with op.batch_alter_table('summary_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_summary_members_summary_key'), ['summary_key'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('summary_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_summary_members_summary_key'))
    op.drop_table('summary_members')
