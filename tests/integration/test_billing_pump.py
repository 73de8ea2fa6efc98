"""Quote to cash through the hub: the embedded billing platform's outbox is pumped into
intake, and each effect lands once in the ledger and the revenue engine."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.clikit import cli_json


def _json(*args: str) -> Any:
    return cli_json(list(args))


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    _json("init")
    return tmp_path


def _run_until_settled() -> Any:
    for _ in range(40):
        status = _json("run")["status"]
        if not status["deliveries"].get("pending"):
            return status
        time.sleep(0.25)  # the retry back-off is real time here
    raise AssertionError(f"deliveries still pending: {status}")


def test_subscription_and_upgrade_land_once_in_ledger_and_revenue(workdir: Path) -> None:
    _json("billing", "customer", "add", "cus_acme", "--name", "Acme")
    _json("billing", "subscribe", "con_1", "--customer", "cus_acme", "--start", "2026-01-01",
          "--line", "ln_seats=price_seat_annual:500")
    _json("billing", "amend", "con_1", "--id", "amd_1", "--on", "2026-05-16", "--add-seats",
          "ln_seats:300", "--add-product", "ln_analytics=price_analytics_annual:1",
          "--reason", "upgrade")
    status = _run_until_settled()
    # 2 invoices to the ledger, to revrec and to the tax engine, 2 contracts to revrec
    assert status["deliveries"] == {"done": 8}
    # The upgrade's invoice may reach revrec before its amendment: retried, then resolved.
    assert set(status["exceptions"]) <= {"resolved"}
    # 60000.00 + 300 x 120.00 x 230/365 (22684.93) + 24000.00 x 230/365 (15123.29)
    accounts = {a["account"]: a["balance"] for a in _json(
        "ledger", "trial-balance", "-e", "le_us", "--as-of", "2026-12-31")["le_us"]["accounts"]}
    assert accounts == {"1200": "97808.22", "2400": "-97808.22"}
    milestones = {m["name"] for m in _json("timeline", "amd_1")["milestones"]}
    assert {"contract_accepted", "invoice_posted", "revenue_schedule_created",
            "invoice_linked_to_revenue"} <= milestones
    again = _json("run")
    assert again["run"]["raw_processed"] == 0  # the outbox was published once
