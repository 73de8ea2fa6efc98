"""Alembic environment of the two-person controls schema."""

from __future__ import annotations

from finsync.controls.migrate import VERSION_TABLE
from finsync.controls.tables import metadata
from finsync.migration import run_environment

run_environment(metadata, VERSION_TABLE)
