"""Immutable period journals on the embedded stack, on both databases (issue 16, item 10).

January closes with its revenue journal stored; then a credit memo dated 16 January arrives
(an SLA credit for January: a concession for that distinct period, 606-10-32-44). January's
journal is answered as stored, byte for byte; February's carries the catch-up for January as
adjustment lines naming the credit memo's event and the closed period, and the roll-forward
shows it. Hand-worked (docs/revrec/cases.md, section 37, the same arithmetic):
- 10 seats x 120.00 = 1,200.00 a year. January 1,200 x 31/365 = 101.917.. -> 101.92;
  cumulative to February 1,200 x 59/365 = 193.972.. -> 193.97, so February 92.05.
- The credit memo: 31.00 off January's seats (a component of -31.00 over January, recognised
  by 1 February in full): January's net revenue is now 70.92, its contra revenue 31.00, its
  gross revenue unchanged at 101.92; billed 1,200.00 - 31.00 = 1,169.00.
- Stored for January: Cr 4000 / Dr 2400 101.92. January as known now: Cr 4000 101.92, Dr
  4910 31.00, Dr 2400 70.92. The adjustment in February: Dr 4910 31.00 / Cr 2400 31.00.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from finsync.bootstrap import Finance, build_finance
from finsync.demo.clock import SimClock
from finsync.domain.clock import month_period
from finsync.domain.ids import event_id_for
from finsync.domain.journal import JournalEntry, JournalLine
from finsync.storage.db import reading
from finsync.systems.revrec import tables as revrec_tables
from finsync.systems.revrec.journal_store import encode_entry
from finsync.systems.revrec.service import RevenueService
from finsync.views import revenue as revenue_views
from finsync.views.services import build_services
from tests.builders import contract_doc, envelope, invoice_doc
from tests.hubkit import send_events, shipped_config


@dataclass
class World:
    finance: Finance
    revenue: RevenueService
    clock: SimClock


@pytest.fixture
def world(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    config = shipped_config(tmp_path)
    clock = SimClock(datetime(2026, 1, 1, 9, tzinfo=UTC))
    finance = build_finance(config, clock=clock)
    services = build_services(config, finance)
    assert services.revenue is not None
    yield World(finance, services.revenue, clock)
    finance.hub.engine.dispose()


def _january(world: World) -> None:
    contract = contract_doc("con_1", 1, 10, "120.00")
    contract["lines"][0].update(product_id="prod_platform_seat", price_id="price_seat_annual")
    invoice = invoice_doc("inv_1", "1200.00", "con_1", version=1)
    invoice["lines"][0].update(product_id="prod_platform_seat", contract_line_id="ln_seats")
    send_events(world.finance,
                envelope("contract.created", "con-v1", ("subscription_contract", "con_1", 1),
                         {"contract": contract}, correlation_id="ord_1"),
                envelope("invoice.issued", "inv-1", ("invoice", "inv_1", None),
                         {"invoice": invoice}, correlation_id="ord_1"))


def _late_credit(world: World) -> None:
    """cm_1: 31.00 off January's seats, dated 16 January, arriving on 3 February."""
    memo = {"id": "cm_1", "number": "CM-1", "invoice_id": "inv_1", "customer_id": "cus_1",
            "legal_entity": "le_us", "currency": "USD", "issue_date": "2026-01-16",
            "reason": "sla_credit",
            "lines": [{"line_id": "cl1", "product_id": "prod_platform_seat",
                       "description": "SLA credit, January", "quantity": 1,
                       "amount": "31.00", "tax_amount": "0.00",
                       "service_start": "2026-01-01", "service_end": "2026-02-01",
                       "contract_line_id": "ln_seats"}],
            "subtotal": "31.00", "tax_total": "0.00", "total": "31.00"}
    send_events(world.finance, envelope(
        "credit_memo.issued", "cm-1", ("credit_memo", "cm_1", None), {"credit_memo": memo},
        correlation_id="cm_1", at=datetime(2026, 2, 3, 9, tzinfo=UTC)))


