#!/usr/bin/env python3
"""`reconcile` over companies of N invoices, beside a plain SQL read of the same rows.

A benchmark, not a test: it prints figures and asserts only that each run did the work it
claims (the company reconciles with zero unexplained breaks, every invoice compared).

    .venv/bin/python bench/recon.py [--invoices 10000,100000,1000000] [--backends sqlite,postgresql]

The company: customers on the packaged catalogue's annual seat price, one subscription
each from 2026-01-01 for a year, one in four billed annually (1 invoice) and three in four
monthly (12 invoices), every invoice of four customers in five paid. The first
`TEMPLATE_CUSTOMERS` customers (every pattern of the company) are written through the
systems themselves: billing's own core (each customer's commands on a state of its own,
with its own invoice prefix so numbers stay unique) and billing's row builders
(`systems/billing/store.py`), in bulk; every event billing emitted goes to the ledger
(`EmbeddedLedger.post_batch`) and the revenue engine (`EmbeddedRevenue`) as the hub's
routes send them, with the canonical prices the hub sees. The rest of the company is
those rows cloned in SQL (`_clone`): every row of every billing, ledger and revenue table
that belongs to a customer, once per copy, its ids rewritten (each 32-hex id gets the
copy's number in its first five digits, each numbered id the copy's block of customers),
so a copy is what the systems would have written for other customers (stored body hashes
keep the template's: nothing here re-sends a body). Periods stay open, so revenue
breaks are explained (`period_not_closed`).

Figures, each size in a fresh subprocess (max RSS is that process's `ru_maxrss`):
1. baseline: one plain SQL read of the rows reconciliation compares (billing invoices,
   payments, credit memos and subscriptions; ledger open items and settlements), every row
   fetched into Python and dropped;
2. reconcile: `Finance.recon.run(as_of=2026-12-31, record=False)`, with the time spent
   reading the revenue engine's positions and the document digests, and the CPU time of
   this process (the rest of the wall time is the database's work and the wait for it;
   RECON_PROFILE=1: its cProfile, on stderr).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from finsync.bootstrap import build_billing_service, build_finance
from finsync.config import DEFAULT_CONFIG, parse_config
from finsync.connectors.embedded.billing import draft
from finsync.connectors.ports import DeliveryContext, Posting
from finsync.domain.catalog import BillingFrequency
from finsync.domain.contract import ContractLine, SubscriptionContract
from finsync.domain.events import ContractCreated, InvoiceIssued, PaymentApplied
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount
from finsync.recon import service
from finsync.storage.db import normalise_url
from finsync.systems.billing import store
from finsync.systems.billing.handler import RegisterCustomer, RunClock, handle
from finsync.systems.billing.outcome import Outcome
from finsync.systems.billing.payment import PayInvoice
from finsync.systems.billing.state import BillingState
from finsync.systems.billing.subscription import CreateSubscription

START, END, AS_OF = date(2026, 1, 1), date(2027, 1, 1), date(2026, 12, 31)
PG_URL = os.environ.get("FINSYNC_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
NOW = datetime(2027, 1, 1, tzinfo=UTC)


def _config(url: str, workdir: Path) -> Any:
    os.environ["FINSYNC_DATABASE_URL"] = url
    return parse_config(tomllib.loads(DEFAULT_CONFIG.read_text()), workdir)


def _customer_state(config: Any, i: int) -> Outcome:
    """One customer's year on billing's own core, in a state of its own."""
    base = replace(config, invoice_prefix=f"INV_{i:07d}", credit_memo_prefix=f"CM_{i:07d}")
    customer = CustomerAccount(f"cus_{i:07d}", f"Customer {i}", "le_us", "USD", "US")
    monthly = i % 4 != 0
    line = ContractLine("ln_seats", "prod_platform_seat", "price_seat_annual", 1 + i % 50,
                        Money.of("120.00", "USD"), START, END)
    contract = SubscriptionContract(
        f"con_{i:07d}", customer.id, "le_us", "USD", START, END,
        BillingFrequency.MONTHLY if monthly else BillingFrequency.ANNUAL, (line,))
    state = BillingState(base)
    outcome = handle(state, RegisterCustomer(customer))
    outcome = outcome.then(handle(outcome.state, CreateSubscription(
        contract, correlation_id=f"order_{i:07d}", auto_renew=False)))
    outcome = outcome.then(handle(outcome.state, RunClock(AS_OF)))
    if i % 5 != 0:
        for n, record in enumerate(outcome.state.invoices):
            invoice = record.invoice
            outcome = outcome.then(handle(outcome.state, PayInvoice(
                f"pay_{i:07d}_{n:02d}", invoice.id, invoice.total, invoice.issue_date)))
    return outcome


TEMPLATE_CUSTOMERS = 20  # every (billing frequency, paid) pattern; ids up to _0000020


def seed(url: str, workdir: Path, invoices: int) -> dict[str, Any]:
    started = time.perf_counter()
    made = _seed_systems(url, workdir, invoices, TEMPLATE_CUSTOMERS)
    copies = -(-invoices // made["invoices"])
    if copies > 1:
        engine = create_engine(normalise_url(url))
        _clone(engine, copies)
        engine.dispose()
        made = {k: v * copies for k, v in made.items()}
    return {**made, "seed_s": time.perf_counter() - started}


def _seed_systems(url: str, workdir: Path, invoices: int, customers: int) -> dict[str, int]:
    config = _config(url, workdir)
    finance = build_finance(config, clock=lambda: NOW)
    billing = build_billing_service(config, finance.hub.engine, lambda: NOW)
    ledger, revenue = finance.ports.ledger(), finance.ports.revenue()
    catalog = billing.config.catalog
    made = {"invoices": 0, "payments": 0, "subscriptions": 0}
    positions = {"invoices": 0, "payments": 0, "subscriptions": 0}
    postings: list[Posting] = []
    i = 0
    while made["invoices"] < invoices and i < customers:
        i += 1
        outcome = _customer_state(billing.config, i)
        state = outcome.state
        with finance.hub.engine.begin() as conn:
            _write_billing(conn, state, positions)
        for emitted in outcome.emitted:
            event = draft(emitted, NOW, catalog).event
            key = f"{emitted.aggregate.type}:{emitted.aggregate.id}:{type(event).__name__}"
            ctx = DeliveryContext(key, key, emitted.correlation_id)
            if isinstance(event, ContractCreated):
                revenue.apply_contract(event.contract, None, ctx)
            elif isinstance(event, InvoiceIssued):
                revenue.record_invoice(event.invoice, ctx)
                postings.append(Posting(event, ctx))
            elif isinstance(event, PaymentApplied):
                postings.append(Posting(event, ctx))
        if len(postings) >= 90:
            _post(ledger, postings)
            postings = []
        made["invoices"] += len(state.invoices)
        made["payments"] += len(state.payments)
        made["subscriptions"] += 1
    _post(ledger, postings)
    finance.dispose()
    return made


def _post(ledger: Any, postings: list[Posting]) -> None:
    for start in range(0, len(postings), ledger.max_batch):
        for answer in ledger.post_batch(postings[start:start + ledger.max_batch]):
            assert not isinstance(answer, Exception), answer


def _write_billing(conn: Any, state: BillingState, positions: dict[str, int]) -> None:
    """The rows `store.save` writes for this customer (each customer's documents are numbered
    on their own here, so the entity's number counters are left alone)."""
    out = store.changes(BillingState(state.config), state)
    store.write(conn, replace(out, numbers=()))
    positions["subscriptions"] += len(state.subscriptions)
    positions["invoices"] += len(state.invoices)
    positions["payments"] += len(state.payments)


# Tables of reference data, counters and periods (not a customer's): never cloned.
NOT_CLONED = {"billing_head", "billing_products", "billing_prices", "billing_document_numbers",
              "ledger_entities", "ledger_accounts", "ledger_periods", "ledger_period_log",
              "ledger_fx_rates", "revrec_journals", "revrec_journal_movements"}
SERIALS = {("ledger_settlements", "id"), ("revrec_changes", "seq")}
HEX_ID = r"_[0-9a-f]{5}([0-9a-f]{27})"  # a 32-hex id after its kind's prefix
TEMPLATE_HEX = r"_00000([0-9a-f]{27})"
TEMPLATE_NUMBER = r"_00000([0-9]{2})"  # cus_0000001, pay_0000001_00, INV_0000001-...


def _clone(engine: Any, copies: int) -> None:
    """Copies 1 … copies-1 of every customer row (the template is copy 0: its 32-hex ids
    first get 00000 as their first five digits, so that no copy can meet them)."""
    from sqlalchemy import MetaData, String, Text
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.begin() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            _sqlite_functions(conn)
        for table in metadata.sorted_tables:
            name = table.name
            if not _cloned_table(name):
                continue
            texts = [c.name for c in table.columns if isinstance(c.type, (String, Text))]
            if not texts:
                continue
            zero = ", ".join(f'"{c}" = {_renamed(c, sqlite)}' for c in texts)
            conn.execute(text(f'UPDATE "{name}" SET {zero}'))
            span = 0
            if "position" in table.columns:
                span = conn.execute(text(f'SELECT MAX("position") + 1 FROM "{name}"')).scalar() or 0
            columns = [c.name for c in table.columns if (name, c.name) not in SERIALS]
            values = [_cloned(c, sqlite) if c in texts
                      else f'"{c}" + g * {span}' if c == "position" else f'"{c}"'
                      for c in columns]
            series = ("(WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s "
                      f"WHERE g < {copies - 1}) SELECT g FROM s) AS copies" if sqlite
                      else f"generate_series(1, {copies - 1}) AS copies(g)")
            listed = ", ".join(f'"{c}"' for c in columns)
            conn.execute(text(f'INSERT INTO "{name}" ({listed}) SELECT {", ".join(values)} '
                              f'FROM "{name}", {series}'))
        if not sqlite:
            conn.execute(text("ANALYZE"))


def _cloned_table(name: str) -> bool:
    return (name not in NOT_CLONED and name.startswith(("billing_", "ledger_", "revrec_"))
            and not name.endswith("alembic_version"))


def _renamed(column: str, sqlite: bool) -> str:
    if sqlite:
        return f'finsync_rename("{column}")'
    return f"regexp_replace(\"{column}\", '{HEX_ID}', '_00000\\1', 'g')"


def _cloned(column: str, sqlite: bool) -> str:
    if sqlite:
        return f'finsync_clone("{column}", g)'
    hexed = (f"regexp_replace(\"{column}\", '{TEMPLATE_HEX}', "
             f"'_' || lpad(to_hex(g), 5, '0') || '\\1', 'g')")
    number = "'_' || lpad(g::text, 5, '0') || '\\1'"
    return f"regexp_replace({hexed}, '{TEMPLATE_NUMBER}', {number}, 'g')"


def _sqlite_functions(conn: Any) -> None:
    import re
    hex_id, template_hex = re.compile(HEX_ID), re.compile(TEMPLATE_HEX)
    template_number = re.compile(TEMPLATE_NUMBER)

    def rename(value: str | None) -> str | None:
        return None if value is None else hex_id.sub(r"_00000\1", value)

    def clone(value: str | None, g: int) -> str | None:
        if value is None:
            return None
        hexed = template_hex.sub(lambda m: f"_{g:05x}{m.group(1)}", value)
        return template_number.sub(lambda m: f"_{g:05d}{m.group(1)}", hexed)

    raw = conn.connection.driver_connection
    raw.create_function("finsync_rename", 1, rename, deterministic=True)
    raw.create_function("finsync_clone", 2, clone, deterministic=True)


BASELINE = (
    "SELECT id, customer_id, currency, total_minor, issue_date FROM billing_invoices",
    "SELECT id, invoice_id, customer_id, currency, amount_minor FROM billing_payments",
    "SELECT id, invoice_id, subtotal_minor FROM billing_credit_memos",
    "SELECT s.id, v.contract FROM billing_subscriptions s "
    "JOIN billing_contract_versions v ON v.contract_id = s.id",
    "SELECT document_id, customer, currency, open_minor, posting_date FROM ledger_items",
    "SELECT item_id, entry_id, applied_minor, posting_date FROM ledger_settlements",
)


def measure(url: str, workdir: Path) -> dict[str, Any]:
    config = _config(url, workdir)
    engine = create_engine(normalise_url(url))
    started = time.perf_counter()
    rows = 0
    with engine.connect() as conn:
        for query in BASELINE:
            for _ in conn.execution_options(yield_per=5000).execute(text(query)):
                rows += 1
    baseline = time.perf_counter() - started
    engine.dispose()
    finance = build_finance(config, clock=lambda: NOW)
    revenue = finance.ports.revenue()
    # The engine's reads: per-contract prices (a stream), sums per currency and per month.
    inside = [_timed(revenue, "contract_prices"), _timed_call(revenue, "position_totals"),
              _timed_call(revenue, "recognised_over")]
    digesting = _timed_call(service, "document_streams")
    profile = cProfile.Profile() if os.environ.get("RECON_PROFILE") else None
    started, cpu_started = time.perf_counter(), time.process_time()
    if profile is not None:
        profile.enable()
    report = finance.recon.run(AS_OF, record=False)
    if profile is not None:
        profile.disable()
        pstats.Stats(profile, stream=sys.stderr).sort_stats("cumulative").print_stats(60)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    finance.dispose()
    unexplained = len(report.unexplained)
    ar = next(c for c in report.checks if c.name == "billing_vs_erp_ar"
              and c.legal_entity == "le_us")
    return {"baseline_s": baseline, "baseline_rows": rows, "recon_s": seconds, "recon_cpu_s": cpu,
            "revenue_s": sum(spent[0] for spent in inside), "digests_s": digesting[0],
            "unexplained": unexplained, "ar_compared": ar.item_count,
            "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _timed(port: Any, method: str) -> list[float]:
    """Wrap `port.method` (a generator) for this run only; [seconds spent inside it]."""
    spent = [0.0]
    inner = getattr(port, method)

    def wrapped(*args: Any) -> Any:
        rows = inner(*args)
        while True:
            started = time.perf_counter()
            try:
                row = next(rows)
            except StopIteration:
                spent[0] += time.perf_counter() - started
                return
            spent[0] += time.perf_counter() - started
            yield row

    setattr(port, method, wrapped)
    return spent


def _timed_call(module: Any, name: str) -> list[float]:
    """Wrap `module.name` (a plain function or method) for this run only; [seconds spent
    inside it]."""
    spent = [0.0]
    inner = getattr(module, name)

    def wrapped(*args: Any) -> Any:
        started = time.perf_counter()
        try:
            return inner(*args)
        finally:
            spent[0] += time.perf_counter() - started

    setattr(module, name, wrapped)
    return spent


def _child(args: argparse.Namespace) -> None:
    workdir = Path(args.workdir)
    if args.child == "seed":
        print(json.dumps(seed(args.url, workdir, args.n)))
    else:
        print(json.dumps(measure(args.url, workdir)))


def _run_child(kind: str, url: str, workdir: Path, n: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", kind, "--url", url,
                          "--workdir", str(workdir), "--n", str(n)],
                         check=True, stdout=subprocess.PIPE, text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _database(backend: str, workdir: Path, n: int) -> str:
    if backend == "sqlite":
        return f"sqlite:///{workdir / f'recon_{n}.db'}"
    name = f"finsync_bench_recon_{os.getpid()}_{n}"
    admin = create_engine(normalise_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        # template0: template1 refuses to be copied while another session is on it.
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE template0'))
    admin.dispose()
    return PG_URL.rsplit("/", 1)[0] + f"/{name}"


def _drop(backend: str, url: str) -> None:
    if backend != "postgresql":
        return
    admin = create_engine(normalise_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}"'))
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--invoices", default="10000,100000,1000000")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--child")
    parser.add_argument("--url")
    parser.add_argument("--workdir")
    parser.add_argument("--n", type=int, default=0)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    rows = []
    for backend in args.backends.split(","):
        for n in (int(x) for x in args.invoices.split(",")):
            with tempfile.TemporaryDirectory() as tmp:
                url = _database(backend, Path(tmp), n)
                try:
                    seeded = _run_child("seed", url, Path(tmp), n)
                    figures = _run_child("measure", url, Path(tmp), n)
                finally:
                    _drop(backend, url)
            assert figures["unexplained"] == 0, figures
            assert figures["ar_compared"] >= seeded["invoices"], (figures, seeded)
            rows.append((backend, seeded, figures))
            print(f"{backend:10} invoices {seeded['invoices']:>8,} payments "
                  f"{seeded['payments']:>8,} contracts {seeded['subscriptions']:>7,} | "
                  f"seed {seeded['seed_s']:7.1f} s | baseline {figures['baseline_s']:6.2f} s "
                  f"({figures['baseline_rows']:,} rows) | reconcile {figures['recon_s']:6.2f} s"
                  f" = {figures['recon_s'] / figures['baseline_s']:5.1f}x baseline "
                  f"(revenue reads {figures['revenue_s']:5.2f} s, digests "
                  f"{figures['digests_s']:5.2f} s, this process's CPU "
                  f"{figures['recon_cpu_s']:5.2f} s) | "
                  f"max RSS {figures['maxrss_mib']:6.1f} MiB | unexplained "
                  f"{figures['unexplained']}", flush=True)


if __name__ == "__main__":
    main()
