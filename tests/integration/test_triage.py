"""The exception queue on real causes: a late payment into a closed period re-routed with
(or without) approval, segregation of duties, and a reconciliation break that opens and
resolves itself when the books agree again."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from finsync.bootstrap import Finance, build_billing_service, build_finance
from finsync.config import DEFAULT_CONFIG, parse_config
from finsync.connectors.ports import DeliveryContext
from finsync.demo.clock import SimClock
from finsync.domain.catalog import BillingFrequency
from finsync.domain.contract import ContractLine, SubscriptionContract
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount
from finsync.systems.billing.handler import RegisterCustomer
from finsync.systems.billing.payment import PayInvoice
from finsync.systems.billing.service import BillingService
from finsync.systems.billing.subscription import CreateSubscription
from finsync.triage.service import SegregationOfDutiesError
from tests.ledgerkit import credit_memo, invoice
from tests.people import ALICE, BOB


@pytest.fixture
def world(tmp_path: Path, db_url: str,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Finance, BillingService, SimClock]]:
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    config = parse_config(tomllib.loads(DEFAULT_CONFIG.read_text()), tmp_path)
    clock = SimClock(datetime(2026, 1, 1, tzinfo=UTC))
    finance = build_finance(config, clock=clock)
    yield finance, build_billing_service(config, finance.hub.engine, clock), clock
    finance.hub.engine.dispose()


def _subscribe(billing: BillingService, seats: int) -> str:
    billing.execute(RegisterCustomer(CustomerAccount("cus_t", "T", "le_us", "USD", "US")))
    start, end = date(2026, 1, 1), date(2027, 1, 1)
    line = ContractLine("ln_seats", "prod_platform_seat", "price_seat_annual", seats,
                        Money.of("120.00", "USD"), start, end)
    billing.execute(CreateSubscription(SubscriptionContract(
        "con_t", "cus_t", "le_us", "USD", start, end, BillingFrequency.ANNUAL, (line,))))
    return billing.invoices()[0].id


def _late_payment(finance: Finance, billing: BillingService, clock: SimClock,
                  seats: int) -> int:
    invoice_id = _subscribe(billing, seats)
    finance.hub.run_until_idle()
    clock.to(date(2026, 2, 1))
    finance.close.close("le_us", "2026-01", "controller")
    clock.to(date(2026, 2, 3))
    billing.execute(PayInvoice("pay_t", invoice_id, Money.of(f"{seats * 120}.00", "USD"),
                               date(2026, 1, 30)))
    finance.hub.run_until_idle()
    [row] = finance.triage.listing(exception_class="closed_period")
    return int(row["id"])


def test_a_material_reroute_needs_a_second_person(
        world: tuple[Finance, BillingService, SimClock]) -> None:
    finance, billing, clock = world
    exception_id = _late_payment(finance, billing, clock, seats=50)  # 6000.00 at stake
    asked = finance.triage.reroute(exception_id, ALICE, "January is closed")
    assert asked.status == "pending_approval"
    assert finance.triage.show(exception_id)["status"] == "awaiting_approval"
    with pytest.raises(SegregationOfDutiesError):
        finance.triage.approve(asked.action_id, ALICE, "mine")
    done = finance.triage.approve(asked.action_id, BOB, "fine")
    assert done.status == "done" and "2026-02-01" in done.detail
    finance.hub.run_until_idle()
    shown = finance.triage.show(exception_id)
    assert shown["status"] == "resolved"
    assert [(a["action"], a["requested_by"], a["decided_by"], a["status"])
            for a in shown["actions"]] == [("reroute", "alice", "bob", "done")]
    clock.to(date(2026, 3, 1))
    finance.close.close("le_us", "2026-02", "controller")
    assert finance.recon.run(date(2026, 2, 28)).total_variance()["USD"].is_zero


def test_a_small_reroute_goes_through_at_once(
        world: tuple[Finance, BillingService, SimClock]) -> None:
    finance, billing, clock = world
    exception_id = _late_payment(finance, billing, clock, seats=5)  # 600.00 at stake
    assert finance.triage.reroute(exception_id, ALICE, "January is closed").status == "done"
    finance.hub.run_until_idle()
    assert finance.triage.show(exception_id)["status"] == "resolved"


def test_a_reconciliation_break_opens_and_resolves_when_the_books_agree(
        world: tuple[Finance, BillingService, SimClock]) -> None:
    finance, billing, _clock = world
    _subscribe(billing, 5)
    finance.hub.run_until_idle()
    erp = finance.ports.ledger()
    erp.post_invoice(invoice("inv_stray", ["250.00"]), DeliveryContext("manual-1", "m", "m"))
    finance.recon.run(date(2026, 1, 31))
    breaks = finance.triage.listing(exception_class="reconciliation_break")
    # The customer line counts nothing its invoice line does not (finding 11): one break.
    assert [(b["objects"], b["amount_at_stake"]) for b in breaks] == \
        [(["invoice:inv_stray", "customer:cus_1"], "250.00 USD")]
    # Someone fixes it in the ERP (the stray invoice is credited); the next run agrees.
    erp.post_credit_memo(credit_memo("cm_stray", "inv_stray", "250.00", on=date(2026, 1, 20)),
                         DeliveryContext("manual-2", "m", "m"))
    report = finance.recon.run(date(2026, 1, 31))
    assert not [c for c in report.checks if c.breaks and c.name == "billing_vs_erp_ar"]
    assert finance.triage.listing(exception_class="reconciliation_break") == []
    resolved = finance.triage.listing(status="resolved", exception_class="reconciliation_break")
    assert {r["resolution_note"] for r in resolved} == {"reconciles on the latest run"}
