"""Alembic environment of the embedded billing schema."""

from __future__ import annotations

from finsync.migration import run_environment
from finsync.systems.billing.migrate import VERSION_TABLE
from finsync.systems.billing.tables import metadata

run_environment(metadata, VERSION_TABLE)
