"""The console's revenue routes (`finsync.api.revenue_routes`)."""

from __future__ import annotations

from finsync.auth.principal import FINANCE_READ
from tests.routes import Call, Calls

CALLS: Calls = {
    ("GET", "/v1/revenue/waterfall"): Call("GET", "/v1/revenue/waterfall", FINANCE_READ),
    ("GET", "/v1/revenue/roll-forward"): Call("GET", "/v1/revenue/roll-forward",
                                              FINANCE_READ),
    ("GET", "/v1/revenue/rpo"): Call("GET", "/v1/revenue/rpo", FINANCE_READ),
    ("GET", "/v1/revenue/contracts"): Call("GET", "/v1/revenue/contracts", FINANCE_READ),
    # The right scope gets past authentication to the handler: no such contract here.
    ("GET", "/v1/revenue/contracts/{contract_id}"): Call(
        "GET", "/v1/revenue/contracts/con_none", FINANCE_READ, 404),
    ("GET", "/v1/ar/aging"): Call("GET", "/v1/ar/aging", FINANCE_READ),
    ("GET", "/v1/ar/subledgers"): Call("GET", "/v1/ar/subledgers", FINANCE_READ),
    ("GET", "/v1/ar/credits"): Call("GET", "/v1/ar/credits", FINANCE_READ),
}
