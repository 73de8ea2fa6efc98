#!/usr/bin/env python3
"""The ERP posting buffer: postings per second and source events per ERP call.

A benchmark, not a test. The ERP is the embedded ledger with governance limits (a call
budget per minute and a concurrency cap) behind a wrapper that sleeps a fixed latency per
call plus a latency per document (60 ms + 5 ms by default): a STAND-IN for a remote ERP,
whose real figures (Tryton: ~127 ms to create and post one move, ~44 moves/s in batches of
10) are measured separately against a real trytond. Previews (summary mode) are not slowed:
the embedded ledger renders its posting rules locally.

    .venv/bin/python bench/buffer.py [--documents N] [--latency-ms 60] [--per-doc-ms 5]

Four runs of the same stream (N invoices over two entities and five days, then a payment
for every other invoice), each on a fresh SQLite database, through the hub's buffer:

1. unbuffered: one document per call, one call at a time;
2. batched: up to `--batch` documents per call;
3. batched + concurrency: the same, `--concurrency` calls at once;
4. daily summary: one summary journal per entity and day, batched and concurrent.

Each run checks that every delivery is done and that the ledger's trial balances agree
with the unbuffered run's to the cent.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from finsync.connectors.embedded.ledger import EmbeddedLedger
from finsync.connectors.ports import LedgerEvent, Posting, Receipt
from finsync.domain.codec import draft_to_json
from finsync.domain.envelope import DraftEnvelope
from finsync.domain.errors import FinsyncError
from finsync.domain.events import BusinessDomain, EventType, InvoiceIssued, PaymentApplied
from finsync.domain.invoice import DocumentLine, Invoice
from finsync.domain.journal import JournalEntry
from finsync.domain.money import Money
from finsync.domain.payment import Payment, PaymentApplication
from finsync.hub.buffer import BufferPolicy, PostingMode
from finsync.hub.mapping import CanonicalMapper, MapperRegistry
from finsync.hub.service import Hub
from finsync.hub.settings import DeliveryPolicy, HubSettings
from finsync.hub.target import ledger_target
from finsync.storage import outbox
from finsync.storage.db import make_engine, reading
from finsync.storage.migrate import upgrade
from finsync.storage.raw_log import RawIn
from finsync.systems.ledger.chart import DEFAULT_CHART, parse_chart
from finsync.systems.ledger.governance import Governor
from finsync.systems.ledger.migrate import upgrade as upgrade_ledger
from finsync.systems.ledger.service import LedgerService

ENTITIES = (("le_us", "USD"), ("le_eu", "EUR"))
DAYS = 5


class SlowErp:
    """The embedded ledger as a remote ERP: each call costs a latency (see module doc)."""

    def __init__(self, inner: EmbeddedLedger, latency_s: float, per_doc_s: float) -> None:
        self._inner, self._latency_s, self._per_doc_s = inner, latency_s, per_doc_s
        self.system, self.max_batch = inner.system, inner.max_batch
        self.calls = 0
        self._lock = threading.Lock()

    def _cost(self, documents: int) -> None:
        with self._lock:
            self.calls += 1
        time.sleep(self._latency_s + self._per_doc_s * documents)

    def post_batch(self, postings: Sequence[Posting]) -> Sequence[Receipt | FinsyncError]:
        self._cost(len(postings))
        return self._inner.post_batch(postings)

    def preview_journal(self, event: LedgerEvent) -> JournalEntry:
        return self._inner.preview_journal(event)

    def __getattr__(self, name: str) -> Any:  # the rest of the ledger port, unslowed
        return getattr(self._inner, name)


def _invoice(n: int) -> Invoice:
    entity, currency = ENTITIES[n % len(ENTITIES)]
    on = date(2026, 1, 5) + timedelta(days=n % DAYS)
    amount = Money.of(f"{100 + n % 37}.00", currency)
    line = DocumentLine("l1", "prod_seat", "Seats", 1, amount, Money.zero(currency), on,
                        date(2027, 1, 1))
    return Invoice(f"inv_{n}", f"INV-{n}", f"cus_{n % 50}", None, None, entity, currency, on,
                   on + timedelta(days=30), (line,), amount, Money.zero(currency), amount)


def _payment(inv: Invoice) -> Payment:
    return Payment(f"pay_{inv.id}", inv.customer_id, inv.legal_entity, inv.total,
                   inv.issue_date + timedelta(days=10),
                   (PaymentApplication(inv.id, inv.total),))


def _event(event: LedgerEvent) -> bytes:
    document = event.document
    draft = DraftEnvelope(event, "billing", f"{event.name}:{document.id}",
                          datetime(2026, 1, 5, 9, tzinfo=UTC), f"c-{document.id}")
    return json.dumps(draft_to_json(draft)).encode()


def _waves(documents: int) -> list[list[bytes]]:
    invoices = [_invoice(n) for n in range(documents)]
    return [[_event(InvoiceIssued(i)) for i in invoices],
            [_event(PaymentApplied(_payment(i))) for i in invoices[::2]]]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    batch_size: int
    concurrency: int
    posting: PostingMode = "detail"


@dataclass(frozen=True, slots=True)
class Figure:
    scenario: Scenario
    events: int
    seconds: float
    calls: int
    balances: dict[str, list[tuple[str, str, str]]]


def _ledger(engine: Any, calls_per_minute: int, concurrency: int) -> LedgerService:
    upgrade_ledger(engine)
    service = LedgerService(engine, lambda: datetime.now(UTC),
                            Governor(calls_per_minute, concurrency))
    chart = parse_chart(DEFAULT_CHART.read_text())
    for entity, currency in ENTITIES:
        service.create_entity(entity, entity, currency, chart)
        service.open_year(entity, 2026)
    return service


def run(scenario: Scenario, waves: list[list[bytes]], args: argparse.Namespace,
        directory: Path) -> Figure:
    engine = make_engine(f"sqlite:///{directory / (scenario.name.replace(' ', '_') + '.db')}")
    upgrade(engine)
    ledger = _ledger(engine, args.calls_per_minute, scenario.concurrency)
    erp = SlowErp(EmbeddedLedger("ledger", ledger, max_batch=max(scenario.batch_size, 1)),
                  args.latency_ms / 1000, args.per_doc_ms / 1000)
    ownership = {d: "billing" for d in BusinessDomain}
    routes = {EventType.INVOICE_ISSUED: ("ledger",), EventType.PAYMENT_APPLIED: ("ledger",)}
    policy = BufferPolicy(args.calls_per_minute, scenario.concurrency, scenario.batch_size,
                          scenario.posting)
    hub = Hub(engine, HubSettings(ownership, routes, DeliveryPolicy(backoff_base_s=0.05,
                                                                   backoff_cap_s=0.5)),
              MapperRegistry({"canonical": CanonicalMapper()}),
              {"ledger": ledger_target(erp)}, lambda: datetime.now(UTC), "bench",
              ledgers={"ledger": (erp, policy)})
    seconds = 0.0
    for wave in waves:
        hub.intake.store([RawIn("canonical", body, {}) for body in wave])
        while hub.processor.process_batch():
            pass
        started = time.perf_counter()
        while sum(b.run_once() for b in hub.buffers):
            pass
        seconds += time.perf_counter() - started
    with reading(engine) as conn:
        counts = outbox.counts(conn)
    events = sum(len(w) for w in waves)
    if counts != {"done": events}:
        raise SystemExit(f"{scenario.name}: deliveries {counts}, expected {events} done")
    balances = {e: [(r.account, str(r.debit), str(r.credit))
                    for r in ledger.trial_balance(e, date(2026, 12, 31))] for e, _ in ENTITIES}
    engine.dispose()
    return Figure(scenario, events, seconds, erp.calls, balances)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--documents", type=int, default=400, help="invoices (N)")
    parser.add_argument("--latency-ms", type=float, default=60.0)
    parser.add_argument("--per-doc-ms", type=float, default=5.0)
    parser.add_argument("--calls-per-minute", type=int, default=1200)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4)
    return parser.parse_args(argv)


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    scenarios = (Scenario("unbuffered", 1, 1), Scenario("batched", args.batch, 1),
                 Scenario("batched + concurrency", args.batch, args.concurrency),
                 Scenario("daily summary", args.batch, args.concurrency, "daily_summary"))
    waves = _waves(args.documents)
    with tempfile.TemporaryDirectory() as tmp:
        figures = [run(s, waves, args, Path(tmp)) for s in scenarios]
    if any(f.balances != figures[0].balances for f in figures):
        raise SystemExit("trial balances differ between runs")
    base = figures[0].events / figures[0].seconds
    table = Table(title=f"ERP posting buffer: {figures[0].events} events, stand-in ERP "
                        f"{args.latency_ms:g} ms + {args.per_doc_ms:g} ms/document a call, "
                        f"{args.calls_per_minute} calls/min")
    for column in ("run", "postings/s", "x unbuffered", "ERP calls", "events/call", "seconds"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for f in figures:
        rate = f.events / f.seconds
        table.add_row(f.scenario.name, f"{rate:,.0f}", f"{rate / base:.1f}", str(f.calls),
                      f"{f.events / f.calls:.1f}", f"{f.seconds:.2f}")
    Console().print(table)
    print("trial balances agree across all runs; every delivery done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
