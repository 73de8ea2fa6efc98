"""Alembic environment of the Stripe connector's tables."""

from __future__ import annotations

from finsync.connectors.stripe import mirror  # noqa: F401 - its table joins the metadata
from finsync.connectors.stripe.state import VERSION_TABLE, metadata
from finsync.migration import run_environment

run_environment(metadata, VERSION_TABLE)
