"""The console's close routes (`finsync.api.close_routes`)."""

from __future__ import annotations

from finsync.auth.principal import FINANCE_READ, PERIODS_MANAGE
from tests.routes import Call, Calls

_REASON = b'{"reason": "matrix"}'
_JSON = {"content-type": "application/json"}

CALLS: Calls = {
    ("GET", "/v1/close"): Call("GET", "/v1/close", FINANCE_READ),
    ("GET", "/v1/close/{entity}/{period}"): Call("GET", "/v1/close/le_us/2026-01",
                                                 FINANCE_READ),
    ("POST", "/v1/close/{entity}/{period}"): Call(
        "POST", "/v1/close/le_us/2026-01", PERIODS_MANAGE, 200, b"{}",
        headers=_JSON),
    # The matrix runs in sorted order: the period was closed by the call above.
    ("POST", "/v1/close/{entity}/{period}/reopen"): Call(
        "POST", "/v1/close/le_us/2026-01/reopen", PERIODS_MANAGE, 200, _REASON,
        headers=_JSON),
    ("GET", "/v1/correlations"): Call("GET", "/v1/correlations?q=c1", FINANCE_READ),
    ("GET", "/v1/correlations/{correlation_id}/timeline"): Call(
        "GET", "/v1/correlations/c1/timeline", FINANCE_READ),
}
