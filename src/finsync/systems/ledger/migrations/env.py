"""Alembic environment of the embedded ledger schema."""

from __future__ import annotations

from finsync.migration import run_environment
from finsync.systems.ledger.migrate import VERSION_TABLE
from finsync.systems.ledger.tables import metadata

run_environment(metadata, VERSION_TABLE)
