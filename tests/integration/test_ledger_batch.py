"""Batched posting (`LedgerService.post_many`, `EmbeddedLedger.post_batch`) on SQLite and
PostgreSQL: a batch leaves exactly the books that posting its documents one by one leaves,
and a refused document is refused alone."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from finsync.connectors.embedded.ledger import EmbeddedLedger
from finsync.connectors.ports import DeliveryContext, Posting, Receipt
from finsync.domain.errors import DomainError, ExceptionClass, PermanentError, TransientError
from finsync.domain.events import InvoiceIssued, PaymentApplied
from finsync.domain.journal import JournalEntry, JournalLine, PeriodStatus, Side
from finsync.domain.money import Money
from finsync.systems.ledger import batch
from finsync.systems.ledger import tables as t
from finsync.systems.ledger.errors import (
    ClosedPeriodError,
    DuplicateDocumentError,
    IdempotencyMismatchError,
    LedgerError,
    UnknownAccountError,
    UnknownDocumentError,
)
from finsync.systems.ledger.service import LedgerService, Posted, Request
from tests.integration.test_ledger_books import Life
from tests.ledgerkit import credit_memo, invoice, ledger_service, payment, refund, wipe_books

FEB = date(2026, 2, 1)
KINDS = {"post_invoice": "invoice", "post_credit_memo": "credit_memo",
         "post_payment": "payment", "post_refund": "refund", "post_entry": "journal_entry"}


def _books(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row the postings wrote, without the clock's and the sequence's values."""
    skip = {(t.entries.name, "posted_at"), (t.settlements.name, "id")}
    books = {}
    with engine.connect() as conn:
        for table in (t.entries, t.lines, t.items, t.settlements):
            columns = [c for c in table.columns if (table.name, c.name) not in skip]
            books[table.name] = [tuple(r) for r in conn.execute(
                select(*columns).order_by(*columns))]
    return books


def _outcome(result: Posted | DomainError) -> tuple[str, ...]:
    if isinstance(result, Posted):
        return ("posted", result.entry_id, str(result.replayed))
    return ("refused", type(result).__name__, str(result))


class _Quiet(Life):
    """A life without reversals: its calls are exactly the documents to post again."""

    def _revenue(self) -> None:
        amount = Money.of("12.34", "USD")
        entry = JournalEntry(f"rev{self.n}", "le_us", self.day, "Revenue recognised", (
            JournalLine("2400", Side.DEBIT, amount), JournalLine("4000", Side.CREDIT, amount)))
        self._post(self.service.post_entry, entry)


def _one_by_one(service: LedgerService, requests: Sequence[Request]) -> list[tuple[str, ...]]:
    outcomes = []
    for r in requests:
        method = getattr(service, next(m for m, k in KINDS.items() if k == r.kind))
        try:
            outcomes.append(_outcome(method(r.document, r.key)))
        except DomainError as exc:
            outcomes.append(_outcome(exc))
    return outcomes


def _in_batches(service: LedgerService, requests: Sequence[Request],
                size: int) -> list[tuple[str, ...]]:
    outcomes = []
    for start in range(0, len(requests), size):
        outcomes += [_outcome(o) for o in service.post_many(requests[start:start + size])]
    return outcomes


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_random_lives_in_batches_leave_the_books_one_by_one_leaves(
        engine: Engine, data: st.DataObject) -> None:
    wipe_books(engine)
    life = _Quiet(ledger_service(engine), data)
    for _ in range(data.draw(st.integers(1, 16))):
        life.step()
    requests = [Request(KINDS[method.__name__], document, key)
                for method, document, key in life.calls]
    requests += requests[:data.draw(st.integers(0, len(requests)))]  # replays, same keys
    wipe_books(engine)
    service = ledger_service(engine)
    first = _one_by_one(service, requests)
    expected = _books(engine)
    wipe_books(engine)
    service = ledger_service(engine)
    assert _in_batches(service, requests, data.draw(st.integers(1, len(requests)))) == first
    assert _books(engine) == expected


