"""The posting buffer in tests: canonical events from domain documents, a hub whose ERP
targets go through buffers driven by a clock we step, and ports that record their calls."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import Engine

from finsync.connectors.ports import (
    AccountBalance,
    Application,
    DeliveryContext,
    LedgerEvent,
    LedgerPort,
    Posting,
    Receipt,
    Receivable,
)
from finsync.domain.aggregate import AggregateRef
from finsync.domain.codec import draft_to_json
from finsync.domain.dispute import DisputeClosure, DisputeFunds
from finsync.domain.envelope import DraftEnvelope
from finsync.domain.errors import FinsyncError
from finsync.domain.events import (
    CreditMemoIssued,
    DisputeClosed,
    DisputeFundsWithdrawn,
    EventType,
    InvoiceIssued,
    JournalEntrySummarised,
    PaymentApplied,
    RefundIssued,
)
from finsync.domain.invoice import CreditMemo, Invoice
from finsync.domain.journal import JournalEntry, PeriodStatus
from finsync.domain.payment import Payment, Refund
from finsync.hub.buffer import BufferPolicy, PostingBuffer
from finsync.hub.service import Hub
from finsync.hub.target import ledger_target
from finsync.storage import outbox
from finsync.storage.db import reading
from tests.builders import T0
from tests.hubkit import Clock, make_hub, settings

# The events the buffered ledgers are routed.
ROUTED = (EventType.INVOICE_ISSUED, EventType.CREDIT_MEMO_ISSUED, EventType.PAYMENT_APPLIED,
          EventType.REFUND_ISSUED)


def event(ledger_event: LedgerEvent, version: int | None = None,
          event_id: str | None = None) -> bytes:
    """A canonical event as billing sends it; `version` orders events of one document (by
    default, version 1 of a document issued once)."""
    document = ledger_event.document
    source_id = event_id or f"{document.id}-{ledger_event.name}-v{version}"
    aggregate = None
    if version is not None:
        aggregate = AggregateRef(ledger_event.aggregate_type, document.id, version)
    draft = DraftEnvelope(ledger_event, "billing", source_id, T0, f"corr-{document.id}",
                          aggregate=aggregate)
    return json.dumps(draft_to_json(draft)).encode()


def buffered_hub(engine: Engine, ledgers: Mapping[str, tuple[LedgerPort, BufferPolicy]],
                 clock: Clock, routes: Mapping[str, tuple[str, ...]] | None = None) -> Hub:
    """A hub whose ledger targets are buffered; buffers sleep by stepping the clock."""
    names = tuple(ledgers)
    targets = {name: ledger_target(port) for name, (port, _) in ledgers.items()}
    hub = make_hub(engine, Path("unused"), targets=targets, clock=clock,
                   hub_settings=settings(routes or {t: names for t in ROUTED}, attempts_max=8))
    hub.worker._skip = frozenset(names)
    hub.buffers = [PostingBuffer(engine, targets[name], port, hub.worker, policy, clock,
                                 "test-worker", 30, sleep=clock.advance)
                   for name, (port, policy) in ledgers.items()]
    return hub


def statuses(hub: Hub) -> dict[str, int]:
    with reading(hub.engine) as conn:
        return outbox.counts(conn)


def drain(hub: Hub, clock: Clock, rounds: int = 30) -> None:
    """Run until nothing is pending, stepping past retry delays."""
    for _ in range(rounds):
        hub.run_until_idle()
        if statuses(hub).get("pending", 0) == 0:
            return
        clock.advance(300)
    raise AssertionError(f"still pending after {rounds} rounds: {statuses(hub)}")


@dataclass
class Call:
    at: datetime
    postings: tuple[Posting, ...]


@dataclass
class RecordingLedger:
    """A batch ledger that answers a receipt per posting and records every call, what was
    in flight at once, and (optionally) fails chosen postings."""

    clock: Clock
    system: str = "ledger"
    max_batch: int = 5
    hold_s: float = 0.0  # real seconds a call lasts (to overlap parallel calls)
    barrier: threading.Barrier | None = None
    fail: Mapping[str, FinsyncError] = field(default_factory=dict)  # by document id, once
    refuse_first: Exception | None = None  # the first call raises it (e.g. a rate limit)
    calls: list[Call] = field(default_factory=list)
    in_flight: set[str] = field(default_factory=set)
    in_flight_max: int = 0
    overlap: list[str] = field(default_factory=list)  # aggregates seen in two calls at once
    calls_in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _failed: set[str] = field(default_factory=set)

    def post_batch(self, postings: Sequence[Posting]) -> Sequence[Receipt | FinsyncError]:
        ids = [p.event.document.id for p in postings]
        with self._lock:
            self.calls.append(Call(self.clock(), tuple(postings)))
            self.overlap += [i for i in ids if i in self.in_flight]
            self.in_flight.update(ids)
            self.calls_in_flight += 1
            self.in_flight_max = max(self.in_flight_max, self.calls_in_flight)
        try:
            if self.refuse_first is not None and len(self.calls) == 1:
                raise self.refuse_first
            if self.barrier is not None and len(self.calls) <= self.barrier.parties:
                self.barrier.wait()
            if self.hold_s:
                threading.Event().wait(self.hold_s)
            return [self._outcome(p) for p in postings]
        finally:
            with self._lock:
                self.in_flight.difference_update(ids)
                self.calls_in_flight -= 1

    def _outcome(self, posting: Posting) -> Receipt | FinsyncError:
        doc_id = posting.event.document.id
        with self._lock:
            if doc_id in self.fail and doc_id not in self._failed:
                self._failed.add(doc_id)
                return self.fail[doc_id]
        return Receipt(f"ext-{posting.ctx.delivery_key}")

    def posted(self) -> list[tuple[str, str]]:
        """(document id, delivery key) in the order they were answered."""
        return [(p.event.document.id, p.ctx.delivery_key) for c in self.calls
                for p in c.postings]

    # the rest of the ledger port (not used by the buffer's calls)
    def post_invoice(self, invoice: Invoice, ctx: DeliveryContext) -> Receipt:
        return self._single(Posting(InvoiceIssued(invoice), ctx))

    def post_credit_memo(self, memo: CreditMemo, ctx: DeliveryContext) -> Receipt:
        return self._single(Posting(CreditMemoIssued(memo), ctx))

    def post_payment(self, payment: Payment, ctx: DeliveryContext) -> Receipt:
        return self._single(Posting(PaymentApplied(payment), ctx))

    def post_refund(self, refund: Refund, ctx: DeliveryContext) -> Receipt:
        return self._single(Posting(RefundIssued(refund), ctx))

    def post_dispute_funds(self, funds: DisputeFunds, ctx: DeliveryContext) -> Receipt:
        return self._single(Posting(DisputeFundsWithdrawn(funds), ctx))

    def post_dispute_closure(self, closure: DisputeClosure, ctx: DeliveryContext) -> Receipt:
        return self._single(Posting(DisputeClosed(closure), ctx))

    def post_journal_entry(self, entry: JournalEntry, ctx: DeliveryContext) -> Receipt:
        return self._single(Posting(JournalEntrySummarised(entry), ctx))

    def _single(self, posting: Posting) -> Receipt:
        outcome = self.post_batch([posting])[0]
        if isinstance(outcome, Receipt):
            return outcome
        raise outcome

    def find_receipt(self, key: str) -> Receipt | None:
        return None

    def period_status(self, legal_entity: str, on: date) -> PeriodStatus:
        raise NotImplementedError

    def trial_balance(self, legal_entity: str, as_of: date) -> Sequence[AccountBalance]:
        raise NotImplementedError

    def receivables(self, legal_entity: str, as_of: date) -> Sequence[Receivable]:
        raise NotImplementedError

    def close_period(self, legal_entity: str, period: str, actor: str) -> None:
        raise NotImplementedError

    def applications(self, legal_entity: str, as_of: date) -> Sequence[Application]:
        raise NotImplementedError

    def resolve_account(self, code: str) -> str:
        return code
