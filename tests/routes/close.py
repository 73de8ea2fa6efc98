"""The console's close routes (`finsync.api.close_routes`)."""

from __future__ import annotations

from tests.routes import Calls

CALLS: Calls = {}
