"""The reconciliation page's JSON API on both databases: the seven checks per entity as the
service computes them (stored or computed), a break's drill-down and documents, the
variance trend, and a run started in the background with its progress, audited as the
caller's."""

from __future__ import annotations

import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from finsync.api.app import create_app
from finsync.auth.principal import EXCEPTIONS_ACT, FINANCE_READ
from finsync.bootstrap import Finance, build_billing_service, build_finance
from finsync.config import DEFAULT_CONFIG, parse_config
from finsync.connectors.ports import DeliveryContext
from finsync.demo.clock import SimClock
from finsync.domain.catalog import BillingFrequency
from finsync.domain.contract import ContractLine, SubscriptionContract
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount
from finsync.recon.model import Report
from finsync.systems.billing.handler import RegisterCustomer
from finsync.systems.billing.subscription import CreateSubscription
from finsync.views.services import build_services
from tests import authkit
from tests.ledgerkit import invoice

JAN_31 = date(2026, 1, 31)


@dataclass
class World:
    finance: Finance
    client: TestClient
    invoice_id: str  # billing's invoice, delivered to the ERP and the revenue engine

    def get(self, url: str, status: int = 200) -> dict[str, Any]:
        response = self.client.get(url)
        assert response.status_code == status, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def world(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """One customer's annual invoice (1 x 600.00 USD, booked everywhere), and an invoice
    posted to the ERP by hand that billing does not know: one break, not_in_billing."""
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    config = parse_config(tomllib.loads(DEFAULT_CONFIG.read_text()), tmp_path)
    clock = SimClock(datetime(2026, 1, 1, tzinfo=UTC))
    finance = build_finance(config, clock=clock)
    billing = build_billing_service(config, finance.hub.engine, clock)
    billing.execute(RegisterCustomer(CustomerAccount("cus_t", "T", "le_us", "USD", "US")))
    start, end = date(2026, 1, 1), date(2027, 1, 1)
    line = ContractLine("ln_seats", "prod_platform_seat", "price_seat_annual", 5,
                        Money.of("120.00", "USD"), start, end)
    billing.execute(CreateSubscription(SubscriptionContract(
        "con_t", "cus_t", "le_us", "USD", start, end, BillingFrequency.ANNUAL, (line,))))
    finance.hub.run_until_idle()
    finance.ports.ledger().post_invoice(invoice("inv_stray", ["250.00"]),
                                        DeliveryContext("manual-1", "m", "m"))
    app = create_app(finance.hub, services=build_services(config, finance))
    token = authkit.issue(finance.hub.engine, [FINANCE_READ, EXCEPTIONS_ACT],
                          principal="alice")
    with TestClient(app, headers=authkit.bearer(token)) as client:
        yield World(finance, client, billing.invoices()[0].id)
    finance.hub.engine.dispose()


def _figures(report: Report) -> dict[tuple[str, str], tuple[int, int, int, str]]:
    """(entity, check) -> (items, breaks, unexplained, variance), as the CLI prints them."""
    return {(c.legal_entity, c.name): (c.item_count, len(c.breaks), len(c.unexplained),
                                       str(c.variance.amount)) for c in report.checks}


def _shown(body: dict[str, Any]) -> dict[tuple[str, str], tuple[int, int, int, str]]:
    return {(e["legal_entity"], c["name"]): (c["items"], c["breaks"], c["unexplained"],
                                             c["variance"]["amount"])
            for e in body["entities"] for c in e["checks"]}


def test_a_day_nobody_ran_is_computed_as_the_service_computes_it_and_not_recorded(
        world: World) -> None:
    body = world.get("/v1/reconciliation?as_of=2026-01-31")
    report = world.finance.recon.run(JAN_31, record=False)
    assert body["source"] == "computed"
    assert _shown(body) == _figures(report)
    assert len(body["entities"]) == 2 and len(body["entities"][0]["checks"]) == 7
    # What makes `finsync reconcile` exit 3: here the stray invoice, unexplained.
    assert body["unexplained_breaks"] == len(report.unexplained) == 1
    [us] = [e for e in body["entities"] if e["legal_entity"] == "le_us"]
    # Every break counts in the variance, explained ones too (January is not closed).
    total = str(report.total_variance()["USD"].amount)
    assert us["variance"] == {"amount": total, "currency": "USD"}
    assert us["breaks"] > us["unexplained_breaks"] == 1
    assert us["run_at"] is None
    # A look is not a run: no break was opened, no run was kept.
    assert world.finance.triage.listing(exception_class="reconciliation_break") == []
    assert world.finance.recon.stored(JAN_31) == []


def test_a_day_somebody_ran_is_shown_as_the_run_recorded_it(world: World) -> None:
    report = world.finance.recon.run(JAN_31)
    body = world.get("/v1/reconciliation?as_of=2026-01-31")
    assert body["source"] == "stored"
    assert _shown(body) == _figures(report)
    assert all(e["run_at"] for e in body["entities"])
    # Without a day: the latest recorded run's.
    assert world.get("/v1/reconciliation")["as_of"] == "2026-01-31"


def test_a_break_drills_down_to_its_cause_and_its_exception(world: World) -> None:
    world.finance.recon.run(JAN_31)
    [opened] = world.finance.triage.listing(exception_class="reconciliation_break")
    body = world.get("/v1/reconciliation/le_us/billing_vs_erp_ar?as_of=2026-01-31")
    assert (body["breaks_total"], body["breaks_shown"]) == (1, 1)
    [row] = body["breaks"]
    assert (row["ref"], row["cause"], row["explained_by"]) == (
        "invoice:inv_stray", "not_in_billing", None)
    assert row["expected"] == {"amount": "0.00", "currency": "USD"}
    assert row["actual"] == row["variance"] == {"amount": "250.00", "currency": "USD"}
    assert row["exception"] == {"id": opened["id"], "status": "open"}


def test_a_drill_down_of_an_unknown_entity_or_check_is_refused_with_its_code(
        world: World) -> None:
    unknown = world.get("/v1/reconciliation/le_xx/billing_vs_erp_ar?as_of=2026-01-31", 404)
    assert unknown["error"]["code"] == "unknown_entity"
    assert "le_xx" in unknown["error"]["message"]
    check = world.get("/v1/reconciliation/le_us/no_such_check?as_of=2026-01-31", 404)
    assert check["error"]["code"] == "not_found"
    far = world.get("/v1/reconciliation?as_of=1900-01-31", 422)
    assert far["error"]["code"] == "date_out_of_range"
    bad = world.get("/v1/reconciliation?as_of=31.01.2026", 422)
    assert bad["error"]["code"] == "invalid_request"
    # A NUL never reaches the database (PostgreSQL's text cannot hold it).
    nul = world.get("/v1/reconciliation/documents?ref=invoice:inv%00x", 422)
    assert nul["error"]["code"] == "invalid_request"


def test_an_items_documents_name_its_correlation_and_its_id_in_each_system(
        world: World) -> None:
    body = world.get(f"/v1/reconciliation/documents?ref=invoice:{world.invoice_id}")
    assert [e["type"] for e in body["events"]] == ["invoice.issued"]
    [correlation] = body["correlation_ids"]
    assert world.finance.hub.timeline(correlation)  # the timeline page has it
    assert body["contract_ids"] == ["con_t"]
    systems = {s["system"]: s["id"] for s in body["in_systems"]}
    assert {"ledger", "revrec"} <= set(systems)
    # The embedded ERP's journal entry for it: receivable debited with the invoice's total.
    [entry] = body["erp_entries"]
    assert (entry["system"], entry["id"]) == ("ledger", systems["ledger"])
    debits = [line["amount"]["amount"] for line in entry["lines"] if line["side"] == "debit"]
    credits = [line["amount"]["amount"] for line in entry["lines"] if line["side"] == "credit"]
    assert sum(map(Decimal, debits)) == sum(map(Decimal, credits)) == Decimal("600.00")
    # A tax item is its document's.
    tax = world.get(f"/v1/reconciliation/documents?ref=tax:none:2026-01:{world.invoice_id}")
    assert (tax["kind"], tax["object_id"], tax["events"]) == ("invoice", world.invoice_id,
                                                              body["events"])
    # A line that sums many documents has none of its own.
    customer = world.get("/v1/reconciliation/documents?ref=customer:cus_t")
    assert (customer["has_documents"], customer["events"]) == (False, [])


def test_the_trend_lists_each_entitys_recorded_variance_per_day(world: World) -> None:
    mid = world.finance.recon.run(date(2026, 1, 15))
    world.finance.recon.run(JAN_31)
    end = world.finance.recon.run(JAN_31)  # the latest run of a day stands
    body = world.get("/v1/reconciliation/trend?until=2026-01-31&days=90")
    points = [(p["legal_entity"], p["as_of"], p["variance"], p["breaks"])
              for p in body["points"]]

    def us(report: Report) -> tuple[str, int]:
        return (str(report.total_variance()["USD"].amount),
                sum(len(c.breaks) for c in report.checks if c.legal_entity == "le_us"))
    assert points == [("le_eu", "2026-01-15", "0.00", 0), ("le_eu", "2026-01-31", "0.00", 0),
                      ("le_us", "2026-01-15", *us(mid)), ("le_us", "2026-01-31", *us(end))]
    assert body["since"] == "2025-11-03"


def _finished(world: World, job_id: str) -> dict[str, Any]:
    for _ in range(200):
        job = world.get(f"/v1/jobs/{job_id}")
        if job["status"] != "running":
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still running")


def test_a_run_from_the_console_is_a_job_with_progress_audited_as_the_caller(
        world: World) -> None:
    started = world.client.post("/v1/reconciliation/runs", json={"as_of": "2026-01-31"})
    assert started.status_code == 202, started.text
    job = _finished(world, started.json()["id"])
    assert (job["status"], job["kind"], job["started_by"]) == ("done", "reconcile", "alice")
    assert job["done"] == job["total"] == 2 * (7 + 1)  # each entity's 7 checks, its record
    assert job["result"]["unexplained_breaks"] == 1
    computed = world.finance.recon.run(JAN_31, record=False).total_variance()
    assert job["result"]["total_variance"] == [
        {"amount": str(computed["EUR"].amount), "currency": "EUR"},
        {"amount": str(computed["USD"].amount), "currency": "USD"}]
    # The CLI's call: the run is kept and the break is in the queue.
    assert world.get("/v1/reconciliation?as_of=2026-01-31")["source"] == "stored"
    assert len(world.finance.triage.listing(exception_class="reconciliation_break")) == 1
    records = world.finance.audit.records(0, 500)["records"]
    [run] = [r for r in records if r["action"] == "reconciliation.run"]
    assert (run["actor"], run["object_id"]) == ("alice", "2026-01-31")


def test_a_run_request_is_checked_before_it_starts(world: World) -> None:
    extra = world.client.post("/v1/reconciliation/runs",
                              json={"as_of": "2026-01-31", "entity": "le_us"})
    assert (extra.status_code, extra.json()["error"]["code"]) == (422, "invalid_request")
    far = world.client.post("/v1/reconciliation/runs", json={"as_of": "2099-01-31"})
    assert (far.status_code, far.json()["error"]["code"]) == (422, "date_out_of_range")
