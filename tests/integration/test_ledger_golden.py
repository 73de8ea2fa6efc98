"""The rows the embedded ledger stores never change for the same documents, on SQLite and
PostgreSQL: every column of every entry (its body hash too: a replay compares against it),
line, AR item and settlement, for documents that take every path of the posting rules
(tax per jurisdiction, foreign currency and realised FX, customer credits and debits, credit
memos by reason, refunds that re-open an invoice, disputes, journal entries, an approved
posting in a soft-closed period), posted one by one and in batches.

`tests/fixtures/ledger/golden_rows.json` was written by the code before the posting cost
was cut (issue 19); a change to the posting path that moves a single stored byte fails here.
Rewrite it only for a change of the books that is meant (`FINSYNC_WRITE_GOLDEN=1`), and
say why in the commit.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from finsync.domain.journal import JournalEntry, JournalLine, PeriodStatus, Side
from finsync.domain.money import Money
from finsync.domain.payment import Refund
from finsync.systems.ledger import tables as t
from finsync.systems.ledger.service import LedgerService, Posted, Request, Source
from tests.ledgerkit import (
    credit_memo,
    dispute_closure,
    dispute_funds,
    invoice,
    ledger_service,
    payment,
)

GOLDEN = Path(__file__).parent.parent / "fixtures" / "ledger" / "golden_rows.json"
NY = (("US-NY", "0.80"), ("US-NY-NYC", "0.45"))


def _usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def _one_by_one(service: LedgerService) -> list[str]:
    """Documents posted by the service's single calls; their outcomes."""
    posted: list[Posted] = [
        service.post_invoice(invoice("inv_1", ["100.00", "20.00"], tax="5.00"), "k1"),
        service.post_invoice(invoice("inv_2", ["300.00", "45.50"], breakdown=NY,
                                     products=["prod_seat", "prod_services"]), "k2",
                             Source("corr_2", (("event", "evt_2"), ("document", "inv_2")))),
        service.post_invoice(invoice("inv_3", ["250.00", "-40.00"], "EUR", tax="1.25"), "k3"),
        service.post_payment(payment("pay_1", "150.00", {"inv_1": "100.00"}), "k4"),
        service.post_payment(payment("pay_2", "212.50", {"inv_3": "212.50"}, "EUR",
                                     on=date(2026, 3, 5)), "k5"),
        service.post_credit_memo(credit_memo("cm_1", "inv_1", "60.00", breakdown=NY), "k6"),
        service.post_credit_memo(credit_memo("cm_2", "inv_2", "10.00", reason="goodwill"),
                                 "k7"),
        service.post_credit_memo(credit_memo("cm_3", "inv_2", "20.00",
                                              reason="uncollectible"), "k8"),
        service.post_invoice(replace(invoice("inv_4", ["80.00"], on=date(2026, 2, 20)),
                                     customer_credit_applied=_usd("30.00")), "k9"),
        service.post_invoice(invoice("inv_5", ["10.00", "-25.00"], on=date(2026, 2, 21)),
                             "k10"),
        service.post_dispute_funds(dispute_funds("txn_1", "-70.00", "15.00"), "k11"),
        service.post_dispute_closure(dispute_closure("lost", "-70.00"), "k12"),
        service.post_entry(JournalEntry("rev_1", "le_us", date(2026, 3, 31), "Revenue", (
            JournalLine("2400", Side.DEBIT, _usd("33.33"), (("contract", "con_1"),)),
            JournalLine("4000", Side.CREDIT, _usd("33.33"), (("contract", "con_1"),)))),
            "k13"),
        service.post_invoice(invoice("inv_6", ["99.99"], "USD", entity="le_eu",
                                     on=date(2026, 1, 31)), "k14"),
    ]
    return [p.entry_id for p in posted]


def _batched(service: LedgerService) -> list[str]:
    """Documents posted by `post_many`: one is refused alone, one replays an earlier key."""
    requests = [
        Request("invoice", invoice("inv_7", ["500.00"], "EUR", on=date(2026, 4, 2),
                                   customer="cus_2", breakdown=(("DE", "1.90"),)), "k15"),
        Request("payment", payment("pay_3", "700.00", {"inv_7": "300.00"}, "EUR",
                                   on=date(2026, 4, 3), customer="cus_2"), "k16"),
        Request("refund", Refund("re_1", "pay_3", "cus_2", "le_us", Money.of("450.00", "EUR"),
                                 date(2026, 4, 4), "credit"), "k17"),
        Request("refund", Refund("re_2", "pay_1", "cus_1", "le_us", _usd("75.00"),
                                 date(2026, 4, 5), "credit", from_credit=_usd("25.00"),
                                 reopens_invoice="inv_1"), "k18"),
        Request("invoice", invoice("inv_8", ["1.00"], on=date(2026, 1, 10)), "k19"),
        Request("invoice", invoice("inv_1", ["100.00", "20.00"], tax="5.00"), "k1"),
        Request("payment", payment("pay_4", "19.99", {"inv_6": "19.99"}, entity="le_eu",
                                   on=date(2026, 4, 6)), "k20"),
        Request("invoice", invoice("inv_9", ["12.34"], on=date(2026, 2, 27)), "k21",
                Source("corr_9", approved=True)),
    ]
    outcomes = service.post_many(requests)
    return [o.entry_id if isinstance(o, Posted) else f"{type(o).__name__}: {o}"
            for o in outcomes]


def _rows(engine: Engine) -> dict[str, list[list[Any]]]:
    """Every stored row but the clock's time and the settlement's sequence number."""
    skip = {(t.entries.name, "posted_at"), (t.settlements.name, "id")}
    found: dict[str, list[list[Any]]] = {}
    with engine.connect() as conn:
        for table in (t.entries, t.lines, t.items, t.settlements):
            columns = [c for c in table.columns if (table.name, c.name) not in skip]
            rows = conn.execute(select(*columns).order_by(*columns))
            found[table.name] = [[c.name for c in columns],
                                 *([_plain(v) for v in row] for row in rows)]
    return found


def _plain(value: Any) -> Any:
    """A stored value as the fixture writes it (dates ISO, everything else as read)."""
    if isinstance(value, date):
        return value.isoformat()
    return value


def test_the_rows_stored_for_the_same_documents_never_change(engine: Engine) -> None:
    service = ledger_service(engine)
    first = _one_by_one(service)
    service.set_period_status("le_us", "2026-01", PeriodStatus.CLOSED, "controller")
    service.set_period_status("le_us", "2026-02", PeriodStatus.SOFT_CLOSED, "controller")
    batched = _batched(service)
    got = {"outcomes": [*first, *batched], "rows": _rows(engine)}
    if os.environ.get("FINSYNC_WRITE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    assert got == json.loads(GOLDEN.read_text())
