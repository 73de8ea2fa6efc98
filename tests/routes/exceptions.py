"""The console's exceptions routes (`finsync.api.exception_routes`)."""

from __future__ import annotations

from tests.routes import Calls

CALLS: Calls = {}
