"""Bearer authentication on the HTTP API: the scope matrix (every route the app has, by no
token, expired, revoked, wrong scope, right scope), deny by default, the authenticated
source as the events' owner, webhooks by signature only, and the OpenAPI declarations."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from finsync.api.app import create_app
from finsync.api.security import SCHEME, declared
from finsync.auth import tokens
from finsync.auth.principal import ADMIN, AUDIT_READ, FINANCE_READ, events_write
from finsync.bootstrap import build_finance
from finsync.connectors.stripe import signature
from finsync.domain.clock import utc_now
from finsync.domain.errors import ExceptionClass
from finsync.domain.limits import InputLimits
from finsync.hub.service import Hub
from finsync.hub.usage import UsageIntake
from finsync.hub.webhook import WebhookIntake
from finsync.storage import raw_log
from finsync.storage.db import reading
from finsync.storage.schema import exceptions
from finsync.views.services import build_services
from tests import authkit
from tests.builders import envelope, payment_doc
from tests.hubkit import make_hub, shipped_config
from tests.routes import Call, close, console, overview, recon, revenue, tax
from tests.routes import exceptions as exceptions_routes

SECRET = "whsec_matrix"
PAYMENT = json.dumps(envelope("payment.applied", "gw-1", ("payment", "pay_1", None),
                              {"payment": payment_doc("pay_1", "10.00", "inv_1")},
                              correlation_id="c1")).encode()
YESTERDAY = (datetime.now(UTC) - timedelta(days=1)).date()
METER = json.dumps({"id": "m1", "subscription": "con_acme_2026", "quantity": 5,
                    "product": "prod_usage_overage",
                    "timestamp": f"{YESTERDAY}T10:00:00+00:00"}).encode()


# Every route the app has, by (method, path template). A route missing here fails
# `test_every_route_is_in_the_matrix`: give a new route its scope, then add it.
AUTHENTICATED = {
    ("POST", "/v1/sources/{source}/events"): Call(
        "POST", "/v1/sources/billing/events", events_write("{source}"), 202, PAYMENT,
        "billing"),
    ("POST", "/v1/usage/{source}/events"): Call(
        "POST", "/v1/usage/metering/events", events_write("{source}"), 202, METER,
        "metering"),
    ("GET", "/v1/status"): Call("GET", "/v1/status", FINANCE_READ),
    ("GET", "/v1/exceptions"): Call("GET", "/v1/exceptions", FINANCE_READ),
    # The right scope gets past authentication to the handler: no exception 1 here.
    ("GET", "/v1/exceptions/{exception_id}"): Call("GET", "/v1/exceptions/1", FINANCE_READ,
                                                   404),
    ("GET", "/v1/correlations/{correlation_id}/milestones"): Call(
        "GET", "/v1/correlations/c1/milestones", FINANCE_READ),
    ("GET", "/v1/cpq/contracts/{contract_id}"): Call("GET", "/v1/cpq/contracts/C1",
                                                     FINANCE_READ, 404),
    ("GET", "/metrics"): Call("GET", "/metrics", FINANCE_READ),
    ("GET", "/v1/audit"): Call("GET", "/v1/audit", AUDIT_READ),
    ("GET", "/v1/audit/verify"): Call("GET", "/v1/audit/verify", AUDIT_READ),
    ("GET", "/v1/correlations/{correlation_id}/calls"): Call(
        "GET", "/v1/correlations/c1/calls", AUDIT_READ),
    ("GET", "/openapi.json"): Call("GET", "/openapi.json", None),
    **console.CALLS, **overview.CALLS, **exceptions_routes.CALLS, **recon.CALLS,
    **revenue.CALLS, **close.CALLS, **tax.CALLS,
}
PUBLIC = {("GET", "/healthz"), *console.PUBLIC}
SIGNED = {("POST", "/v1/webhooks/stripe/{source}"), ("POST", "/v1/webhooks/cpq/{source}")}
CASES = ("no token", "expired", "revoked", "wrong scope", "right scope")


@dataclass
class Served:
    app: FastAPI
    hub: Hub
    client: TestClient

    @property
    def engine(self) -> Engine:
        return self.hub.engine


@pytest.fixture
def served(engine: Engine, tmp_path: Path) -> Iterator[Served]:
    hub = make_hub(engine, tmp_path)
    config = shipped_config(tmp_path)
    finance = build_finance(config, engine=engine)

    def verify(body: bytes, headers: Mapping[str, str]) -> int:
        return signature.verify(body, headers.get(signature.HEADER), [SECRET], utc_now())
    usage = UsageIntake(engine, utc_now, None, ["metering"], lambda _s: InputLimits(),
                        settle_s=0)
    app = create_app(hub, metrics=lambda: "", usage=usage,
                     webhooks={"stripe": WebhookIntake(engine, "stripe", verify, utc_now)},
                     services=build_services(config, finance))
    with TestClient(app) as client:
        yield Served(app, hub, client)


def _routes(app: FastAPI) -> set[tuple[str, str]]:
    found = set()
    for route in app.routes:
        assert isinstance(route, APIRoute), f"{route} is not an APIRoute: it has no scope"
        found |= {(method, route.path) for method in route.methods}
    return found


def _token_for(engine: Engine, case: str, call: Call) -> str | None:
    """The credential of one cell of the matrix."""
    right = [call.scope] if call.scope else [FINANCE_READ]
    if case == "no token":
        return None
    if case == "expired":
        return authkit.issue(engine, right, now=utc_now() - timedelta(days=2),
                             lifetime=timedelta(days=1))
    if case == "revoked":
        made = authkit.issued(engine, right)
        tokens.revoke(engine, authkit.ISSUER, made.token.id, utc_now(), "matrix")
        return made.secret
    if case == "wrong scope":
        # Every scope but the one needed (another source's, for intake).
        others = [s for s in authkit.EVERY_SCOPE if s != call.scope and s != events_write("*")]
        return authkit.issue(engine, [*others, events_write("elsewhere")])
    return authkit.issue(engine, right)


def _expected(case: str, call: Call) -> tuple[int, str | None]:
    if case in {"no token", "expired", "revoked"}:
        return 401, "not_authenticated"
    if case == "wrong scope" and call.scope is not None:
        return 403, "forbidden"
    return call.ok, None


def test_every_route_is_in_the_matrix(served: Served) -> None:
    routes = _routes(served.app)
    assert routes == set(AUTHENTICATED) | PUBLIC | SIGNED
    for route in served.app.routes:
        assert isinstance(route, APIRoute)
        needed = declared(route)
        for method in route.methods:
            if (method, route.path) in AUTHENTICATED:
                scope = AUTHENTICATED[method, route.path].declared
                assert needed == ([] if scope is None else [scope]), route.path
            else:
                assert needed is None


@pytest.mark.parametrize("case", CASES)
def test_scope_matrix(served: Served, case: str) -> None:
    """Each authenticated route, for `case`: 401 / 403 / its success status, with the code."""
    for key, call in sorted(AUTHENTICATED.items()):
        token = _token_for(served.engine, case, call)
        headers = {**call.headers, **({} if token is None else authkit.bearer(token))}
        response = served.client.request(call.method, call.url, content=call.body,
                                          headers=headers)
        status, code = _expected(case, call)
        assert response.status_code == status, (key, case, response.text)
        if code is not None:
            assert response.json()["error"]["code"] == code, (key, case)
        if status == 401:
            assert response.headers["www-authenticate"] == "Bearer"
    # The routes no token opens or closes: /healthz, and the webhook (its signature).
    token = _token_for(served.engine, case, AUTHENTICATED["GET", "/v1/status"])
    credential = {} if token is None else authkit.bearer(token)
    assert served.client.get("/healthz", headers=credential).status_code == 200
    body = json.dumps({"id": f"evt_{case.replace(' ', '_')}", "type": "customer.created",
                       "data": {"object": {"id": "cus_1"}}}).encode()
    signed = {signature.HEADER: signature.header_for(SECRET, int(utc_now().timestamp()), body)}
    webhook = served.client.post("/v1/webhooks/stripe/stripe", content=body,
                                 headers={**credential, **signed})
    assert webhook.status_code == 200, (case, webhook.text)


def test_a_refused_request_is_not_read_or_stored(served: Served) -> None:
    """Authentication runs before the body is read or the rate limit is taken."""
    for _ in range(3):
        assert served.client.post("/v1/sources/billing/events",
                                  content=PAYMENT).status_code == 401
    too_large = served.client.post("/v1/sources/billing/events", content=b"x" * (2 << 20))
    assert too_large.status_code == 401  # not 413: the body was never read
    with reading(served.engine) as conn:
        assert raw_log.pending(conn, 10) == []


def test_healthz_is_public(served: Served) -> None:
    assert served.client.get("/healthz").status_code == 200


def test_webhooks_authenticate_by_signature_only(served: Served) -> None:
    body = json.dumps({"id": "evt_1", "type": "customer.created",
                       "data": {"object": {"id": "cus_1"}}}).encode()
    token = authkit.bearer(authkit.issue(served.engine))
    unsigned = served.client.post("/v1/webhooks/stripe/stripe", content=body, headers=token)
    assert (unsigned.status_code, unsigned.json()["error"]["code"]) == (
        400, "signature_missing")  # a token is no signature
    signed = {signature.HEADER: signature.header_for(SECRET, int(utc_now().timestamp()), body)}
    response = served.client.post("/v1/webhooks/stripe/stripe", content=body, headers=signed)
    assert response.status_code == 200, response.text


def test_malformed_authorization_headers_are_401(served: Served) -> None:
    token = authkit.issue(served.engine, [FINANCE_READ])
    for header in ("", "Bearer", "Bearer   ", f"Basic {token}", token, "Bearer fsk_short",
                   f"Bearer {token}x", "Bearer " + "fsk_" + "A" * 43):
        response = served.client.get("/v1/status", headers={"authorization": header})
        assert response.status_code == 401, header
        assert response.json()["error"]["code"] == "not_authenticated"
    ok = served.client.get("/v1/status", headers={"authorization": f"bearer  {token} "})
    assert ok.status_code == 200


def test_a_source_token_cannot_post_as_another_source(served: Served) -> None:
    """The forged payment of the issue: a token of one source posting events that say they
    come from the billing system. Refused as an ownership_violation, never booked."""
    revrec = authkit.bearer(authkit.issue(served.engine, [events_write("revrec")]))
    response = served.client.post("/v1/sources/billing/events", content=PAYMENT,
                                  headers=revrec)
    assert (response.status_code, response.json()["error"]["code"]) == (403, "forbidden")
    canonical = authkit.bearer(authkit.issue(served.engine, [events_write("canonical")]))
    forged = served.client.post("/v1/sources/canonical/events", content=PAYMENT,
                                headers=canonical)
    assert (forged.status_code, forged.json()["error"]["code"]) == (
        403, "ownership_violation")
    assert "not as 'billing'" in forged.json()["error"]["message"]
    both = authkit.bearer(authkit.issue(served.engine, [events_write("canonical"),
                                                        events_write("billing")]))
    assert served.client.post("/v1/sources/canonical/events", content=PAYMENT,
                              headers=both).status_code == 202  # it may write as billing
    served.hub.run_until_idle()
    assert len(served.hub.delivered(["ledger"])) == 1  # the payment sent by its owner
    with reading(served.engine) as conn:
        classes = conn.execute(select(exceptions.c["class"])).scalars().all()
        assert classes == [ExceptionClass.OWNERSHIP_VIOLATION.value]
        [refused] = raw_log.refused_ids(conn, "canonical", "ownership_violation")
        assert refused is not None


def test_openapi_declares_the_scheme_and_each_routes_scope(served: Served) -> None:
    token = authkit.bearer(authkit.issue(served.engine, [AUDIT_READ]))
    assert served.client.get("/openapi.json").status_code == 401
    document = served.client.get("/openapi.json", headers=token).json()
    assert document["components"]["securitySchemes"][SCHEME] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "finsync API token (fsk_…)",
        "description": document["components"]["securitySchemes"][SCHEME]["description"]}
    for (method, path), call in AUTHENTICATED.items():
        if path == "/openapi.json":
            continue
        operation = document["paths"][path][method.lower()]
        expected = [] if call.declared is None else [call.declared]
        assert operation["security"] == [{SCHEME: expected}], path
        assert {"401", "403"} <= set(operation["responses"])
    assert document["paths"]["/healthz"]["get"]["security"] == []
    assert document["paths"]["/v1/webhooks/stripe/{source}"]["post"]["security"] == []


def test_a_route_without_a_scope_is_refused_to_everyone(engine: Engine, tmp_path: Path) -> None:
    app = create_app(make_hub(engine, tmp_path))

    @app.get("/v1/forgotten")
    def forgotten() -> dict[str, Any]:
        return {"leaked": True}

    token = authkit.bearer(authkit.issue(engine, [*authkit.EVERY_SCOPE]))
    for headers in ({}, token):
        response = TestClient(app).get("/v1/forgotten", headers=headers)
        assert (response.status_code, response.json()["error"]["code"]) == (403, "forbidden")


def test_a_pending_admin_token_is_refused(served: Served) -> None:
    issued = tokens.create(served.engine, authkit.ISSUER, "ops", "ops.admin",
                           [ADMIN, FINANCE_READ], utc_now())
    headers = authkit.bearer(issued.secret)
    assert served.client.get("/v1/status", headers=headers).status_code == 401
    tokens.approve(served.engine, authkit.SECOND, issued.token.id, utc_now())
    assert served.client.get("/v1/status", headers=headers).status_code == 200