def _stored_text(world: World) -> list[str]:
    j = revrec_tables.journals
    with reading(world.finance.hub.engine) as conn:
        return [str(text) for (text,) in conn.execute(
            select(j.c.entry).where(j.c.period_start == month_period("2026-01").start)
            .order_by(j.c.currency))]


def _sums(lines: list[JournalLine]) -> dict[str, Decimal]:
    found: dict[str, Decimal] = {}
    for line in lines:
        key = f"{line.side.value}:{line.account}"
        found[key] = found.get(key, Decimal(0)) + line.amount.amount
    return found


def _split(entry: JournalEntry) -> tuple[list[JournalLine], list[JournalLine]]:
    """(the period's own lines, its adjustment lines)."""
    own = [ln for ln in entry.lines if "adjusts_period" not in dict(ln.dimensions)]
    return own, [ln for ln in entry.lines if "adjusts_period" in dict(ln.dimensions)]


def test_a_closed_journal_stays_and_a_late_credit_is_caught_up_next_period(
        world: World) -> None:
    _january(world)
    world.clock.now = datetime(2026, 2, 1, 10, tzinfo=UTC)
    closed = world.finance.close.close("le_us", "2026-01", "controller")
    assert closed.status == "closed"
    [january] = closed.journals
    assert _sums(list(january.lines)) == {"credit:4000": Decimal("101.92"),
                                          "debit:2400": Decimal("101.92")}
    stored = _stored_text(world)
    assert stored == [encode_entry(january)]

    _late_credit(world)
    state = world.revenue.state("con_1")
    assert state is not None and state.transaction_price.amount == Decimal("1169.00")
    # January is answered as stored, byte for byte, to any reader and to the close again.
    [again] = world.revenue.period_journals("le_us", month_period("2026-01"))
    assert encode_entry(again) == stored[0] and again == january
    assert world.finance.close.close("le_us", "2026-01", "controller").status == \
        "already_closed"
    assert _stored_text(world) == stored

    world.clock.now = datetime(2026, 3, 1, 10, tzinfo=UTC)
    february = world.finance.close.close("le_us", "2026-02", "controller")
    assert february.status == "closed"
    [entry] = february.journals
    own, adjusted = _split(entry)
    assert _sums(own) == {"credit:4000": Decimal("92.05"), "debit:2400": Decimal("92.05")}
    assert _sums(adjusted) == {"debit:4910": Decimal("31.00"), "credit:2400": Decimal("31.00")}
    memo_event = event_id_for("billing", "cm-1")
    for line in adjusted:
        dims = dict(line.dimensions)
        assert dims["adjusts_period"] == "2026-01"
        assert memo_event in dims["revenue_change"].split()
        assert dims["revenue_contract"] == state.revenue_contract_id
    # Stored as posted: asked again, February is the same journal.
    assert world.revenue.period_journals("le_us", month_period("2026-02")) == (entry,)

    rows = revenue_views.roll_forward(world.revenue, "le_us", "2026-01", "2026-02").as_json()
    by_month: dict[str, Any] = {r["month"]: r for r in rows["rows"]}
    assert by_month["2026-01"]["adjustments"] == []
    assert by_month["2026-02"]["adjustments"] == [
        {"period": "2026-01", "revenue": "-31.00", "contra_revenue": "31.00",
         "deferred_revenue": "-31.00"}]
    # Reconciliation compares each closed month with what the engine's journals booked:
    # January as stored, February with January's catch-up; no break.
    report = world.finance.recon.run(date(2026, 2, 28), record=False)
    check = next(c for c in report.checks
                 if c.name == "recognised_vs_gl_revenue" and c.legal_entity == "le_us")
    assert check.breaks == ()
    fall = revenue_views.waterfall(world.revenue, "le_us", "2026-01", "2026-02").as_json()
    assert fall["gross"]["USD"] == {"2026-01": "101.92", "2026-02": "92.05"}
    assert fall["contra"]["USD"] == {"2026-01": "31.00", "2026-02": "0.00"}
    assert fall["revenue"]["USD"] == {"2026-01": "70.92", "2026-02": "92.05"}