def _mixed() -> list[Request]:
    """A batch in which every kind of refusal sits between documents that post, and later
    documents depend on earlier ones of the same batch."""
    bad_entry = JournalEntry("bad", "le_us", date(2026, 2, 5), "bad", (
        JournalLine("9999", Side.DEBIT, Money.of("1.00", "USD")),
        JournalLine("4000", Side.CREDIT, Money.of("1.00", "USD"))))
    return [
        Request("invoice", invoice("inv_1", ["100.00"], tax="8.25", on=FEB), "k1"),
        Request("invoice", invoice("inv_jan", ["5.00"], on=date(2026, 1, 10)), "k2"),  # closed
        Request("payment", payment("pay_1", "150.00", {"inv_1": "108.25"},
                                   on=date(2026, 2, 1)), "k3"),  # leaves a 41.75 credit
        Request("payment", payment("pay_9", "10.00", {"inv_9": "10.00"},
                                   on=date(2026, 2, 1)), "k4"),  # no such invoice yet
        Request("invoice", invoice("inv_1", ["999.00"], on=FEB), "k1"),  # other body
        Request("invoice", invoice("inv_1", ["100.00"], tax="8.25", on=FEB), "k1"),  # replay
        Request("invoice", invoice("inv_1", ["100.00"], tax="8.25", on=FEB), "k5"),  # again
        Request("journal_entry", bad_entry, "k6"),  # unknown account
        Request("usage", None, "k7"),  # a kind the ledger does not post
        Request("refund", refund("rf_1", "50.00", on=date(2026, 2, 10)), "k8"),  # 8.25 debit
        Request("credit_memo", credit_memo("cm_1", "inv_1", "20.00", on=date(2026, 2, 11)),
                "k9"),  # inv_1 is paid: a credit that first settles the 8.25 debit
        Request("invoice", invoice("inv_2", ["40.00"], "EUR", on=date(2026, 2, 20)), "k10"),
        Request("payment", payment("pay_2", "40.00", {"inv_2": "15.00"}, "EUR",
                                   on=date(2026, 3, 3)), "k11"),  # booked at another rate
    ]


def _refusals(outcomes: Sequence[Posted | DomainError]) -> list[str | None]:
    return [None if isinstance(o, Posted) else type(o).__name__ for o in outcomes]


def test_a_mixed_batch_refuses_each_bad_document_alone(engine: Engine) -> None:
    service = ledger_service(engine)
    service.set_period_status("le_us", "2026-01", PeriodStatus.CLOSED, "controller")
    outcomes = service.post_many(_mixed())
    assert _refusals(outcomes) == [
        None, ClosedPeriodError.__name__, None, UnknownDocumentError.__name__,
        IdempotencyMismatchError.__name__, None, DuplicateDocumentError.__name__,
        UnknownAccountError.__name__, LedgerError.__name__, None, None, None, None]
    assert isinstance(outcomes[5], Posted) and outcomes[5].replayed
    assert isinstance(outcomes[0], Posted) and outcomes[5].entry_id == outcomes[0].entry_id
    batched = _books(engine)

    wipe_books(engine)
    service = ledger_service(engine)
    service.set_period_status("le_us", "2026-01", PeriodStatus.CLOSED, "controller")
    assert [o[1] if o[0] == "refused" else None for o in _one_by_one(
        service, [r for r in _mixed() if r.kind != "usage"])] == [
        r for n, r in enumerate(_refusals(outcomes)) if n != 8]
    assert _books(engine) == batched
    for check in service.subledger_check("le_us", date(2026, 12, 31)).values():
        assert check["difference"] == "0.00"


def test_a_refused_batch_document_changes_nothing_for_the_next(engine: Engine) -> None:
    """A payment refused for applying more than is open must not settle anything: the next
    payment in the batch finds the invoice as it was."""
    service = ledger_service(engine)
    outcomes = service.post_many([
        Request("invoice", invoice("inv_1", ["100.00"]), "k1"),
        Request("payment", payment("pay_1", "150.00", {"inv_1": "150.00"}), "k2"),
        Request("payment", payment("pay_2", "100.00", {"inv_1": "100.00"}), "k3"),
    ])
    assert _refusals(outcomes) == [None, UnknownDocumentError.__name__, None]
    assert service.open_items("le_us", date(2026, 12, 31)) == []


