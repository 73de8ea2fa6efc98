"""raw events stored before the header allowlist keep only its headers (credentials such
as X-Auth-Token no longer stay in the database)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 04:00:00
"""

from __future__ import annotations

from alembic import op

from finsync.storage.raw_log import scrub_headers

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    scrub_headers(op.get_bind())


def downgrade() -> None:
    pass  # what was scrubbed is gone on purpose
