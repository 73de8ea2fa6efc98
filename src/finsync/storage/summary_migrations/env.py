"""Alembic environment of the posting buffer's table (own version table, so the hub's
migrations and these never share a revision chain)."""

from __future__ import annotations

from finsync.migration import run_environment
from finsync.storage.summary_log import VERSION_TABLE, metadata

run_environment(metadata, VERSION_TABLE)
