"""API tokens, stored as hashes

Revision ID: auth_0001
Revises:
Create Date: 2026-12-06 03:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from finsync.dbtypes import UtcDateTime

revision = 'auth_0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'auth_tokens',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('name', sa.String(length=128), nullable=False),
        sa.Column('principal', sa.String(length=128), nullable=False),
        sa.Column('scopes', sa.Text(), nullable=False),
        sa.Column('secret_hash', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('created_at', UtcDateTime(), nullable=False),
        sa.Column('created_by', sa.String(length=128), nullable=False),
        sa.Column('expires_at', UtcDateTime(), nullable=False),
        sa.Column('approval_expires_at', UtcDateTime(), nullable=True),
        sa.Column('approved_at', UtcDateTime(), nullable=True),
        sa.Column('approved_by', sa.String(length=128), nullable=True),
        sa.Column('last_used_at', UtcDateTime(), nullable=True),
        sa.Column('revoked_at', UtcDateTime(), nullable=True),
        sa.Column('revoked_by', sa.String(length=128), nullable=True),
        sa.Column('rotated_from', sa.String(length=32), nullable=True),
        sa.Column('rotated_to', sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_auth_tokens')),
        sa.UniqueConstraint('secret_hash', name=op.f('uq_auth_tokens_secret_hash')),
    )


def downgrade() -> None:
    op.drop_table('auth_tokens')
