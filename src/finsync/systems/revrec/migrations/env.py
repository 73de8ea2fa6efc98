"""Alembic environment of the embedded revrec schema."""

from __future__ import annotations

from finsync.migration import run_environment
from finsync.systems.revrec.migrate import VERSION_TABLE
from finsync.systems.revrec.tables import metadata

run_environment(metadata, VERSION_TABLE)
