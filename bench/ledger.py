#!/usr/bin/env python3
"""Posting throughput of the embedded ledger, through the ledger port, on SQLite and PostgreSQL.

A benchmark, not a test: it prints figures and asserts only that each run did the work it
claims (every entry, line, open item and settlement stored; replays wrote nothing).

    .venv/bin/python bench/ledger.py [--documents N] [--backends sqlite,postgresql]

Figures, per backend:

1. raw baseline: the very rows the ledger writes into `ledger_lines` for N invoices,
   inserted into a plain copy of that table by a bare SQLAlchemy executemany, (a) one
   commit per document's lines, (b) one commit per 500 lines;
2. invoices: `EmbeddedLedger.post_invoice` for N invoices of 3 lines (+ tax), one call and
   one committed transaction each, distinct idempotency keys;
3. payments: `EmbeddedLedger.post_payment` for N payments, each settling one of them (the
   AR settlement path);
4. replay: the N invoices posted again with the same keys: nothing may be written.

Figures 2 to 4 run in that order on one fresh database. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

# bench/ is not a package: put this script's folder first on sys.path, so that the shared
# sibling module backends.py imports by name however the script is started.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import backends
from rich.console import Console, JustifyMethod
from rich.table import Table as RichTable
from sqlalchemy import (
    Engine,
    Table,
    func,
    select,
)

from finsync.connectors.embedded.ledger import EmbeddedLedger
from finsync.connectors.ports import DeliveryContext, Receipt
from finsync.domain.clock import utc_now
from finsync.domain.ids import delivery_key, derive_id, event_id_for
from finsync.domain.invoice import DocumentLine, Invoice
from finsync.domain.money import Money, total
from finsync.domain.payment import Payment, PaymentApplication
from finsync.storage.db import make_engine
from finsync.systems.ledger import tables as lt
from finsync.systems.ledger.chart import DEFAULT_CHART, Chart, parse_chart
from finsync.systems.ledger.documents import Books, Posting, post_invoice, post_payment
from finsync.systems.ledger.fx import RateTable
from finsync.systems.ledger.migrate import upgrade
from finsync.systems.ledger.rules import AccountMap
from finsync.systems.ledger.service import LedgerService

BATCH = 500  # figure 1b: lines per executemany and commit
ENTITY, CURRENCY, YEAR = "le_us", "USD", 2026
SYSTEM = "ledger"  # the ledger system's name in delivery keys
SOURCE = "billing"
TAX_RATE = Decimal("0.0825")
PRODUCTS = ("prod_seats", "prod_usage", "prod_support")

T = TypeVar("T")
Row = dict[str, Any]


# --------------------------------------------------------------------------------------
# Workload: documents, delivery contexts, and the ledger rows they must produce


@dataclass(frozen=True, slots=True)
class Document:
    """One call through the port and the `ledger_lines` rows it must write."""

    ctx: DeliveryContext
    rows: tuple[Row, ...]


@dataclass(frozen=True, slots=True)
class Workload:
    invoices: tuple[tuple[Invoice, Document], ...]
    payments: tuple[tuple[Payment, Document], ...]

    @property
    def invoice_lines(self) -> int:
        return sum(len(d.rows) for _, d in self.invoices)

    @property
    def payment_lines(self) -> int:
        return sum(len(d.rows) for _, d in self.payments)


def cents(minor: int) -> Money:
    return Money.from_minor(minor, CURRENCY)


def make_invoice(i: int) -> Invoice:
    """Three lines, all on deferred revenue; three invoices in four carry tax."""
    issued = date(YEAR, 1, 1) + timedelta(days=i % 300)
    lines = []
    for n, product in enumerate(PRODUCTS, start=1):
        amount = cents(1_000 + (i * 7919 + n * 104_729) % 250_000)
        tax = Money.zero(CURRENCY) if i % 4 == 0 else (amount * TAX_RATE).quantize()
        lines.append(DocumentLine(f"il_{i:07d}_{n}", product, f"{product} for {issued:%B}", 1,
                                  amount, tax, issued, issued + timedelta(days=30)))
    subtotal = total([ln.amount for ln in lines], CURRENCY)
    tax_total = total([ln.tax_amount for ln in lines], CURRENCY)
    return Invoice(f"inv_{i:07d}", f"INV-{i:07d}", f"cus_{i % 1000:04d}", f"ctr_{i % 1000:04d}",
                   1, ENTITY, CURRENCY, issued, issued + timedelta(days=30), tuple(lines),
                   subtotal, tax_total, subtotal + tax_total)


def make_payment(i: int, invoice: Invoice) -> Payment:
    """The invoice paid in full, 20 days after issue."""
    return Payment(f"pay_{i:07d}", invoice.customer_id, ENTITY, invoice.total,
                   invoice.issue_date + timedelta(days=20),
                   (PaymentApplication(invoice.id, invoice.total),))


def context(source_event_id: str, i: int) -> DeliveryContext:
    """What the hub passes: the delivery key `event_id:target`, made from the source event."""
    event_id = event_id_for(SOURCE, source_event_id)
    return DeliveryContext(delivery_key(event_id, SYSTEM), event_id, f"corr_{i:07d}")


def line_rows(entry_id: str, posting_date: date, posting: Posting) -> tuple[Row, ...]:
    """The column values `records.insert_entry` writes into `ledger_lines` for a posting."""
    return tuple({
        "entry_id": entry_id, "line_no": n, "entity": ENTITY, "posting_date": posting_date,
        "account": line.account, "side": line.side.value,
        "amount_minor": line.amount.to_minor(), "currency": line.amount.currency,
        "txn_amount_minor": line.transaction_amount.to_minor()
        if line.transaction_amount else None,
        "txn_currency": line.transaction_amount.currency if line.transaction_amount else None,
        "customer": dict(line.dimensions).get("customer"),
        "dimensions": json.dumps(list(line.dimensions)),
    } for n, line in enumerate(posting.lines, start=1))


def workload(n: int, chart: Chart) -> Workload:
    """N invoices and N payments settling them, with the rows the ledger's own posting rules
    (the pure `documents.post_*` functions) make of them; the benchmark later checks that the
    ledger stored exactly these rows."""
    rates = RateTable()

    def books(on: date) -> Books:
        return Books(ENTITY, CURRENCY, chart, AccountMap(),
                     lambda money: rates.convert(money, CURRENCY, on))

    invoices, payments = [], []
    for i in range(n):
        invoice = make_invoice(i)
        ctx = context(f"{invoice.id}-finalized", i)
        posting = post_invoice(invoice, books(invoice.issue_date))
        entry_id = derive_id("je", ctx.delivery_key)
        invoices.append((invoice, Document(ctx, line_rows(entry_id, invoice.issue_date,
                                                          posting))))

        payment = make_payment(i, invoice)
        pctx = context(f"{payment.id}-applied", i)
        paid = post_payment(payment, books(payment.received_on), {invoice.id: posting.opened[0]})
        payments.append((payment, Document(pctx, line_rows(derive_id("je", pctx.delivery_key),
                                                           payment.received_on, paid))))
    return Workload(tuple(invoices), tuple(payments))


ledger_lines_plain = backends.plain_copy(lt.lines, "bench_ledger_lines_plain")


# --------------------------------------------------------------------------------------
# Measurements


@dataclass(frozen=True, slots=True)
class Figure:
    documents: int  # calls, or commits for the baseline's documents
    lines: int  # journal lines written
    seconds: float

    @property
    def line_rate(self) -> float:
        return self.lines / self.seconds

    @property
    def doc_rate(self) -> float:
        return self.documents / self.seconds


def count(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def measure_baseline(url: str, work: Workload, *, per_document: bool) -> Figure:
    """Bare executemany of the invoices' rows into a plain copy of ledger_lines."""
    engine = make_engine(url)
    try:
        upgrade(engine)  # the ledger's database, with the plain table beside ledger_lines
        ledger_lines_plain.create(engine)
        rows = [r for _, doc in work.invoices for r in doc.rows]
        batches: list[Sequence[Row]] = [doc.rows for _, doc in work.invoices] if per_document \
            else backends.chunks(rows, BATCH)
        elapsed = backends.insert_batches(engine, ledger_lines_plain, batches)
        stored = count(engine, ledger_lines_plain)
        assert stored == len(rows), f"baseline stored {stored} of {len(rows)} lines"
    finally:
        engine.dispose()
    return Figure(len(work.invoices), len(rows), elapsed)


