"""The console's overview API: money at stake by class and by age bucket (the figures of
`finsync status`), each entity's reconciliation variance and its trend from the recorded
runs, the DESIGN §7 metrics as JSON (one computation with the Prometheus text and
`finsync metrics --json`), and the pipeline's health."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from finsync.api.app import create_app
from finsync.auth.principal import FINANCE_READ
from finsync.bootstrap import Finance, build_finance, build_metrics
from finsync.config import DEFAULT_CONFIG, parse_config
from finsync.demo.clock import SimClock
from finsync.domain.errors import ExceptionClass
from finsync.domain.money import Money
from finsync.domain.status import ExceptionStatus
from finsync.hub.budget import Grant, Limits, PostingBudget
from finsync.hub.pipeline import PIPELINE
from finsync.storage import exception_log, recon_log
from finsync.storage.db import transaction
from finsync.storage.exception_log import NewException
from finsync.storage.schema import deliveries, events
from finsync.views.services import build_services
from tests import authkit
from tests.clikit import cli_json, with_auth

NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)


@dataclass
class World:
    finance: Finance
    clock: SimClock
    client: TestClient


@pytest.fixture
def world(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    config = parse_config(tomllib.loads(DEFAULT_CONFIG.read_text()), tmp_path)
    clock = SimClock(NOW)
    finance = build_finance(config, clock=clock)
    app = create_app(finance.hub, metrics=build_metrics(finance),
                     services=build_services(config, finance))
    client = authkit.client(app, finance.hub.engine, [FINANCE_READ])
    yield World(finance, clock, client)
    finance.dispose()


def _open(finance: Finance, name: str, klass: ExceptionClass, age: timedelta,
          amount: Money | None, status: ExceptionStatus = ExceptionStatus.OPEN) -> int:
    with transaction(finance.hub.engine) as conn:
        found = exception_log.open_exception(conn, NewException(
            klass, f"test:{name}", name, amount=amount, status=status), NOW - age)
        if status not in (ExceptionStatus.OPEN, ExceptionStatus.RETRYING):
            exception_log.set_status(conn, found, status, NOW - age)
    return found


def _plant_exceptions(finance: Finance) -> None:
    usd, eur = "USD", "EUR"
    day = timedelta(days=1)
    _open(finance, "a", ExceptionClass.MASTER_DATA_MISMATCH, timedelta(hours=2),
          Money.of("100.00", usd))
    _open(finance, "b", ExceptionClass.MASTER_DATA_MISMATCH, day,  # exactly 1 d: 1-7d
          Money.of("250.50", usd))
    _open(finance, "c", ExceptionClass.CLOSED_PERIOD, 10 * day, Money.of("6000.00", usd),
          ExceptionStatus.AWAITING_APPROVAL)
    _open(finance, "d", ExceptionClass.CLOSED_PERIOD, 45 * day, Money.of("80.00", eur),
          ExceptionStatus.RETRYING)
    _open(finance, "e", ExceptionClass.MAPPING_ERROR, 120 * day, None)  # counted, no money
    _open(finance, "f", ExceptionClass.CLOSED_PERIOD, 200 * day, Money.of("9.99", eur))
    resolved = _open(finance, "g", ExceptionClass.CLOSED_PERIOD, 3 * day,
                     Money.of("1000.00", usd))
    with transaction(finance.hub.engine) as conn:
        exception_log.close(conn, resolved, ExceptionStatus.RESOLVED, "fixed", NOW)


def _money(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"amount": amount, "currency": currency} for amount, currency in pairs]


def test_money_at_stake_by_class_and_age_bucket(world: World) -> None:
    _plant_exceptions(world.finance)
    body = world.client.get("/v1/overview").json()
    # The resolved 1000.00 USD is not at stake; the mapping error counts and adds nothing.
    # USD: 100.00 + 250.50 + 6000.00 = 6350.50; EUR: 80.00 + 9.99 = 89.99
    assert body["at_stake"] == {"count": 6, "amounts": _money(("89.99", "EUR"),
                                                              ("6350.50", "USD"))}
    assert body["by_age"] == [
        {"age": "0-1d", "count": 1, "at_stake": _money(("100.00", "USD"))},
        {"age": "1-7d", "count": 1, "at_stake": _money(("250.50", "USD"))},
        {"age": "7-30d", "count": 1, "at_stake": _money(("6000.00", "USD"))},
        {"age": "30-90d", "count": 1, "at_stake": _money(("80.00", "EUR"))},
        {"age": "90d+", "count": 2, "at_stake": _money(("9.99", "EUR"))},
    ]
    assert body["by_class"] == [
        {"class": "closed_period", "count": 3,
         "at_stake": _money(("89.99", "EUR"), ("6000.00", "USD"))},
        {"class": "mapping_error", "count": 1, "at_stake": []},
        {"class": "master_data_mismatch", "count": 2, "at_stake": _money(("350.50", "USD"))},
    ]
    # The same figures as `finsync status` (GET /v1/status) by class.
    status = world.client.get("/v1/status").json()["unresolved_exceptions"]
    assert {row["class"]: (row["count"], {m["currency"]: m["amount"] for m in row["at_stake"]})
            for row in body["by_class"]} == \
        {name: (v["count"], v["at_stake"]) for name, v in status["by_class"].items()}
    assert status["count"] == body["at_stake"]["count"]


def test_an_empty_store_has_every_bucket_and_every_entity(world: World) -> None:
    body = world.client.get("/v1/overview").json()
    assert body["at_stake"] == {"count": 0, "amounts": []}
    assert [b["age"] for b in body["by_age"]] == ["0-1d", "1-7d", "7-30d", "30-90d", "90d+"]
    assert body["by_class"] == []
    assert body["reconciliation"]["entities"] == [
        {"legal_entity": "le_us", "currency": "USD", "latest": None},
        {"legal_entity": "le_eu", "currency": "EUR", "latest": None}]
    assert body["pipeline"]["runs_here"] is False
    assert body["pipeline"]["waiting"]["due"] == 0


def _record(finance: Finance, entity: str, as_of: date, variance: str, breaks: int,
            at: datetime, checks: list[dict[str, Any]] | None = None) -> None:
    currency = "USD" if entity == "le_us" else "EUR"
    with transaction(finance.hub.engine) as conn:
        recon_log.record(conn, entity, as_of, Money.of(variance, currency), breaks,
                         checks or [], at)


def test_variance_trend_keeps_the_latest_run_of_each_date_within_the_window(
        world: World) -> None:
    finance = world.finance
    ar_break = {"name": "billing_vs_erp_ar", "breaks": [{"ref": "inv_1"}, {"ref": "inv_2"}]}
    _record(finance, "le_us", date(2026, 3, 1), "999.00", 9, NOW - timedelta(days=120))  # old
    _record(finance, "le_us", date(2026, 5, 1), "10.00", 1, NOW - timedelta(days=60))
    _record(finance, "le_us", date(2026, 5, 1), "12.50", 2, NOW - timedelta(days=59))  # rerun
    _record(finance, "le_eu", date(2026, 6, 29), "0.00", 0, NOW - timedelta(hours=3))
    _record(finance, "le_us", date(2026, 6, 29), "3.25", 2, NOW - timedelta(hours=2),
            [ar_break, {"name": "contract_values", "breaks": [{"ref": "con_1"}]}])
    body = world.client.get("/v1/overview").json()["reconciliation"]
    assert (body["trend_since"], body["trend_until"]) == ("2026-03-31", "2026-06-29")
    assert [(p["legal_entity"], p["as_of"], p["variance"], p["currency"], p["breaks"])
            for p in body["trend"]] == [
        ("le_eu", "2026-06-29", "0.00", "EUR", 0),
        ("le_us", "2026-05-01", "12.50", "USD", 2),
        ("le_us", "2026-06-29", "3.25", "USD", 2)]
    latest = {e["legal_entity"]: e["latest"] for e in body["entities"]}
    assert latest["le_us"]["variance"] == {"amount": "3.25", "currency": "USD"}
    assert latest["le_us"]["unmatched_ar"] == 2  # the AR check's breaks, not the contract's
    assert latest["le_eu"]["as_of"] == "2026-06-29"
    short = world.client.get("/v1/overview?days=30").json()["reconciliation"]
    assert [p["as_of"] for p in short["trend"]] == ["2026-06-29", "2026-06-29"]


def test_metrics_json_prometheus_and_cli_are_one_computation(
        world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _plant_exceptions(world.finance)
    _record(world.finance, "le_us", date(2026, 6, 29), "3.25", 1, NOW)
    metrics = world.client.get("/v1/metrics").json()
    text = world.client.get("/metrics").text
    aging = {row["class"]: row for row in metrics["exception_aging"]["by_class"]}
    for name, row in aging.items():
        assert f'finsync_exceptions_unresolved{{class="{name}"}} {row["unresolved"]}' in text
        assert f'finsync_exception_age_seconds_max{{class="{name}"}} ' \
               f'{row["oldest_age_s"]}' in text
    assert metrics["exception_aging"]["unresolved"] == 6
    assert metrics["exception_aging"]["oldest_age_s"] == 200 * 86400
    assert metrics["reconciliation_variance"][0]["variance"] == {"amount": "3.25",
                                                                 "currency": "USD"}
    assert 'finsync_reconciliation_variance{legal_entity="le_us",currency="USD"} 3.25' in text
    assert metrics["invoice_posting_success"] == {"ratio": 1.0, "posted": 0, "refused": 0}
    assert "finsync_invoice_posting_success_ratio 1.0" in text
    assert metrics["event_to_posting_latency_s"] == {"count": 0, "sum": 0.0}
    assert metrics["duplicate_events"] == {"count": 0, "raw_events": 0, "ratio": 0.0}
    assert metrics["revenue_schedule_failures"] == 0
    # The CLI's --json, on the same store (the wall clock's ages differ: not compared).
    monkeypatch.chdir(tmp_path)
    (tmp_path / "finsync.toml").write_text(with_auth())
    cli = cli_json(["metrics"])
    for key in ("invoice_posting_success", "unmatched_ar", "duplicate_events",
                "reconciliation_variance", "deliveries", "revenue_schedule_failures"):
        assert cli[key] == metrics[key], key
    assert cli["exception_aging"]["unresolved"] == 6


def test_trend_days_are_bounded(world: World) -> None:
    for days in ("0", "367", "-1", "x"):
        response = world.client.get(f"/v1/overview?days={days}")
        assert response.status_code == 422, days
        assert response.json()["error"]["code"] == "invalid_request"


def test_the_pipeline_run_by_this_process_reports_its_health(
        world: World, tmp_path: Path) -> None:
    config = parse_config(tomllib.loads(DEFAULT_CONFIG.read_text()), tmp_path)
    app = create_app(world.finance.hub, worker_interval_s=0.05,
                     services=build_services(config, world.finance))
    with authkit.client(app, world.finance.hub.engine, [FINANCE_READ]) as served:
        pipeline = served.get("/v1/overview").json()["pipeline"]
    assert pipeline["runs_here"] is True
    assert pipeline["status"] == "ok" and pipeline["reasons"] == []
    assert pipeline["workers"][PIPELINE]["alive"] is True


def test_an_erp_held_back_by_its_daily_cap_is_shown_with_when_it_may_be_called(
        tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    text = DEFAULT_CONFIG.read_text().replace("# daily_cap = 50000", "daily_cap = 1")
    config = parse_config(tomllib.loads(text), tmp_path)
    clock = SimClock(NOW)
    finance = build_finance(config, clock=clock)
    try:
        client = authkit.client(create_app(finance.hub, services=build_services(
            config, finance)), finance.hub.engine, [FINANCE_READ])
        assert client.get("/v1/overview").json()["pipeline"]["budget_waits"] == []
        # Another process spends the day's one call.
        other = PostingBudget(finance.hub.engine, "ledger", Limits(daily_cap=1), clock,
                              "other", 30)
        assert isinstance(other.take(), Grant)
        held = client.get("/v1/overview").json()["pipeline"]["budget_waits"]
    finally:
        finance.dispose()
    assert held == [{"target": "ledger", "limit": "daily_cap", "seconds": 12 * 3600.0}]


def _posted(finance: Finance, n: int, occurred: datetime, completed: datetime) -> None:
    """Invoice `n` accepted at `occurred` and posted to the ledger at `completed`."""
    at = occurred
    with transaction(finance.hub.engine) as conn:
        conn.execute(insert(events).values(
            event_id=f"evt_{n}", type="invoice.issued", schema_version=1, source="billing",
            source_event_id=f"inv_{n}-issued", occurred_at=at, received_at=at,
            correlation_id=f"c{n}", aggregate_type="invoice", aggregate_id=f"inv_{n}",
            payload="{}", payload_hash=f"{n:064d}", status="accepted", status_changed_at=at))
        conn.execute(insert(deliveries).values(
            event_id=f"evt_{n}", target="ledger", delivery_key=f"evt_{n}:ledger",
            partition_key=f"invoice:inv_{n}", correlation_id=f"c{n}", status="done",
            attempts=1, next_attempt_at=at, created_at=at, completed_at=completed))


def test_posting_latency_quantiles_are_read_from_the_database(world: World) -> None:
    for n, seconds in enumerate((7200, 60, 3600)):
        _posted(world.finance, n, NOW - timedelta(seconds=seconds), NOW)
    metrics = world.client.get("/v1/metrics").json()
    # Sorted 60, 3600, 7200: p50 the value at index int(0.5 * 3) = 1, p90 and p99 at
    # min(2, int(q * 3)) = 2; the sum 60 + 3600 + 7200 = 10860.
    latency = metrics["event_to_posting_latency_s"]
    assert latency["count"] == 3
    assert [round(latency[p], 2) for p in ("p50", "p90", "p99")] == [3600, 7200, 7200]
    assert round(latency["sum"], 2) == 10860
    assert metrics["invoice_posting_success"] == {"ratio": 1.0, "posted": 3, "refused": 0}
    text = world.client.get("/metrics").text
    assert "finsync_event_to_posting_latency_seconds_count 3" in text
