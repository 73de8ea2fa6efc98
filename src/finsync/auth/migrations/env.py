"""Alembic environment of the auth schema."""

from __future__ import annotations

from finsync.auth.migrate import VERSION_TABLE
from finsync.auth.tables import metadata
from finsync.migration import run_environment

run_environment(metadata, VERSION_TABLE)