@dataclass(frozen=True, slots=True)
class PortFigures:
    invoices: Figure
    payments: Figure
    replay: Figure


def books_state(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        counts = {name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
                  for name, table in (("entries", lt.entries), ("lines", lt.lines),
                                      ("items", lt.items), ("settlements", lt.settlements))}
        counts["open_minor"] = int(conn.execute(
            select(func.coalesce(func.sum(lt.items.c.open_minor), 0))).scalar_one())
    return counts


def stored_rows(engine: Engine) -> list[Row]:
    with engine.connect() as conn:
        result = conn.execute(select(lt.lines).order_by(lt.lines.c.entry_id,
                                                        lt.lines.c.line_no)).mappings()
        return [dict(r) for r in result]


def expect_rows(engine: Engine, docs: Sequence[Document], what: str) -> None:
    wanted = sorted((r for d in docs for r in d.rows),
                    key=lambda r: (r["entry_id"], r["line_no"]))
    got = stored_rows(engine)
    assert len(got) == len(wanted), f"{what}: {len(got)} lines stored, {len(wanted)} expected"
    for have, want in zip(got, wanted, strict=True):
        assert have == want, f"{what}: stored {have}, expected {want}"


def expect_receipts(receipts: Sequence[Receipt], docs: Sequence[Document], *,
                    replayed: bool, what: str) -> None:
    flag = str(replayed).lower()
    for receipt, doc in zip(receipts, docs, strict=True):
        assert receipt.external_id == doc.rows[0]["entry_id"], \
            f"{what}: {doc.ctx.delivery_key} answered {receipt.external_id}"
        assert receipt.detail.get("replayed") == flag, f"{what}: {receipt.detail}"


def post_all(settle: Callable[[], None], post: Callable[[T, DeliveryContext], Receipt],
             calls: Sequence[tuple[T, Document]]) -> tuple[list[Receipt], float]:
    """One port figure's measured loop: settle the backend, then `post` every document in
    turn; the receipts and the seconds the loop took."""
    settle()
    receipts = []
    start = time.perf_counter()
    for body, doc in calls:
        receipts.append(post(body, doc.ctx))
    return receipts, time.perf_counter() - start


def measure_port(url: str, work: Workload, settle: Callable[[], None]) -> PortFigures:
    """Figures 2, 3 and 4 on one database: the books as `build_ledger_service` sets them up
    (default chart, the year's periods open), then invoices, payments, replayed invoices."""
    engine = make_engine(url)
    try:
        upgrade(engine)
        service = LedgerService(engine, utc_now)
        service.create_entity(ENTITY, "Bench Inc. (US)", CURRENCY,
                              parse_chart(DEFAULT_CHART.read_text()))
        service.open_year(ENTITY, YEAR)
        ledger = EmbeddedLedger(SYSTEM, service)
        n = len(work.invoices)
        invoice_docs = [d for _, d in work.invoices]
        payment_docs = [d for _, d in work.payments]

        # 2. invoices
        receipts, elapsed = post_all(settle, ledger.post_invoice, work.invoices)
        after_invoices = books_state(engine)
        expect_receipts(receipts, invoice_docs, replayed=False, what="invoices")
        assert after_invoices == {"entries": n, "lines": work.invoice_lines, "items": n,
                                  "settlements": 0, "open_minor": sum(
                                      i.total.to_minor() for i, _ in work.invoices)}, \
            f"after the invoices: {after_invoices}"
        expect_rows(engine, invoice_docs, "invoices")
        invoices = Figure(n, after_invoices["lines"], elapsed)

        # 3. payments, each settling one invoice in full
        receipts, elapsed = post_all(settle, ledger.post_payment, work.payments)
        after_payments = books_state(engine)
        expect_receipts(receipts, payment_docs, replayed=False, what="payments")
        written = after_payments["lines"] - after_invoices["lines"]
        assert after_payments == {"entries": 2 * n, "lines": after_invoices["lines"]
                                  + work.payment_lines, "items": n, "settlements": n,
                                  "open_minor": 0}, f"after the payments: {after_payments}"
        expect_rows(engine, invoice_docs + payment_docs, "payments")
        payments = Figure(n, written, elapsed)

        # 4. replay: the invoices again, same keys and bodies
        receipts, elapsed = post_all(settle, ledger.post_invoice, work.invoices)
        after_replay = books_state(engine)
        expect_receipts(receipts, invoice_docs, replayed=True, what="replay")
        assert after_replay == after_payments, f"replay wrote: {after_replay}"
        replay = Figure(n, after_replay["lines"] - after_payments["lines"], elapsed)
    finally:
        engine.dispose()
    return PortFigures(invoices, payments, replay)


# --------------------------------------------------------------------------------------
# Running and reporting


@dataclass
class Results:
    backend: str
    per_document: list[Figure] = field(default_factory=list)
    per_batch: list[Figure] = field(default_factory=list)
    port: list[PortFigures] = field(default_factory=list)


def run_backend(backend: backends.Backend, work: Workload, repeat: int, port_repeat: int,
                say: Callable[[str], None]) -> Results:
    results = Results(backend.name)
    rounds = max(repeat, port_repeat)
    for round_ in range(1, rounds + 1):  # interleaved, so drift hits every figure alike
        done = []
        if round_ <= repeat:
            with backend.fresh() as url:
                results.per_document.append(measure_baseline(url, work, per_document=True))
            with backend.fresh() as url:
                results.per_batch.append(measure_baseline(url, work, per_document=False))
            done.append(f"baseline {results.per_document[-1].line_rate:,.0f} lines/s "
                        f"(commit per document), {results.per_batch[-1].line_rate:,.0f} "
                        f"lines/s (per {BATCH})")
        if round_ <= port_repeat:
            with backend.fresh() as url:
                results.port.append(measure_port(url, work, backend.settle))
            p = results.port[-1]
            done.append(f"invoices {p.invoices.line_rate:,.0f} lines/s, payments "
                        f"{p.payments.line_rate:,.0f} lines/s, replay "
                        f"{p.replay.doc_rate:,.0f} calls/s")
        say(f"{backend.name}: round {round_}/{rounds}: {'; '.join(done)}")
    return results


def median_figure(figures: Sequence[Figure]) -> Figure:
    """The run with the median time (the lower middle one for an even count)."""
    ordered = sorted(figures, key=lambda f: f.seconds)
    return ordered[(len(ordered) - 1) // 2]


def spread(figures: Sequence[Figure], rate: Callable[[Figure], float], unit: str) -> str:
    rates = sorted(rate(f) for f in figures)
    if len(rates) == 1:
        return "1 run"
    return f"median of {len(rates)}, {rates[0]:,.0f} to {rates[-1]:,.0f} {unit}"


LEGEND = (
    ("1a baseline/doc", "the ledger_lines rows of the N invoices (the rows figure 2 must "
     "store, checked there), pre-built, inserted into a plain copy of ledger_lines by a bare "
     "SQLAlchemy executemany, one commit per document's lines: the limit for figure 2"),
    ("1b baseline/500", f"the same rows, one executemany and commit per {BATCH} lines: what "
     "the rows cost once commits are amortised"),
    ("2 invoices", "EmbeddedLedger.post_invoice, one call and one committed transaction per "
     "invoice (3 lines, + tax for 3 in 4): key lookup, entity, period, chart and rates "
     "read, entry + lines + AR item written"),
    ("3 payments", "EmbeddedLedger.post_payment, one per invoice, settling it in full "
     "(Dr cash / Cr AR): the open item is read, updated and a settlement row written"),
    ("4 replay", "figure 2's calls again with the same keys and bodies: the key is found, "
     "the body hash compared, the first receipt returned; no row may change"),
    ("vs 1a", "lines/s and documents/s as a share of figure 1a's (1a writes invoice lines, "
     "so for figure 3, with fewer lines per document, compare documents/s)"),
)


def add_row(table: RichTable, label: str, name: str, figures: Sequence[Figure],
            base: Figure, note: str, *, replay: bool = False) -> None:
    """One figure's median run, with its rates as shares of the baseline `base`."""
    f = median_figure(figures)
    if replay:
        lines, lines_ratio, unit = "—", "—", "calls/s"
        spread_note = spread(figures, lambda g: g.doc_rate, unit)
    else:
        lines, lines_ratio, unit = (f"{f.line_rate:,.0f}", f"{f.line_rate / base.line_rate:.0%}",
                                    "lines/s")
        spread_note = spread(figures, lambda g: g.line_rate, unit)
    table.add_row(label, name, f"{f.seconds:.2f}", lines, f"{f.doc_rate:,.0f}", lines_ratio,
                  f"{f.doc_rate / base.doc_rate:.0%}",
                  "; ".join(x for x in (note, spread_note) if x))


def report(console: Console, all_results: Sequence[Results], notes: list[tuple[str, str]],
           n: int, lines_per_invoice: float) -> None:
    table = RichTable(title=f"finsync ledger benchmark: {n:,} documents per figure "
                            f"({lines_per_invoice:.2f} lines per invoice)")
    columns: list[tuple[str, JustifyMethod]] = [
        ("backend", "left"), ("figure", "left"), ("seconds", "right"), ("lines/s", "right"),
        ("docs/s", "right"), ("lines vs 1a", "right"), ("docs vs 1a", "right"),
        ("notes", "left")]
    for header, justify in columns:
        table.add_column(header, justify=justify)
    for r in all_results:
        base = median_figure(r.per_document)
        batch = median_figure(r.per_batch)
        inv = [p.invoices for p in r.port]
        pay = [p.payments for p in r.port]
        add_row(table, r.backend, "1a baseline, commit/doc", r.per_document, base,
                f"{base.lines:,} lines in {base.documents:,} commits")
        add_row(table, "", "1b baseline, commit/500", r.per_batch, base,
                f"the same lines in {-(-batch.lines // BATCH)} commits")
        add_row(table, "", "2 invoices (port)", inv, base,
                f"{median_figure(inv).lines:,} lines written")
        add_row(table, "", "3 payments (port)", pay, base,
                f"{median_figure(pay).lines:,} lines written, {n:,} invoices settled")
        add_row(table, "", "4 replay (port)", [p.replay for p in r.port], base,
                "0 lines written, every receipt replayed", replay=True)
        table.add_section()
    console.print(table)
    backends.print_grids(console, (("figures", LEGEND), ("machine", tuple(notes))))


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--documents", type=int, default=2000,
                        help="invoices (and payments) per figure; default 2000")
    backends.add_run_options(parser, repeat_figures="1a and 1b")
    parser.add_argument("--port-repeat", type=int, default=1,
                        help="runs of figures 2 to 4 (the median is shown); default 1")
    parser.add_argument("--tmpdir", type=Path, default=None,
                        help="where the SQLite files go (default: the system temp)")
    args = backends.parse_args(parser, argv)
    if args.documents < 1 or args.repeat < 1 or args.port_repeat < 1:
        parser.error("--documents, --repeat and --port-repeat must be positive")
    return args


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    console, say = backends.make_console()
    work = workload(args.documents, parse_chart(DEFAULT_CHART.read_text()))
    per_invoice = work.invoice_lines / args.documents
    notes = [
        *backends.machine_notes(),
        ("workload", f"{args.documents:,} {CURRENCY} invoices of {len(PRODUCTS)} lines for "
                     f"{ENTITY} (default chart, {YEAR} periods open), {work.invoice_lines:,} "
                     f"journal lines; {args.documents:,} payments settling them, "
                     f"{work.payment_lines:,} lines; delivery keys event_id:{SYSTEM}"),
    ]
    with tempfile.TemporaryDirectory(prefix="finsync-bench-", dir=args.tmpdir) as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()

        def run(backend: backends.Backend) -> Results:
            return run_backend(backend, work, args.repeat, args.port_repeat, say)

        all_results = backends.run_backends(args.backends, workdir, run, notes, say,
                                            sqlite_prefix="ledger", unit="figure")
        notes.append(("wall time", f"{time.perf_counter() - started:.1f} s in all"))
    if not all_results:
        say("nothing measured")
        return 1
    report(console, all_results, notes, args.documents, per_invoice)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