def test_keys_written_by_a_concurrent_call_are_found_after_the_conflict(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The keys are read before the batch writes; when another call wrote one in between,
    the unique key refuses the batch's insert, and the batch posts one by one, answering
    that key with the entry already there."""
    service = ledger_service(engine)
    first = service.post_invoice(invoice("inv_1", ["100.00"]), "k1")
    # As if the other call committed just after this one read the books:
    monkeypatch.setattr(batch, "_known_keys", lambda conn, keys: {})
    monkeypatch.setattr(batch, "_subledger", lambda conn, plans: batch.Subledger())
    outcomes = service.post_many([
        Request("invoice", invoice("inv_2", ["10.00"]), "k2"),
        Request("invoice", invoice("inv_1", ["100.00"]), "k1"),
        Request("invoice", invoice("inv_1", ["101.00"]), "k1"),
    ])
    assert isinstance(outcomes[0], Posted) and not outcomes[0].replayed
    assert outcomes[1] == Posted(first.entry_id, "le_us", date(2026, 1, 15), replayed=True)
    assert isinstance(outcomes[2], IdempotencyMismatchError)
    with engine.connect() as conn:
        assert conn.execute(select(t.entries.c.idempotency_key)
                            .order_by(t.entries.c.idempotency_key)).scalars().all() == \
            ["k1", "k2"]


def test_a_batch_sent_again_answers_each_key_without_reading_items(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every key known: each is answered with its first entry, or refused for another body
    (the plan's hash is still compared), and no item, period or rate is read."""
    service = ledger_service(engine)
    requests = [Request("invoice", invoice("inv_1", ["100.00"]), "k1"),
                Request("payment", payment("pay_1", "100.00", {"inv_1": "100.00"}), "k2"),
                Request("invoice", invoice("inv_2", ["7.00"]), "k3")]
    first = service.post_many(requests)
    books = _books(engine)

    def unread(*args: object) -> None:
        raise AssertionError("a batch sent again books nothing")
    monkeypatch.setattr(batch, "_subledger", unread)
    monkeypatch.setattr(batch, "periods_of", unread)
    again = service.post_many([*requests, Request("invoice", invoice("inv_1", ["99.00"]), "k1")])
    assert [(o.entry_id, o.replayed) for o in again[:3] if isinstance(o, Posted)] == \
        [(o.entry_id, True) for o in first if isinstance(o, Posted)]
    assert len(first) == 3 and isinstance(again[3], IdempotencyMismatchError)
    assert _books(engine) == books


def test_entries_of_a_batch_keep_its_order(engine: Engine) -> None:
    service = ledger_service(engine)
    service.post_many([Request("invoice", invoice(f"inv_{n}", ["1.00"]), f"k{n}")
                       for n in range(20)])
    assert [e.id for e in service.entries("le_us")] == \
        [service.find(f"k{n}").entry_id for n in range(20)]  # type: ignore[union-attr]


def _ctx(key: str) -> DeliveryContext:
    return DeliveryContext(key, f"evt-{key}", "corr-1")


def test_the_port_answers_each_posting_of_a_batch_with_its_own_outcome(
        engine: Engine) -> None:
    service = ledger_service(engine)
    port = EmbeddedLedger("ledger", service, max_batch=500)
    service.set_period_status("le_us", "2026-01", PeriodStatus.CLOSED, "controller")
    feb = date(2026, 2, 3)
    postings = [
        Posting(InvoiceIssued(invoice("inv_1", ["100.00"], on=feb)), _ctx("k1")),
        Posting(InvoiceIssued(invoice("inv_2", ["100.00"])), _ctx("k2")),  # January: closed
        Posting(PaymentApplied(payment("pay_1", "100.00", {"inv_1": "100.00"}, on=feb)),
                _ctx("k3")),
        Posting(PaymentApplied(payment("pay_2", "5.00", {"inv_7": "5.00"}, on=feb)),
                _ctx("k4")),  # its invoice may still come
        Posting(InvoiceIssued(invoice("inv_1", ["100.00"], on=feb)), _ctx("k5")),
    ]
    outcomes = port.post_batch(postings)
    assert isinstance(outcomes[0], Receipt) and isinstance(outcomes[2], Receipt)
    assert isinstance(outcomes[1], PermanentError)
    assert outcomes[1].exception_class is ExceptionClass.CLOSED_PERIOD
    assert isinstance(outcomes[3], TransientError)
    assert outcomes[3].exception_class is ExceptionClass.SEQUENCING_ERROR
    assert isinstance(outcomes[4], PermanentError)
    assert outcomes[4].exception_class is ExceptionClass.DUPLICATE_EVENT
    again = port.post_batch(postings)
    assert [o.external_id for o in again if isinstance(o, Receipt)] == \
        [outcomes[0].external_id, outcomes[2].external_id]
    assert all(o.detail["replayed"] == "true" for o in again if isinstance(o, Receipt))
