"""The console's overview routes (`finsync.api.overview_routes`)."""

from __future__ import annotations

from tests.routes import Calls

CALLS: Calls = {}
