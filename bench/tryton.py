#!/usr/bin/env python3
"""Postings per second into a real Tryton (8.2, PostgreSQL), through `TrytonLedger`.

A benchmark, not a test: it prints figures and checks only that each run posted what it
claims (one posted move per key, read back from Tryton).

    .venv/bin/python bench/tryton.py [--documents N]

Needs PostgreSQL at 127.0.0.1:5432 (role `postgres`, may create databases). The first run
builds the Tryton virtualenv under .cache/ and initialises a template database (≈ 1 min);
every measurement runs on a fresh clone of it. Figures, each over N invoices of one line:

1. one by one: `post_invoice` per document (a search, a `create`, a `post`, a `read`);
2. batches: `post_batch` of 10, 25 and 50 (one search, one `create`, one `post` per batch);
3. bounded concurrency: 2 and 4 threads, each with its own session, one by one;
4. through the hub: canonical invoice events ingested, accepted and delivered by the ERP
   posting buffer (`hub/buffer.py`) — one document per call, batches of 25, batches of 25 with
   2 concurrent calls, and daily summaries (one journal per entity, day and currency, its
   lines listing the documents they cover) — with the number of source events per ERP call.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finsync.connectors.ports import DeliveryContext, Posting, Receipt
from finsync.connectors.tryton.ledger import TrytonLedger
from finsync.domain.codec import draft_to_json
from finsync.domain.envelope import DraftEnvelope
from finsync.domain.errors import FinsyncError
from finsync.domain.events import BusinessDomain, EventType, InvoiceIssued
from finsync.domain.invoice import DocumentLine, Invoice
from finsync.domain.money import Money
from finsync.hub.buffer import BufferPolicy, PostingMode
from finsync.hub.mapping import CanonicalMapper, MapperRegistry
from finsync.hub.service import Hub
from finsync.hub.settings import DeliveryPolicy, HubSettings
from finsync.hub.target import ledger_target
from finsync.storage import outbox
from finsync.storage.db import make_engine, reading
from finsync.storage.migrate import upgrade
from finsync.storage.raw_log import RawIn
from tests.external.tryton import TrytonSite, tryton_site
from tests.external.tryton_fixtures import TrytonBooks, _bootstrap

CUSTOMERS = 20


def make_invoice(i: int, days: int = 300) -> Invoice:
    on = date(2026, 1, 1) + timedelta(days=i % days)
    amount = Money.from_minor(10_000 + i * 37 % 90_000, "USD")
    line = DocumentLine(f"l{i}", "prod_seat", "seats", 1, amount, Money.zero("USD"), on,
                        on + timedelta(days=30))
    return Invoice(f"inv_{i:06d}", f"INV-{i:06d}", f"cus_{i % CUSTOMERS:03d}", None, None,
                   "le_us", "USD", on, on, (line,), amount, Money.zero("USD"), amount)


def postings(n: int) -> list[Posting]:
    return [Posting(InvoiceIssued(make_invoice(i)),
                    DeliveryContext(f"bench-{i}", f"evt-{i}", f"cor-{i}")) for i in range(n)]


def invoice_of(posting: Posting) -> Invoice:
    assert isinstance(posting.event, InvoiceIssued)
    return posting.event.invoice


def fresh(site: TrytonSite) -> tuple[TrytonBooks, TrytonLedger]:
    """A clone with its parties made, so that every figure times postings only."""
    books = TrytonBooks(site, site.clone())
    ledger = books.ledger(max_batch=50)
    company = ledger._company("le_us")
    for c in range(CUSTOMERS):
        company.party(ledger.client, f"cus_{c:03d}")
    return books, ledger


def check(books: TrytonBooks, work: list[Posting]) -> None:
    keys = sorted(str(m["description"]).split(":")[1] for m in books.moves()
                  if m["state"] == "posted")
    expected = sorted(p.ctx.delivery_key for p in work)
    assert keys == expected, "Tryton does not hold one move per key"


def one_by_one(ledger: TrytonLedger, work: list[Posting]) -> None:
    for p in work:
        ledger.post_invoice(invoice_of(p), p.ctx)


def batched(size: int) -> Callable[[TrytonLedger, list[Posting]], None]:
    def run(ledger: TrytonLedger, work: list[Posting]) -> None:
        for start in range(0, len(work), size):
            outcomes = ledger.post_batch(work[start:start + size])
            assert all(isinstance(o, Receipt) for o in outcomes), outcomes
    return run


def concurrent(threads: int) -> Callable[[TrytonLedger, list[Posting]], None]:
    def run(ledger: TrytonLedger, work: list[Posting]) -> None:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda p: ledger.post_invoice(invoice_of(p), p.ctx), work))
    return run


class Counting:
    """The Tryton ledger, counting the calls the buffer makes."""

    def __init__(self, ledger: TrytonLedger) -> None:
        self._ledger, self.calls = ledger, 0
        self.system, self.max_batch = ledger.system, ledger.max_batch

    def post_batch(self, work: Sequence[Posting]) -> Sequence[Receipt | FinsyncError]:
        self.calls += 1
        return self._ledger.post_batch(work)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ledger, name)


def through_hub(site: TrytonSite, n: int, batch: int, concurrency: int, directory: Path,
                posting: PostingMode = "detail") -> tuple[float, int]:
    """Events → hub → posting buffer → Tryton; returns (postings/s, ERP calls). Invoices
    fall on 5 days, so that a daily summary has something to add up."""
    _, ledger = fresh(site)
    port = Counting(ledger)
    engine = make_engine(f"sqlite:///{directory / f'hub-{batch}-{concurrency}-{posting}.db'}")
    upgrade(engine)
    name = port.system  # the buffer claims the deliveries of its own system
    routes = {EventType.INVOICE_ISSUED: (name,)}
    hub = Hub(engine, HubSettings({d: "billing" for d in BusinessDomain}, routes,
                                  DeliveryPolicy(backoff_base_s=0.05, backoff_cap_s=0.5)),
              MapperRegistry({"canonical": CanonicalMapper()}),
              {name: ledger_target(port)}, lambda: datetime.now(UTC), "bench",
              ledgers={name: (port, BufferPolicy(None, concurrency, batch, posting))})
    work = [replace(p, event=InvoiceIssued(make_invoice(i, days=5)))
            for i, p in enumerate(postings(n))]
    hub.intake.store([RawIn("canonical", _event(invoice_of(p)), {}) for p in work])
    while hub.processor.process_batch():
        pass
    start = time.perf_counter()
    hub.run_until_idle()  # intake is done: this is delivery through the buffer only
    seconds = time.perf_counter() - start
    with reading(engine) as conn:
        rows = outbox.all_rows(conn)
        assert outbox.counts(conn) == {"done": n}, (outbox.counts(conn), rows[0]["last_error"])
    engine.dispose()
    billed = sum((invoice_of(p).total.amount for p in work), Decimal(0))
    receivable = sum((r.open_amount.amount for r in ledger.receivables("le_us",
                                                                       date(2026, 12, 31))),
                     Decimal(0))
    assert receivable == billed, f"Tryton holds {receivable} receivable for {billed} billed"
    return n / seconds, port.calls


def _event(invoice: Invoice) -> bytes:
    draft = DraftEnvelope(InvoiceIssued(invoice), "billing", f"invoice:{invoice.id}",
                          datetime(2026, 1, 5, 9, tzinfo=UTC), f"c-{invoice.id}")
    return json.dumps(draft_to_json(draft)).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--documents", type=int, default=100)
    n = parser.parse_args().documents
    figures = [("one by one (create + post per call)", one_by_one),
               ("post_batch of 10", batched(10)), ("post_batch of 25", batched(25)),
               ("post_batch of 50", batched(50)),
               ("2 clients, one by one", concurrent(2)),
               ("4 clients, one by one", concurrent(4))]
    with tempfile.TemporaryDirectory() as tmp, tryton_site(Path(tmp), _bootstrap) as site:
        results = []
        for label, run in figures:
            books, ledger = fresh(site)
            work = postings(n)
            start = time.perf_counter()
            run(ledger, work)
            seconds = time.perf_counter() - start
            check(books, work)
            results.append((label, n / seconds))
            print(f"{label:40s} {n / seconds:7.1f} postings/s", flush=True)
        for label, batch, threads in (("hub buffer, 1 document per call", 1, 1),
                                      ("hub buffer, batches of 25", 25, 1),
                                      ("hub buffer, batches of 25, 2 calls at once", 25, 2),
                                      ("hub buffer, daily summary", 25, 1)):
            mode: PostingMode = "daily_summary" if "summary" in label else "detail"
            rate, calls = through_hub(site, n, batch, threads, Path(tmp), mode)
            results.append((f"{label} ({n / calls:.1f} events/call)", rate))
            print(f"{label:40s} {rate:7.1f} postings/s, {n / calls:.1f} events per call",
                  flush=True)
    base = results[0][1]
    print(f"\n{'figure':60s} {'postings/s':>10s} {'vs one by one':>13s}")
    for label, rate in results:
        print(f"{label:60s} {rate:10.1f} {rate / base:13.2f}")


if __name__ == "__main__":
    main()
