"""The console's exceptions routes (`finsync.api.exception_routes`)."""

from __future__ import annotations

import json

from finsync.auth.principal import EXCEPTIONS_ACT, EXCEPTIONS_APPROVE, FINANCE_READ
from tests.routes import Call, Calls

REASON = json.dumps({"reason": "matrix"}).encode()
KEEP = json.dumps({"reason": "matrix", "keep": "stored"}).encode()
JSON = {"content-type": "application/json"}
ACTIONS = ("retry", "reroute", "resolve", "ignore")

# On an empty database: no exception 1, no action 1, no request 1 (the right scope gets
# past authentication to the handler, which answers with its coded refusal).
CALLS: Calls = {
    ("GET", "/v1/exceptions/queue"): Call("GET", "/v1/exceptions/queue?class=closed_period",
                                          FINANCE_READ),
    ("GET", "/v1/exceptions/{exception_id}/detail"): Call(
        "GET", "/v1/exceptions/1/detail", FINANCE_READ, 404),
    **{("POST", f"/v1/exceptions/{{exception_id}}/{name}"): Call(
        "POST", f"/v1/exceptions/1/{name}", EXCEPTIONS_ACT, 404, REASON, headers=JSON)
       for name in ACTIONS},
    ("POST", "/v1/exceptions/{exception_id}/resolve-duplicate"): Call(
        "POST", "/v1/exceptions/1/resolve-duplicate", EXCEPTIONS_ACT, 404, KEEP, headers=JSON),
    ("POST", "/v1/exceptions/replay"): Call("POST", "/v1/exceptions/replay", EXCEPTIONS_ACT,
                                            202, REASON,
                                            headers=JSON),
    ("GET", "/v1/approvals"): Call("GET", "/v1/approvals", FINANCE_READ),
    **{("POST", f"/v1/approvals/actions/{{action_id}}/{verb}"): Call(
        "POST", f"/v1/approvals/actions/1/{verb}", EXCEPTIONS_APPROVE, 409, REASON, headers=JSON)
       for verb in ("approve", "reject")},
    **{("POST", f"/v1/approvals/requests/{{request_id}}/{verb}"): Call(
        "POST", f"/v1/approvals/requests/1/{verb}", EXCEPTIONS_APPROVE, 404, REASON, headers=JSON)
       for verb in ("approve", "reject")},
}
