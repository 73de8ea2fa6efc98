"""Alembic environment of the hub's schema."""

from __future__ import annotations

from finsync.migration import run_environment
from finsync.storage.schema import metadata

run_environment(metadata)
