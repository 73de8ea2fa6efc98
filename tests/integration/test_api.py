"""HTTP intake: 202 only after the raw request is stored; bad input is kept and answered
with a 4xx and a machine-readable code."""

from __future__ import annotations

import inspect
import json
import time
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from finsync.api.app import create_app
from finsync.domain.errors import ExceptionClass
from finsync.storage import raw_log
from finsync.storage.db import make_engine, transaction
from tests import authkit
from tests.builders import envelope, payment_doc
from tests.hubkit import make_hub

PAYMENT = envelope("payment.applied", "gw-1", ("payment", "pay_1", None),
                   {"payment": payment_doc("pay_1", "10.00", "inv_1")}, correlation_id="c1")


@pytest.fixture
def client(engine: Engine, tmp_path: Path) -> TestClient:
    return authkit.client(create_app(make_hub(engine, tmp_path)), engine)


def _raw(engine: Engine, raw_id: int) -> raw_log.RawEvent:
    with transaction(engine) as conn:
        raw = raw_log.get(conn, raw_id)
    assert raw is not None
    return raw


def test_valid_event_is_stored_before_202(client: TestClient, engine: Engine) -> None:
    response = client.post("/v1/sources/billing/events", content=json.dumps(PAYMENT),
                           headers={"content-type": "application/json",
                                    "x-request-id": "r-1"})
    assert response.status_code == 202
    raw = _raw(engine, response.json()["raw_event_id"])
    assert json.loads(raw.body) == PAYMENT
    assert raw.headers["x-request-id"] == "r-1"
    assert "authorization" not in raw.headers  # credentials are never stored


@pytest.mark.parametrize(("body", "status", "code"), [
    (b"{broken", 400, "invalid_json"),
    (json.dumps({**PAYMENT, "type": "invoice.exploded"}).encode(), 422, "unknown_event_type"),
    (json.dumps({**PAYMENT, "payload": {"payment": {"id": "pay_1"}}}).encode(), 422,
     "mapping_error"),
])
def test_malformed_input_is_kept_and_refused_with_a_code(
        client: TestClient, engine: Engine, body: bytes, status: int, code: str) -> None:
    response = client.post("/v1/sources/billing/events", content=body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert _raw(engine, 1).body == body
    exceptions = client.get("/v1/exceptions").json()["exceptions"]
    assert [e["class"] for e in exceptions] == [ExceptionClass.MAPPING_ERROR]


def test_unknown_source_is_kept_and_answered_404(client: TestClient, engine: Engine) -> None:
    response = client.post("/v1/sources/netsuite/events", content=b"{}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_source"
    assert _raw(engine, 1).source == "netsuite"


def test_status_and_milestones_after_processing(engine: Engine, tmp_path: Path) -> None:
    hub = make_hub(engine, tmp_path)
    client = authkit.client(create_app(hub), engine)
    client.post("/v1/sources/billing/events", content=json.dumps(PAYMENT))
    hub.run_until_idle()
    assert client.get("/v1/status").json()["deliveries"] == {"done": 1}
    milestones = client.get("/v1/correlations/c1/milestones").json()["milestones"]
    assert [m["name"] for m in milestones] == ["payment_applied"]


def test_metrics_and_daily_reconciliation_under_serve(
        tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The app `finsync serve` runs: /metrics in the Prometheus format, and the pipeline
    worker reconciles once per day of the hub's clock."""
    from finsync.api.main import app_from_environment

    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    monkeypatch.setenv("FINSYNC_WORKER_INTERVAL_S", "0.05")
    monkeypatch.chdir(tmp_path)
    app = app_from_environment()
    engine = make_engine(db_url)  # the app's database, to issue the client's token
    client = authkit.client(app, engine)
    engine.dispose()
    with client as served:
        body = served.get("/metrics")
        assert body.status_code == 200
        assert body.headers["content-type"].startswith("text/plain")
        for name in ("finsync_invoice_posting_success_ratio",
                     "finsync_event_to_posting_latency_seconds_count",
                     "finsync_duplicate_event_ratio", "finsync_exceptions_unresolved"):
            assert f"# TYPE {name.removesuffix('_count')}" in body.text
        for _ in range(100):  # the worker's first round reconciles as of yesterday
            if "finsync_reconciliation_variance{" in served.get("/metrics").text:
                break
            time.sleep(0.05)
        assert 'finsync_reconciliation_variance{legal_entity="le_us",currency="USD"} 0.00' \
            in served.get("/metrics").text


def test_handlers_are_plain_functions(engine: Engine, tmp_path: Path) -> None:
    """FastAPI runs `def` handlers in its thread pool: a slow commit never blocks the loop."""
    app = create_app(make_hub(engine, tmp_path), metrics=lambda: "", webhooks={})
    routes = [r for r in app.routes if isinstance(r, APIRoute)]
    assert routes
    assert [r.path for r in routes if inspect.iscoroutinefunction(r.endpoint)] == []
