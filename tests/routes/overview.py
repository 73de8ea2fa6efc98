"""The console's overview routes (`finsync.api.overview_routes`)."""

from __future__ import annotations

from finsync.auth.principal import FINANCE_READ
from tests.routes import Call, Calls

CALLS: Calls = {
    ("GET", "/v1/overview"): Call("GET", "/v1/overview?days=30", FINANCE_READ),
    ("GET", "/v1/metrics"): Call("GET", "/v1/metrics", FINANCE_READ),
}
