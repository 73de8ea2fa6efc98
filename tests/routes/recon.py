"""The console's recon routes (`finsync.api.recon_routes`)."""

from __future__ import annotations

from tests.routes import Calls

CALLS: Calls = {}
