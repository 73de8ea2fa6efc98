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
3. bounded concurrency: 2 and 4 threads, each with its own session, one by one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finsync.connectors.ports import DeliveryContext, Posting, Receipt
from finsync.connectors.tryton.ledger import TrytonLedger
from finsync.domain.invoice import DocumentLine, Invoice
from finsync.domain.money import Money
from tests.external.tryton import TrytonSite, tryton_site
from tests.external.tryton_fixtures import TrytonBooks, _bootstrap

CUSTOMERS = 20


def make_invoice(i: int) -> Invoice:
    on = date(2026, 1, 1) + timedelta(days=i % 300)
    amount = Money.from_minor(10_000 + i * 37 % 90_000, "USD")
    line = DocumentLine(f"l{i}", "prod_seat", "seats", 1, amount, Money.zero("USD"), on,
                        on + timedelta(days=30))
    return Invoice(f"inv_{i:06d}", f"INV-{i:06d}", f"cus_{i % CUSTOMERS:03d}", None, None,
                   "le_us", "USD", on, on, (line,), amount, Money.zero("USD"), amount)


def postings(n: int) -> list[Posting]:
    return [Posting("invoice.issued", make_invoice(i),
                    DeliveryContext(f"bench-{i}", f"evt-{i}", f"cor-{i}")) for i in range(n)]


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
    assert keys == sorted(p.ctx.key for p in work), "Tryton does not hold one move per key"


def one_by_one(ledger: TrytonLedger, work: list[Posting]) -> None:
    for p in work:
        ledger.post_invoice(p.document, p.ctx)


def batched(size: int) -> Callable[[TrytonLedger, list[Posting]], None]:
    def run(ledger: TrytonLedger, work: list[Posting]) -> None:
        for start in range(0, len(work), size):
            outcomes = ledger.post_batch(work[start:start + size])
            assert all(isinstance(o, Receipt) for o in outcomes), outcomes
    return run


def concurrent(threads: int) -> Callable[[TrytonLedger, list[Posting]], None]:
    def run(ledger: TrytonLedger, work: list[Posting]) -> None:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda p: ledger.post_invoice(p.document, p.ctx), work))
    return run


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
    base = results[0][1]
    print(f"\n{'figure':40s} {'postings/s':>10s} {'vs one by one':>13s}")
    for label, rate in results:
        print(f"{label:40s} {rate:10.1f} {rate / base:13.2f}")


if __name__ == "__main__":
    main()
