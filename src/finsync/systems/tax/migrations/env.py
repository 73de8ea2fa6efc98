"""Alembic environment of the embedded tax engine's schema."""

from __future__ import annotations

from finsync.migration import run_environment
from finsync.systems.tax.migrate import VERSION_TABLE
from finsync.systems.tax.tables import metadata

run_environment(metadata, VERSION_TABLE)
