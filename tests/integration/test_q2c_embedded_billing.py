"""Quote to cash from the composition root against the real embedded billing (SQLite and
PostgreSQL), built by `build_finance` from the shipped configuration: the CRM's
customer and CPQ's versions enter the hub, are ordered from billing through the shipped
catalogue map, and billing's own contract events (pumped from its outbox, correlated by the
quote id) are checked against the orders.

The reference contract: Acme buys 500 seats at 120.00 a seat-year from 2026-01-01 with API
overage; on 2026-05-15 CPQ approves 800 seats plus premium analytics at 24,000.00 a year."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from finsync.bootstrap import Finance, build_finance
from finsync.demo.clock import SimClock
from finsync.domain import codec
from finsync.domain.commercial import CommercialContract
from finsync.domain.events import AnyEvent, CommercialContractApproved, CustomerUpserted
from finsync.domain.party import CustomerAccount
from finsync.domain.status import OrderState
from finsync.hub import cpq_status
from finsync.hub.milestone import Milestone
from finsync.storage.raw_log import RawIn
from tests.builders import envelope
from tests.hubkit import shipped_config
from tests.q2ckit import TERM_END, analytics, contract, line, renewed, seats

UPGRADE = date(2026, 5, 15)
ROUTES = {"commercial_contract.approved": ["billing"], "customer.upserted": ["billing"],
          "invoice.issued": ["ledger"], "payment.applied": ["ledger"],
          "contract.created": ["revrec"], "contract.amended": ["revrec"]}
ACME = CustomerAccount("cus_acme", "Acme Analytics Inc.", "le_us", "USD", "US",
                       billing_region="NY")


@pytest.fixture
def world(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[tuple[Finance, SimClock]]:
    """The shipped configuration with a CRM owning customers, billing's outbox pumped."""
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    config = shipped_config(tmp_path)
    config = config.model_copy(update={
        "routes": ROUTES, "pumps": {"billing": "billing"},
        "ownership": {**config.ownership, "customer": "crm"}})  # type: ignore[dict-item]
    clock = SimClock(datetime(2026, 1, 1, 9, tzinfo=UTC))
    finance = build_finance(config, clock=clock)
    yield finance, clock
    finance.hub.engine.dispose()


def send(finance: Finance, event: AnyEvent, source: str, correlation: str) -> None:
    ref = event.aggregate()
    body = envelope(event.name, f"{source}-{ref.type}-{ref.id}-{ref.version}",
                    (ref.type, ref.id, ref.version), codec.encode_event(event),
                    correlation_id=correlation, source=source)
    finance.hub.intake.store([RawIn("canonical", json.dumps(body).encode(), {})])
    finance.hub.run_until_idle()
    finance.hub.run_until_idle()  # billing's own events, pumped after its commands


def approve(finance: Finance, version: CommercialContract) -> None:
    send(finance, CommercialContractApproved(version), "cpq", version.quote_id)


def overage() -> object:
    return line("L-usage", "USAGE-OVERAGE", 0, "0.002")


def test_cpq_versions_are_ordered_from_billing_and_agree(
        world: tuple[Finance, SimClock]) -> None:
    finance, clock = world
    send(finance, CustomerUpserted(ACME), "crm", "crm-cus_acme")
    v1 = contract(1, seats(500), overage(), contract_id="con_acme")  # type: ignore[arg-type]
    approve(finance, v1)
    clock.to(UPGRADE)
    v2 = contract(2, seats(800), overage(),  # type: ignore[arg-type]
                  analytics(start=UPGRADE), contract_id="con_acme", effective=UPGRADE)
    approve(finance, v2)
    status = cpq_status.contract_status(finance.hub.engine, "con_acme")
    assert status is not None, [e["summary"] for e in finance.hub.exceptions()]
    assert [(v.cpq_version, v.order_state) for v in status.versions] == [
        (1, OrderState.APPLIED), (2, OrderState.APPLIED)], status
    upgrade = {m.name for m in status.versions[1].milestones}
    assert {Milestone.ORDER_ACCEPTED, Milestone.CONTRACT_ACCEPTED,
            Milestone.INVOICE_POSTED} <= upgrade
    assert not [e for v in status.versions for e in v.exceptions]
    assert status.baseline is not None
    assert [(b.line_id, b.quantity) for b in status.baseline.lines] == [
        ("L-seats", 800), ("L-analytics", 1)]


def test_a_renewal_at_its_uplift_is_renewed_by_billing_and_agrees(
        world: tuple[Finance, SimClock]) -> None:
    finance, clock = world
    send(finance, CustomerUpserted(ACME), "crm", "crm-cus_acme")
    v1 = contract(1, seats(500), contract_id="con_acme", uplift="7")
    approve(finance, v1)
    clock.to(date(2026, 12, 1))
    # 120.00 x 1.07 = 128.40 a seat-year for 2027.
    approve(finance, renewed(v1, 2, seats(500, "128.40", start=TERM_END,
                                          end=date(2028, 1, 1))))
    status = cpq_status.contract_status(finance.hub.engine, "con_acme")
    assert status is not None
    assert [e.summary for v in status.versions for e in v.exceptions] == []
    assert [(v.cpq_version, v.order_state) for v in status.versions] == [
        (1, OrderState.APPLIED), (2, OrderState.APPLIED)]
    assert status.baseline is not None and status.baseline.renews_on == date(2028, 1, 1)
