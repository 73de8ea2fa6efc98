"""The demo report's own figures: revenue per month from the close's journals, the queue
by status and class, faults caught by their controls, and whole correlation chains."""

from __future__ import annotations

from datetime import date
from typing import Any

from finsync.demo.report import (
    CHAIN,
    chains_complete,
    exceptions,
    faults,
    revenue_recognised,
)
from finsync.demo.workflow import DUPLICATE, LATE_PAYMENT
from finsync.domain.events import EventType
from finsync.domain.journal import JournalEntry, JournalLine, Side
from finsync.domain.money import Money
from finsync.hub.service import Delivered


def _entry(entry_id: str, day: date, revenue: str, side: Side, correlation: str
           ) -> JournalEntry:
    other = Side.DEBIT if side is Side.CREDIT else Side.CREDIT
    amount = Money.of(revenue, "USD")
    return JournalEntry(entry_id, "le_us", day, "test", (
        JournalLine("4000", side, amount), JournalLine("2400", other, amount)), correlation)


def test_revenue_recognised_nets_the_close_journals_per_month() -> None:
    entries = [
        _entry("je_1", date(2026, 1, 31), "100.00", Side.CREDIT, "close:le_us:2026-01"),
        _entry("je_2", date(2026, 1, 31), "15.00", Side.DEBIT, "close:le_us:2026-01"),
        _entry("je_3", date(2026, 2, 28), "90.00", Side.CREDIT, "close:le_us:2026-02"),
        _entry("je_4", date(2026, 2, 10), "999.00", Side.CREDIT, "inv_1"),  # not the close
    ]
    # January: 100.00 credit - 15.00 debit = 85.00; February: 90.00.
    assert revenue_recognised(entries, "4000") == {"2026-01": "85.00", "2026-02": "90.00"}


def _queue() -> list[dict[str, Any]]:
    return [
        {"id": 1, "class": "closed_period", "status": "resolved", "amount_at_stake": "10.00",
         "correlation_id": "c1", "summary": "s", "resolution_note": "n"},
        {"id": 2, "class": "mapping_error", "status": "open", "amount_at_stake": None,
         "correlation_id": None, "summary": "s", "resolution_note": None},
    ]


def test_exceptions_count_by_status_and_class() -> None:
    summary = exceptions(_queue())
    assert (summary["open"], summary["resolved"], summary["ignored"]) == (1, 1, 0)
    assert summary["by_class"] == {"closed_period": 1, "mapping_error": 1}


def test_a_fault_is_caught_only_when_its_class_is_settled() -> None:
    report = {"exceptions": exceptions(_queue()), "duplicates_ignored": 0,
              "parked_out_of_order": 0}
    injected = [{"fault": LATE_PAYMENT, "control": "c"}, {"fault": DUPLICATE, "control": "d"}]
    assert [f["caught"] for f in faults(report, injected)] == [True, False]


def test_a_chain_breaks_when_an_entry_has_no_delivery() -> None:
    entry = _entry("je_1", date(2026, 1, 31), "100.00", Side.CREDIT, "c1")
    stray = _entry("je_2", date(2026, 1, 31), "100.00", Side.CREDIT, "c2")
    postings = [Delivered("c1", "ledger", "je_1", EventType.INVOICE_ISSUED)]
    assert chains_complete(postings, [entry], CHAIN) is True
    assert chains_complete(postings, [entry, stray], CHAIN) is False
    assert chains_complete(postings, [entry], CHAIN[:-1]) is False
