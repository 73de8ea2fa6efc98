"""The console's shell: its session routes and public files."""

from __future__ import annotations

from finsync.auth.principal import FINANCE_READ
from tests.routes import Call, Calls

CALLS: Calls = {
    ("GET", "/v1/session"): Call("GET", "/v1/session", None),
    ("DELETE", "/v1/session"): Call("DELETE", "/v1/session", None),
    ("GET", "/v1/jobs/{job_id}"): Call("GET", "/v1/jobs/job_1", FINANCE_READ, 404),
}
# Served to anyone: the page and its files hold no data; the log-in takes a token in its body.
PUBLIC = {("GET", "/"), ("GET", "/console"), ("GET", "/console/"),
          ("GET", "/console/{asset:path}"),
          ("GET", "/console/vendor/plotly.min.js"), ("POST", "/v1/session")}
