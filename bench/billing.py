"""Cost of one billing command as the company grows: 1k, 10k and 100k customers.

Each size gets a fresh database holding N customers, each with a monthly subscription
(seats + usage overage), its first invoice, two usage records, and, for every other
customer, a payment of that invoice: the rows `BillingService` writes for those commands,
built by the pure core (`handle`) and the store's own row builder (`store.changes`) and
written in bulk, with their outbox envelopes (marked published). Then `--samples` commands
of each kind are timed one by one through `BillingService.execute` on random customers:

- RecordUsage: a new usage record for one subscription (its own id: idempotency key);
- PayInvoice: an unpaid first invoice paid in full;
- AmendSubscription: 5 seats added mid-cycle (a prorated invoice: numbering, positions).

The same-run limit is a bare single-row insert + commit into a plain table of the same
database, timed the same way. The figure is the ratio median(100k) / median(1k): flat when
within 2x.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import backends
from rich.table import Table as RichTable
from sqlalchemy import Column, Engine, Integer, MetaData, Table, Text, func, insert, select

from finsync.bootstrap import build_billing_service
from finsync.config import DEFAULT_CONFIG, parse_config
from finsync.connectors.embedded.billing import envelope
from finsync.domain.catalog import BillingFrequency
from finsync.domain.contract import ContractLine, SubscriptionContract
from finsync.domain.invoice import UsageRecord
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount
from finsync.storage.db import make_engine
from finsync.systems.billing import store
from finsync.systems.billing import tables as t
from finsync.systems.billing.amendment import AmendSubscription
from finsync.systems.billing.edit import AddSeats
from finsync.systems.billing.handler import Command, RecordUsage, RegisterCustomer, handle
from finsync.systems.billing.outcome import Outcome
from finsync.systems.billing.payment import PayInvoice
from finsync.systems.billing.service import BillingService
from finsync.systems.billing.state import BillingConfig, BillingState, Numbering
from finsync.systems.billing.subscription import CreateSubscription

START, END, NOW = date(2026, 1, 1), date(2027, 1, 1), datetime(2026, 1, 20, tzinfo=UTC)
BATCH = 5_000
COMMANDS = ("RecordUsage", "PayInvoice", "AmendSubscription")

plain = Table("bench_billing_plain", MetaData(),
              Column("id", Integer, primary_key=True, autoincrement=False),
              Column("body", Text, nullable=False))


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def cid(i: int) -> str:
    return f"cus_{i:07d}"


def contract_of(i: int) -> SubscriptionContract:
    lines = (ContractLine("ln_seats", "prod_platform_seat", "price_seat_annual", 10 + i % 90,
                          usd("120.00"), START, END),
             ContractLine("ln_overage", "prod_usage_overage", "price_usage_overage", 0,
                          usd("0.002"), START, END))
    return SubscriptionContract(f"con_{i:07d}", cid(i), "le_us", "USD", START, END,
                                BillingFrequency.MONTHLY, lines)


def seed_commands(i: int, first_invoice: Callable[[BillingState], tuple[str, Money]]
                  ) -> list[Callable[[BillingState], Command]]:
    contract = contract_of(i)

    def usage(n: int) -> Callable[[BillingState], Command]:
        return lambda _: RecordUsage(UsageRecord(f"use_{i:07d}_{n}", contract.id,
                                                 "prod_usage_overage", 1_000 * n,
                                                 date(2026, 1, 2 + n)))

    steps: list[Callable[[BillingState], Command]] = [
        lambda _: RegisterCustomer(CustomerAccount(cid(i), f"Customer {i}", "le_us", "USD",
                                                   "US")),
        lambda _: CreateSubscription(contract, f"ord_{i:07d}"), usage(1), usage(2)]
    if i % 2 == 0:
        steps.append(lambda s: PayInvoice(f"pay_{i:07d}", *first_invoice(s), date(2026, 1, 5)))
    return steps


def _first_invoice(state: BillingState) -> tuple[str, Money]:
    invoice = state.invoices[0].invoice
    return invoice.id, invoice.total


def seed(engine: Engine, config: BillingConfig, n: int, say: Callable[[str], None]) -> float:
    """N customers' rows, built by the core and the store's row builder, written in bulk."""
    started, numbering, seq = time.perf_counter(), Numbering(), 0
    positions: dict[Table, int] = {}
    pending: dict[Table, list[dict[str, Any]]] = {}

    def flush() -> None:
        with engine.begin() as conn:
            for table, rows in pending.items():
                conn.execute(insert(table), rows)
        pending.clear()

    for i in range(n):
        empty = BillingState(config, numbering=numbering)
        outcome = Outcome(empty)
        for step in seed_commands(i, _first_invoice):
            outcome = outcome.then(handle(outcome.state, step(outcome.state)))
        out = store.changes(empty, outcome.state)
        for table, rows in out.inserts.items():
            if table in store.POSITIONED:
                start = positions.get(table, 0)
                rows = [{**row, "position": start + k} for k, row in enumerate(rows)]
                positions[table] = start + len(rows)
            pending.setdefault(table, []).extend(rows)
        for emitted in outcome.emitted:
            seq += 1
            body = envelope(emitted, NOW, config.catalog)
            pending.setdefault(t.outbox, []).append({
                "seq": seq, "source_event_id": body["source_event_id"], "type": body["type"],
                "correlation_id": body["correlation_id"],
                "envelope": json.dumps(body, sort_keys=True), "created_at": NOW,
                "published": True, "published_at": NOW})
        numbering = outcome.state.numbering
        if (i + 1) % BATCH == 0:
            flush()
            say(f"  seeded {i + 1:,} customers ({time.perf_counter() - started:.0f} s)")
    pending.setdefault(t.document_numbers, []).extend(
        {"kind": kind, "legal_entity": entity, "last_number": last}
        for kind, entity, last in numbering.last)
    flush()
    with engine.begin() as conn:  # positions and the outbox's seq were given, not drawn
        store.sync_positions(conn)
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('billing_outbox', "
                                 f"'seq'), {seq})")
            conn.exec_driver_sql("ANALYZE")
    return time.perf_counter() - started


def commands(service: BillingService, n: int, samples: int,
             rng: random.Random) -> dict[str, list[Command]]:
    picks = rng.sample(range(n), min(n, samples * 3))
    odd = [i for i in range(1, n, 2)]
    unpaid = rng.sample(odd, min(len(odd), samples))
    result: dict[str, list[Command]] = {
        "RecordUsage": [RecordUsage(UsageRecord(f"use_bench_{i}", f"con_{i:07d}",
                                                "prod_usage_overage", 777, date(2026, 1, 20)))
                        for i in picks[:samples]],
        "AmendSubscription": [AmendSubscription(f"amd_bench_{i}", f"con_{i:07d}",
                                                date(2026, 1, 16), (AddSeats("ln_seats", 5),))
                              for i in picks[samples:2 * samples]],
        "PayInvoice": []}
    for i in unpaid:
        [summary] = service.invoices(contract_id=f"con_{i:07d}")
        result["PayInvoice"].append(PayInvoice(f"pay_bench_{i}", summary.id, summary.total,
                                               date(2026, 1, 20)))
    return result


@dataclass(frozen=True)
class Latency:
    median_ms: float
    p95_ms: float
    count: int


def latency(seconds: Sequence[float]) -> Latency:
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return Latency(statistics.median(ordered) * 1e3, p95 * 1e3, len(ordered))


def timed(run: Callable[[Any], object], items: Sequence[Any]) -> Latency:
    seconds = []
    for item in items:
        start = time.perf_counter()
        run(item)
        seconds.append(time.perf_counter() - start)
    return latency(seconds)


def baseline(engine: Engine, samples: int) -> Latency:
    """A bare single-row insert and commit, one at a time."""
    plain.create(engine)
    body = "x" * 400

    def one(k: int) -> None:
        with engine.begin() as conn:
            conn.execute(insert(plain), {"id": k, "body": body})

    return timed(one, range(samples))


def counts(engine: Engine) -> dict[str, int]:
    """Rows each timed command must add one of: the check that the work was done."""
    with engine.connect() as conn:
        return {name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
                for name, table in (("usage", t.usage_records), ("payments", t.payments),
                                    ("versions", t.contract_versions))}


def billing_of(engine: Engine, url: str, workdir: Path) -> BillingService:
    """Billing as `finsync` builds it from the packaged configuration: its catalogue, and
    the embedded tax engine on the same database (made there) quoting every invoice."""
    data = tomllib.loads(DEFAULT_CONFIG.read_text())
    data["hub"]["database_url"] = url
    return build_billing_service(parse_config(data, workdir), engine, lambda: NOW)


def measure(url: str, workdir: Path, n: int, samples: int, say: Callable[[str], None],
            settle: Callable[[], None]) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        service = billing_of(engine, url, workdir)
        seeded = seed(engine, service.config, n, say)
        rng = random.Random(n)
        work = commands(service, n, samples, rng)
        service.execute(RegisterCustomer(CustomerAccount("cus_warm", "Warm", "le_us", "USD",
                                                         "US")))  # stores the catalogue
        settle()
        figures = {"baseline": baseline(engine, samples)}
        before = counts(engine)
        for name in COMMANDS:
            figures[name] = timed(service.execute, work[name])
        done = {k: v - before[k] for k, v in counts(engine).items()}
        expected = {"usage": len(work["RecordUsage"]), "payments": len(work["PayInvoice"]),
                    "versions": len(work["AmendSubscription"])}
        assert done == expected, f"the commands wrote {done}, not {expected}"
        return {"seed_s": seeded, "figures": figures}
    finally:
        engine.dispose()


def run_backend(backend: backends.Backend, workdir: Path, sizes: Sequence[int], samples: int,
                say: Callable[[str], None]) -> dict[int, dict[str, Any]]:
    results = {}
    for n in sizes:
        say(f"{backend.name}: {n:,} customers")
        with backend.fresh() as url:
            results[n] = measure(url, workdir, n, samples, say, backend.settle)
        say(f"  seeded in {results[n]['seed_s']:.1f} s")
    return results


def report(console: Any, all_results: dict[str, dict[int, dict[str, Any]]],
           sizes: Sequence[int], notes: list[tuple[str, str]]) -> None:
    table = RichTable(title="one billing command, by company size (ms per command)")
    for column in ("backend", "command", *(f"{n:,}: median / p95" for n in sizes),
                   f"median {sizes[-1]:,} / {sizes[0]:,}", "median vs baseline"):
        table.add_column(column, justify="left" if column in ("backend", "command")
                         else "right")
    for name, by_size in all_results.items():
        for command in ("baseline", *COMMANDS):
            cells = [f"{by_size[n]['figures'][command].median_ms:.2f} / "
                     f"{by_size[n]['figures'][command].p95_ms:.2f}" for n in sizes]
            first, last = (by_size[n]["figures"][command].median_ms for n in
                           (sizes[0], sizes[-1]))
            base = by_size[sizes[-1]]["figures"]["baseline"].median_ms
            table.add_row(name, command, *cells, f"{last / first:.2f}x",
                          f"{last / base:.1f}x")
    console.print(table)
    backends.print_grids(console, (("machine", tuple(notes)),))


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1000,10000,100000",
                        help="comma-separated numbers of customers; default 1000,10000,100000")
    parser.add_argument("--samples", type=int, default=200,
                        help="commands of each kind timed per size; default 200")
    parser.add_argument("--tmpdir", type=Path, default=None,
                        help="where the SQLite files go (default: the system temp)")
    backends.add_run_options(parser, repeat_figures="(unused here)")
    args = backends.parse_args(parser, argv)
    args.sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    if not args.sizes or min(args.sizes) < 2 or args.samples < 1:
        parser.error("--sizes must be at least 2 customers each; --samples positive")
    return args


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    console, say = backends.make_console()
    notes = [*backends.machine_notes(),
             ("workload", f"{args.samples} commands of each kind per size, on random "
                          "customers; each customer: monthly subscription (seats + usage), "
                          "first invoice, 2 usage records, every other one paid")]
    with tempfile.TemporaryDirectory(prefix="finsync-bench-", dir=args.tmpdir) as tmp:
        started = time.perf_counter()

        def run(backend: backends.Backend) -> dict[int, dict[str, Any]]:
            return run_backend(backend, Path(tmp), args.sizes, args.samples, say)

        results = backends.run_backends(args.backends, Path(tmp), run, notes, say,
                                        sqlite_prefix="billing", unit="size")
        notes.append(("wall time", f"{time.perf_counter() - started:.1f} s in all"))
    if not results:
        say("nothing measured")
        return 1
    names = [b for b in args.backends if b == "sqlite" or len(results) == len(args.backends)]
    report(console, dict(zip(names, results, strict=False)), args.sizes, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
