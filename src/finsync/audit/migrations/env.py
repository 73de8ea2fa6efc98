"""Alembic environment of the audit schema."""

from __future__ import annotations

from finsync.audit.migrate import VERSION_TABLE
from finsync.audit.tables import metadata
from finsync.migration import run_environment

run_environment(metadata, VERSION_TABLE)
