"""One contract amendment's every call, to every system, listed by its correlation id: the
CLI and the API read the same call log, and every delivery of the amendment is in it under
its idempotency key. The daily job purges what is past the retention."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from finsync.api.app import create_app
from finsync.auth.principal import AUDIT_READ
from finsync.bootstrap import build_daily, build_finance, build_hub
from finsync.cli.main import app
from finsync.config import load_config
from finsync.storage.db import reading
from finsync.storage.schema import deliveries
from tests import authkit
from tests.clikit import cli_json

runner = CliRunner()
AMENDMENT = "amd_1"


def _json(*args: str) -> Any:
    return cli_json(list(args))


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str) -> Path:
    """A subscription and its upgrade, delivered to the ledger and the revenue engine."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    _json("init")
    _json("billing", "customer", "add", "cus_acme", "--name", "Acme Analytics")
    _json("billing", "subscribe", "con_1", "--customer", "cus_acme", "--start", "2026-01-01",
          "--line", "ln_seats=price_seat_annual:500")
    _json("billing", "amend", "con_1", "--id", AMENDMENT, "--on", "2026-05-16",
          "--add-seats", "ln_seats:300", "--add-product",
          "ln_analytics=price_analytics_annual:1", "--reason", "upgrade")
    for _ in range(40):
        if not _json("run")["status"]["deliveries"].get("pending"):
            return tmp_path
        time.sleep(0.25)  # the retry back-off is real time here
    raise AssertionError("deliveries still pending")


def _deliveries(correlation_id: str) -> set[tuple[str, str]]:
    hub = build_hub(load_config(None))
    try:
        with reading(hub.engine) as conn:
            rows = conn.execute(select(deliveries.c.target, deliveries.c.delivery_key)
                                .where(deliveries.c.correlation_id == correlation_id))
            return {(str(t), str(k)) for t, k in rows}
    finally:
        hub.engine.dispose()


def test_every_call_of_an_amendment_to_every_system_is_listed_by_its_correlation(
        workdir: Path) -> None:
    listed = _json("calls", AMENDMENT)
    calls = listed["calls"]
    assert listed["correlation_id"] == AMENDMENT and calls
    wanted = _deliveries(AMENDMENT)
    # The upgrade's contract to revrec, its invoice to the ledger, to revrec and to the tax
    # engine.
    assert {target for target, _key in wanted} == {"ledger", "revrec", "tax"}
    assert len(wanted) == 4
    called = {(c["system"], key) for c in calls for key in c["idempotency_keys"]}
    assert called >= wanted  # each delivery of the amendment was called under its key
    assert {key for _system, key in called} <= {key for _target, key in wanted}
    done = {(c["system"], c["method"]) for c in calls if c["status"] == "ok"}
    assert done >= {("revrec", "apply_contract"), ("revrec", "record_invoice"),
                    ("tax", "commit_invoice")}
    assert ("ledger", "post_batch") in done or ("ledger", "post_invoice") in done
    for call in calls:
        assert call["correlation_id"] == AMENDMENT and call["duration_ms"] >= 0
        assert call["channel"] == "port"
        assert call["endpoint"] in {"LedgerPort", "RevenuePort", "TaxPort"}
        assert datetime.fromisoformat(call["started_at"]).tzinfo is not None
    starts = [c["started_at"] for c in calls]
    assert starts == sorted(starts)
    # The customer's name never reaches the log.
    assert "Acme Analytics" not in json.dumps(calls)
    # The subscription's calls are listed under it; a batch call to the ledger that carried
    # both invoices is under both, each with its own delivery keys.
    others = {c["id"]: c for c in _json("calls", "con_1")["calls"]}
    assert others
    for call in calls:
        if call["id"] in others:
            assert not set(call["idempotency_keys"]) & set(others[call["id"]]
                                                           ["idempotency_keys"])
    # The API answers the same list; the CLI's table shows it.
    hub = build_hub(load_config(None))
    try:
        client = authkit.client(create_app(hub), hub.engine, [AUDIT_READ])
        answer = client.get(f"/v1/correlations/{AMENDMENT}/calls")
    finally:
        hub.engine.dispose()
    assert answer.status_code == 200 and answer.json() == listed
    table = runner.invoke(app, ["calls", AMENDMENT], env={"COLUMNS": "250"})
    assert table.exit_code == 0 and "apply_contract" in table.stdout


def test_the_daily_job_purges_calls_past_the_retention(workdir: Path) -> None:
    config = load_config(None)
    config = config.model_copy(update={"calls": config.calls.model_copy(
        update={"retention_days": 30})})
    assert _json("calls", AMENDMENT)["calls"]
    # The calls were made now (the wall clock); the job runs 31 days later.
    later = datetime.now(UTC) + timedelta(days=31)
    finance = build_finance(config, clock=lambda: later)
    try:
        assert finance.hub.calls(AMENDMENT)
        build_daily(finance)(date(2026, 6, 30))
        assert finance.hub.calls(AMENDMENT) == []
    finally:
        finance.dispose()
