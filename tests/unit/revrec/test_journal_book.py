"""Period journals stored at close and caught up after (`journal_book`), on both databases.

500 seats x 120.00 = 60,000.00 for 2026, billed on 1 January. January: round(60,000 x
31/365 = 5,095.890) = 5,095.89; February round(60,000 x 59/365 = 9,698.630) - 5,095.89 =
4,602.74; March round(60,000 x 90/365 = 14,794.521) - 9,698.63 = 5,095.89. Credits for
January's service (concessions for that period, 606-10-32-44) arrive after January closed.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import Engine

from finsync.domain.clock import month_period
from finsync.domain.invoice import CreditMemo, DocumentLine
from finsync.domain.journal import JournalEntry
from finsync.systems.revrec.journal_store import encode_entry
from finsync.systems.revrec.migrate import upgrade
from finsync.systems.revrec.service import RevenueService
from tests.contract.revenue_port import SEAT, contract, invoice, usd
from tests.unit.revrec.test_service import _catalog

JAN, FEB, MAR = (month_period(m) for m in ("2026-01", "2026-02", "2026-03"))


def _service(engine: Engine) -> RevenueService:
    upgrade(engine)
    service = RevenueService(engine, _catalog)
    service.book(contract(), "k-book", "evt-book")
    service.record_invoice(invoice("inv_1", date(2026, 1, 1), {SEAT: "60000.00"}), "k-inv",
                           "evt-inv")
    return service


def _january_credit(memo_id: str, amount: str) -> CreditMemo:
    line = DocumentLine("0", SEAT, "SLA credit, January", 1, usd(amount), usd("0"),
                        date(2026, 1, 1), date(2026, 2, 1), contract_line_id="ln_seats")
    return CreditMemo(memo_id, memo_id.upper(), "inv_1", "cus_acme", "le_us", "USD",
                      date(2026, 1, 16), "sla_credit", (line,), usd(amount), usd("0"),
                      usd(amount))


def _sums(entry: JournalEntry, adjusted: bool) -> dict[str, Decimal]:
    found: dict[str, Decimal] = {}
    for line in entry.lines:
        if ("adjusts_period" in dict(line.dimensions)) is adjusted:
            key = f"{line.side.value}:{line.account}"
            found[key] = found.get(key, Decimal(0)) + line.amount.amount
    return found


def test_a_stored_journal_is_answered_as_stored_and_late_credits_are_caught_up_once(
        engine: Engine) -> None:
    service = _service(engine)
    (january,) = service.close_journals("le_us", JAN, "close:le_us:2026-01")
    assert _sums(january, adjusted=False) == {"credit:4000": Decimal("5095.89"),
                                              "debit:2400": Decimal("5095.89")}
    text = encode_entry(january)

    service.apply_credit_memo(_january_credit("cm_1", "310.00"), "k-cm1", "evt-cm1")
    (again,) = service.period_journals("le_us", JAN)
    assert encode_entry(again) == text  # byte for byte, never recomputed
    assert service.close_journals("le_us", JAN, "another request") == (again,)

    (february,) = service.period_journals("le_us", FEB)  # not stored yet: computed
    assert _sums(february, adjusted=False) == {"credit:4000": Decimal("4602.74"),
                                               "debit:2400": Decimal("4602.74")}
    assert _sums(february, adjusted=True) == {"debit:4910": Decimal("310.00"),
                                              "credit:2400": Decimal("310.00")}
    adjusted = [ln for ln in february.lines if "adjusts_period" in dict(ln.dimensions)]
    assert {dict(ln.dimensions)["adjusts_period"] for ln in adjusted} == {"2026-01"}
    assert {dict(ln.dimensions)["revenue_change"] for ln in adjusted} == {"evt-cm1"}
    assert service.close_journals("le_us", FEB, "close:le_us:2026-02") == (february,)

    # March: January's catch-up is booked already; a second late credit is caught up alone.
    (march,) = service.period_journals("le_us", MAR)
    assert _sums(march, adjusted=True) == {}
    service.apply_credit_memo(_january_credit("cm_2", "100.00"), "k-cm2", "evt-cm2")
    (march,) = service.period_journals("le_us", MAR)
    assert _sums(march, adjusted=False) == {"credit:4000": Decimal("5095.89"),
                                            "debit:2400": Decimal("5095.89")}
    assert _sums(march, adjusted=True) == {"debit:4910": Decimal("100.00"),
                                           "credit:2400": Decimal("100.00")}
    assert {dict(ln.dimensions)["revenue_change"] for ln in march.lines
            if "adjusts_period" in dict(ln.dimensions)} == {"evt-cm2"}
    adjustments = dict(service.adjustments_by_month("le_us", JAN.start, MAR.end))
    (booked,) = adjustments["USD"]  # the one stored (February's); March's is not stored yet
    assert (booked.booked_in, booked.adjusts, booked.contra) == (FEB.start, JAN.start,
                                                                  usd("310.00"))


def test_a_quiet_period_stores_nothing_and_is_journaled_when_it_moves(engine: Engine) -> None:
    upgrade(engine)
    service = RevenueService(engine, _catalog)
    assert service.close_journals("le_us", JAN, "close:le_us:2026-01") == ()
    service.book(contract(), "k-book", "evt-book")
    (january,) = service.close_journals("le_us", JAN, "close:le_us:2026-01")
    assert _sums(january, adjusted=False) == {"credit:4000": Decimal("5095.89"),
                                              "debit:1260": Decimal("5095.89")}
