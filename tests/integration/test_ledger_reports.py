"""Close-time reports added up in the database (AR aging, open items as of a day, the
subledger check, trial balance, roll-forward) against the same reports computed in Python
from every row, on SQLite and PostgreSQL, over random lives of the books."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from finsync.domain.money import Money
from finsync.systems.ledger import records
from finsync.systems.ledger import tables as t
from finsync.systems.ledger.ar import BUCKETS, ItemKind, OpenItem, bucket
from finsync.systems.ledger.service import LedgerService
from tests.integration.test_ledger_books import Life
from tests.ledgerkit import invoice, ledger_service, payment, wipe_books

DAYS = st.dates(date(2026, 1, 1), date(2027, 3, 31))


def _items_in_python(service: LedgerService, entity: str, as_of: date) -> list[OpenItem]:
    """Every item and every settlement read back; later settlements added back in Python
    (the reports' implementation before they moved into SQL)."""
    with service.engine.connect() as conn:
        later: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for r in conn.execute(select(t.settlements).where(t.settlements.c.entity == entity,
                                                          t.settlements.c.posting_date > as_of)):
            later[r.item_id][0] += r.applied_minor
            later[r.item_id][1] += r.relieved_minor
        found = []
        for item in records.items(conn, entity, only_open=False):
            applied, relieved = later.get(item.id, (0, 0))
            open_ = item.open + Money.from_minor(applied, item.open.currency)
            booked = item.booked_open + Money.from_minor(relieved, item.booked_open.currency)
            if item.posting_date <= as_of and not open_.is_zero:
                found.append(OpenItem(item.id, item.legal_entity, item.customer_id, item.kind,
                                      item.document_id, item.original, open_, booked,
                                      item.posting_date, item.due_date))
    return found


def _aging_in_python(service: LedgerService, entity: str, as_of: date,
                     functional: str) -> list[dict[str, Any]]:
    zero = Money.zero(functional)
    rows: dict[str, dict[str, Money]] = {}
    for item in _items_in_python(service, entity, as_of):
        row = rows.setdefault(item.customer_id, {**{b: zero for b in BUCKETS}, "credits": zero})
        key = "credits" if item.kind is ItemKind.CREDIT else bucket(item, as_of)
        row[key] = row[key] + item.booked_open
    return [{"customer": c, **{k: str(v.amount) for k, v in row.items()},
             "total": str(sum((row[b] for b in BUCKETS), zero).amount)}
            for c, row in sorted(rows.items())]


def _balances_in_python(service: LedgerService, entity: str, start: date,
                        end: date) -> dict[str, tuple[int, int, int]]:
    """(opening, debits, credits) in minor units per account, from every line."""
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for entry in service.entries(entity):
        for line in entry.lines:
            minor = line.amount.to_minor()
            signed = minor if line.side.value == "debit" else -minor
            if entry.posting_date < start:
                sums[line.account][0] += signed
            elif entry.posting_date <= end:
                sums[line.account][1 if signed > 0 else 2] += minor
    return {a: (o, d, c) for a, (o, d, c) in sums.items() if (o, d, c) != (0, 0, 0)}


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_reports_in_sql_equal_the_reports_in_python(engine: Engine,
                                                    data: st.DataObject) -> None:
    wipe_books(engine)  # fresh books for every example
    service = ledger_service(engine)
    life = Life(service, data)
    for _ in range(data.draw(st.integers(1, 20))):
        life.step()
    for as_of in data.draw(st.lists(DAYS, min_size=1, max_size=4)):
        for entity, functional in (("le_us", "USD"), ("le_eu", "EUR")):
            assert service.open_items(entity, as_of) == sorted(
                _items_in_python(service, entity, as_of),
                key=lambda i: (i.posting_date, i.id))
            assert service.aging(entity, as_of) == _aging_in_python(service, entity, as_of,
                                                                    functional)
            for check in service.subledger_check(entity, as_of).values():
                assert check["difference"] == "0.00", check
        start = as_of - timedelta(days=data.draw(st.integers(0, 90)))
        expected = _balances_in_python(service, "le_us", start, as_of)
        assert {r.account: (r.opening.to_minor(), r.debit.to_minor(), r.credit.to_minor())
                for r in service.roll_forward("le_us", start, as_of)} == expected
        assert all(r.closing == r.opening + r.debit - r.credit
                   for r in service.roll_forward("le_us", start, as_of))


def test_aging_buckets_by_days_past_due_on_each_boundary(engine: Engine) -> None:
    """Due on the as-of day is current; 1, 30 | 31, 60 | 61, 90 | 91 days late fall in
    the next buckets. A payment after the as-of day does not count yet."""
    service = ledger_service(engine)
    as_of = date(2026, 6, 30)
    for n, late in enumerate((0, 1, 30, 31, 60, 61, 90, 91)):
        due = as_of - timedelta(days=late)
        service.post_invoice(invoice(f"inv_{n}", [f"{n + 1}.00"], on=due), f"k{n}")
    service.post_payment(payment("pay_1", "1.00", {"inv_0": "1.00"}, on=date(2026, 7, 1)),
                         "kp")
    (row,) = service.aging("le_us", as_of)
    assert row == {"customer": "cus_1", "current": "1.00", "1-30": "5.00", "31-60": "9.00",
                   "61-90": "13.00", "90+": "8.00", "credits": "0.00", "total": "36.00"}
    (after,) = service.aging("le_us", date(2026, 7, 1))
    assert after["total"] == "35.00"
