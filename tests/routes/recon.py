"""The console's recon routes (`finsync.api.recon_routes`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from finsync.auth.principal import EXCEPTIONS_ACT, FINANCE_READ
from tests.routes import Call, Calls

# A run on an empty database: a job that finds nothing (started, hence 202).
_RUN = json.dumps({"as_of": datetime.now(UTC).date().isoformat()}).encode()

CALLS: Calls = {
    ("GET", "/v1/reconciliation"): Call("GET", "/v1/reconciliation", FINANCE_READ),
    ("GET", "/v1/reconciliation/trend"): Call("GET", "/v1/reconciliation/trend", FINANCE_READ),
    ("GET", "/v1/reconciliation/documents"): Call(
        "GET", "/v1/reconciliation/documents?ref=invoice:inv_1", FINANCE_READ),
    ("GET", "/v1/reconciliation/{entity}/{check}"): Call(
        "GET", "/v1/reconciliation/le_us/billing_vs_erp_ar", FINANCE_READ),
    ("POST", "/v1/reconciliation/runs"): Call(
        "POST", "/v1/reconciliation/runs", EXCEPTIONS_ACT, 202, _RUN,
        headers={"content-type": "application/json"}),
}
