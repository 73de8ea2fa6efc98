"""Alembic environment of the HubSpot connector's tables."""

from __future__ import annotations

from finsync.connectors.hubspot.state import VERSION_TABLE, metadata
from finsync.migration import run_environment

run_environment(metadata, VERSION_TABLE)
