"""The console's revenue routes (`finsync.api.revenue_routes`)."""

from __future__ import annotations

from tests.routes import Calls

CALLS: Calls = {}
