"""The tax engine's report route (`finsync.api.tax_routes`)."""

from __future__ import annotations

from finsync.auth.principal import FINANCE_READ
from tests.routes import Call, Calls

CALLS: Calls = {
    ("GET", "/v1/tax/liability"): Call("GET", "/v1/tax/liability?entity=le_us&period=2026-03",
                                       FINANCE_READ),
}
