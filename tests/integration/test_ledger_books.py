"""The embedded ledger's books under random lives, and its refusals, on SQLite and
PostgreSQL. beancount (an independent program) checks every export."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from beancount import loader
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select, text

from finsync.domain.errors import UnbalancedEntryError
from finsync.domain.journal import JournalEntry, JournalLine, PeriodStatus, Side
from finsync.domain.money import Money
from finsync.systems.ledger import tables as t
from finsync.systems.ledger.beancount import account_name
from finsync.systems.ledger.errors import (
    ClosedPeriodError,
    FxRateMissingError,
    IdempotencyMismatchError,
    UnknownAccountError,
)
from finsync.systems.ledger.service import LedgerService
from tests.ledgerkit import CHART, credit_memo, invoice, ledger_service, payment, refund, wipe_books

AS_OF = date(2026, 12, 31)
CURRENCIES = ("USD", "EUR")
cents = st.integers(1, 5_000_000)
# Each line's tax per jurisdiction: none (the tax, if any, has no breakdown), a state and
# its city, one VAT country, or a jurisdiction that exempts (a zero line).
BREAKDOWNS = st.sampled_from([(), (("US-NY", "0.80"), ("US-NY-NYC", "0.45")), (("DE", "1.90"),),
                              (("US-CA", "0"), ("US-NY", "0.10"))])


def _money(minor: int) -> str:
    return str(Decimal(minor).scaleb(-2))


class Life:
    """Draws a plausible sequence of documents and posts each one, keeping a model of what
    is open so payments, credits and refunds stay within what exists."""

    def __init__(self, service: LedgerService, data: st.DataObject) -> None:
        self.service, self.data = service, data
        self.day, self.n = date(2026, 1, 2), 0
        self.open: dict[str, tuple[str, str, int]] = {}  # invoice -> (customer, ccy, open)
        self.credit: dict[tuple[str, str], int] = defaultdict(int)
        self.calls: list[tuple[Any, Any, str]] = []

    def _post(self, method: Any, document: Any) -> None:
        key = f"k{self.n}"
        method(document, key)
        self.calls.append((method, document, key))

    def step(self) -> None:
        self.n += 1
        self.day += timedelta(days=self.data.draw(st.integers(0, 20)))
        self.day = min(self.day, date(2026, 12, 31))
        kinds = ["invoice", "revenue"] + (["payment", "credit"] if self.open else []) + \
            (["refund"] if any(self.credit.values()) else [])
        getattr(self, f"_{self.data.draw(st.sampled_from(kinds))}")()

    def _invoice(self) -> None:
        ccy = self.data.draw(st.sampled_from(CURRENCIES))
        customer = self.data.draw(st.sampled_from(["c1", "c2"]))
        amounts = self.data.draw(st.lists(cents, min_size=1, max_size=3))
        doc = invoice(f"inv{self.n}", [_money(a) for a in amounts], ccy, self.day,
                      customer=customer, tax=self.data.draw(st.sampled_from(["0", "1.25"])),
                      breakdown=self.data.draw(BREAKDOWNS))
        self._post(self.service.post_invoice, doc)
        self.open[doc.id] = (customer, ccy, doc.total.to_minor())

    def _payment(self) -> None:
        inv = self.data.draw(st.sampled_from(sorted(self.open)))
        customer, ccy, owed = self.open[inv]
        applied = self.data.draw(st.integers(0, owed)) if owed else 0
        extra = self.data.draw(st.integers(0, 100_000))
        if applied + extra == 0:
            return
        doc = payment(f"pay{self.n}", _money(applied + extra),
                      {inv: _money(applied)} if applied else {}, ccy, self.day, customer)
        self._post(self.service.post_payment, doc)
        self.open[inv] = (customer, ccy, owed - applied)
        self.credit[(customer, ccy)] += extra

    def _credit(self) -> None:
        inv = self.data.draw(st.sampled_from(sorted(self.open)))
        customer, ccy, owed = self.open[inv]
        memo = credit_memo(f"cm{self.n}", inv, _money(self.data.draw(st.integers(1, 200_000))),
                           ccy, self.day, customer=customer, breakdown=self.data.draw(BREAKDOWNS))
        self._post(self.service.post_credit_memo, memo)
        amount = memo.total.to_minor()
        self.open[inv] = (customer, ccy, max(0, owed - amount))
        self.credit[(customer, ccy)] += max(0, amount - owed)

    def _refund(self) -> None:
        (customer, ccy), balance = next((k, v) for k, v in sorted(self.credit.items()) if v)
        amount = self.data.draw(st.integers(1, balance + 50_000))  # may exceed: debit item
        self._post(self.service.post_refund,
                   refund(f"rf{self.n}", _money(amount), ccy, self.day, customer))
        self.credit[(customer, ccy)] = max(0, balance - amount)

    def _revenue(self) -> None:
        amount = Money.of(_money(self.data.draw(cents)), "USD")
        entry = JournalEntry(f"rev{self.n}", "le_us", self.day, "Revenue recognised", (
            JournalLine("2400", Side.DEBIT, amount), JournalLine("4000", Side.CREDIT, amount)))
        self._post(self.service.post_entry, entry)
        if self.data.draw(st.booleans()):
            self.service.reverse(self.service.find(f"k{self.n}").entry_id,  # type: ignore[union-attr]
                                 self.day, f"k{self.n}-reversal")


def _beancount_balances(export: str) -> dict[str, Decimal]:
    entries, errors, _ = loader.load_string(export)
    assert errors == [], errors
    balances: dict[str, Decimal] = defaultdict(Decimal)
    for entry in entries:
        for posting in getattr(entry, "postings", []):
            balances[posting.account] += posting.units.number
    return balances


def _check_books(service: LedgerService) -> None:
    with service.engine.connect() as conn:
        per_entry = conn.execute(text(
            "SELECT entry_id, SUM(CASE WHEN side = 'debit' THEN amount_minor "
            "ELSE -amount_minor END) FROM ledger_lines GROUP BY entry_id")).all()
    assert all(net == 0 for _, net in per_entry)  # every entry balances
    rows = service.trial_balance("le_us", AS_OF)
    assert sum((r.balance.amount for r in rows), Decimal(0)) == 0
    for check in service.subledger_check("le_us", AS_OF).values():
        assert check["difference"] == "0.00", check
    ours = {account_name("le_us", CHART, r.account): r.balance.amount for r in rows}
    theirs = {k: v for k, v in _beancount_balances(service.export_beancount()).items()
              if v != 0 and ":LeUs:" in k}
    assert theirs == {k: v for k, v in ours.items() if v != 0}


def _counts(engine: Engine) -> tuple[int, ...]:
    with engine.connect() as conn:
        return tuple(conn.execute(select(func.count()).select_from(table)).scalar_one()
                     for table in (t.entries, t.lines, t.items, t.settlements))


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_random_lives_keep_the_books_balanced_and_reconciled(engine: Engine,
                                                             data: st.DataObject) -> None:
    wipe_books(engine)  # fresh books for every example
    service = ledger_service(engine)
    life = Life(service, data)
    for _ in range(data.draw(st.integers(1, 14))):
        life.step()
    _check_books(service)
    before = _counts(engine)
    for method, document, key in life.calls:  # every posting again, same key
        assert method(document, key).replayed
    assert _counts(engine) == before


@pytest.fixture
def service(engine: Engine) -> LedgerService:
    return ledger_service(engine)


def _refused(service: LedgerService, error: type[Exception], call: Any) -> None:
    before = _counts(service.engine)
    with pytest.raises(error):
        call()
    assert _counts(service.engine) == before  # nothing half-written


def test_closed_period_refuses_and_writes_nothing(service: LedgerService) -> None:
    service.set_period_status("le_us", "2026-01", PeriodStatus.CLOSED, "controller")
    _refused(service, ClosedPeriodError,
             lambda: service.post_invoice(invoice("inv_1", ["10.00"]), "k1"))


def test_soft_closed_period_takes_only_approved_postings(service: LedgerService) -> None:
    from finsync.systems.ledger.service import Source

    service.set_period_status("le_us", "2026-01", PeriodStatus.SOFT_CLOSED, "controller")
    _refused(service, ClosedPeriodError,
             lambda: service.post_invoice(invoice("inv_1", ["10.00"]), "k1"))
    assert not service.post_invoice(invoice("inv_1", ["10.00"]), "k1",
                                    Source(approved=True)).replayed


def test_unbalanced_entry_cannot_even_be_built() -> None:
    with pytest.raises(UnbalancedEntryError):
        JournalEntry("x", "le_us", date(2026, 1, 5), "x", (
            JournalLine("2400", Side.DEBIT, Money.of("1.00", "USD")),
            JournalLine("4000", Side.CREDIT, Money.of("1.01", "USD"))))


def test_unknown_account_refuses_and_writes_nothing(service: LedgerService) -> None:
    amount = Money.of("1.00", "USD")
    entry = JournalEntry("x", "le_us", date(2026, 1, 5), "x", (
        JournalLine("9999", Side.DEBIT, amount), JournalLine("4000", Side.CREDIT, amount)))
    _refused(service, UnknownAccountError, lambda: service.post_entry(entry, "k1"))


def test_missing_rate_refuses_and_writes_nothing(service: LedgerService) -> None:
    _refused(service, FxRateMissingError,
             lambda: service.post_invoice(invoice("inv_1", ["10.00"], "GBP"), "k1"))


def test_same_key_other_body_refuses_and_writes_nothing(service: LedgerService) -> None:
    service.post_invoice(invoice("inv_1", ["10.00"]), "k1")
    _refused(service, IdempotencyMismatchError,
             lambda: service.post_invoice(invoice("inv_1", ["11.00"]), "k1"))


def test_the_body_hash_kept_beside_a_key_never_changes(service: LedgerService) -> None:
    """Books already hold a digest for every key: a replay compares against it. This one was
    computed by the code that posted the first entries (before the canonical codec changed);
    another would refuse every replay of an old posting."""
    service.post_invoice(invoice("inv_1", ["100.00", "20.00"], tax="5.00"), "k1")
    with service.engine.connect() as conn:
        stored = conn.execute(select(t.entries.c.body_hash)
                              .where(t.entries.c.idempotency_key == "k1")).scalar_one()
    assert stored == "dd621a1fab9d3a910e54548c258109b33dd3909c9899771afacd5d0afd7b9f33"


def test_reopening_needs_a_reason_and_is_logged(service: LedgerService) -> None:
    from finsync.systems.ledger.errors import LedgerError

    service.set_period_status("le_us", "2026-01", PeriodStatus.CLOSED, "alice")
    with pytest.raises(LedgerError, match="needs a reason"):
        service.set_period_status("le_us", "2026-01", PeriodStatus.OPEN, "bob")
    service.set_period_status("le_us", "2026-01", PeriodStatus.OPEN, "bob", "late invoice")
    log = service.period_log("le_us")
    assert [(e["to_status"], e["actor"], e["reason"]) for e in log] == [
        ("closed", "alice", None), ("open", "bob", "late invoice")]


def test_reversal_of_a_document_entry_is_refused(service: LedgerService) -> None:
    from finsync.systems.ledger.errors import LedgerError

    posted = service.post_invoice(invoice("inv_1", ["10.00"]), "k1")
    with pytest.raises(LedgerError, match="credit memo"):
        service.reverse(posted.entry_id, date(2026, 2, 1), "k2")


def test_rate_limit_answers_busy_with_when_to_come_back(engine: Engine) -> None:
    from finsync.systems.ledger.errors import LedgerBusyError

    service = ledger_service(engine, calls_per_minute=2)
    service.post_invoice(invoice("inv_1", ["10.00"]), "k1")
    service.post_invoice(invoice("inv_2", ["10.00"]), "k2")
    with pytest.raises(LedgerBusyError) as caught:
        service.post_invoice(invoice("inv_3", ["10.00"]), "k3")
    assert 0 < caught.value.retry_after_s <= 60
