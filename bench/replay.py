#!/usr/bin/env python3
"""`replay --all` of a generated company, and the generator's own throughput.

A benchmark, not a test: it prints figures and checks only that each run did the work it
reports (every event replayed, every delivery done again, the books unchanged).

    .venv/bin/python bench/replay.py [--customers 20,40] [--months 12] [--seed 1]
                                     [--backends sqlite,postgresql]

Per backend and company size, on a fresh database:

0. generate: `finsync generate`'s work (`finsync.generator.run.generate`), N customers over
   M months, every month closed; events/s and billing commands/s.
1. baseline, the limit: a plain read of the same event rows (every column, in the replay's
   pages of log positions, one transaction per page), nothing done with them.
2. replay scan: `Hub.replay(everything)`: the log streamed in pages, the deliveries of each
   page looked up, any missing one enqueued, all sent again (one update per page).
3. re-delivery: `Hub.run_until_idle()` until every delivery is done again; each target
   answers the known idempotency key with its first receipt (the ledger in `post_batch`,
   revenue and tax a batch at a time through `hub.redelivery`).
4. replay --all = 2 + 3, what `finsync replay --all` does; events/s and the ratio of the
   baseline's time to it.
5. scan at scale (`--synthetic N`, default 100,000): N accepted `payment.applied` events with
   their done ledger deliveries, bulk-inserted (the log of a company far larger than
   today's billing can generate here), then figure 1 and figure 2 on them, with the Python
   heap peak of each (tracemalloc): the scan's memory must not grow with N.

See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
import tomllib
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import backends
from rich.table import Table as RichTable
from sqlalchemy import func, insert, select

from finsync.bootstrap import build_finance, build_hub, build_ledger_service
from finsync.config import DEFAULT_CONFIG, FinsyncConfig, parse_config
from finsync.domain.status import EventStatus
from finsync.generator.run import Request, generate
from finsync.hub.replay import BATCH_SIZE, ReplayFilter
from finsync.storage.db import make_engine
from finsync.storage.schema import deliveries, events


@dataclass(frozen=True)
class Result:
    backend: str
    customers: int
    months: int
    events: int
    deliveries: int
    generate_s: float
    commands: int
    baseline_s: float
    scan_s: float
    redeliver_s: float
    max_rss_mib: float
    parts: dict[str, float]  # the generator's seconds: billing, hub, close

    @property
    def replay_s(self) -> float:
        return self.scan_s + self.redeliver_s


def config_for(url: str, workdir: Path) -> FinsyncConfig:
    data = tomllib.loads(DEFAULT_CONFIG.read_text())
    data["hub"]["database_url"] = url
    return parse_config(data, workdir)


def plain_read(url: str) -> tuple[int, float]:
    """Figure 1: every accepted event row, paged by log position as the replay pages."""
    engine = make_engine(url)
    with engine.connect() as conn:
        last = int(conn.execute(select(func.max(events.c.position))).scalar_one() or 0)
    rows, after = 0, 0
    start = time.perf_counter()
    while after < last:
        upto = min(after + BATCH_SIZE, last)
        with engine.connect() as conn, conn.begin():
            page = conn.execute(select(events).where(
                events.c.status == EventStatus.ACCEPTED, events.c.position > after,
                events.c.position <= upto).order_by(events.c.position)).all()
        rows += len(page)
        after = upto
    seconds = time.perf_counter() - start
    engine.dispose()
    return rows, seconds


def books(config: FinsyncConfig, finance: Any, as_of: date) -> Any:
    ledger = build_ledger_service(config, finance.hub.engine)
    return {entity: ledger.trial_balance(entity, as_of) for entity, _ in ledger.entities()}


def measure(backend: backends.Backend, customers: int, months: int, seed: int,
            workdir: Path, say: Any) -> Result:
    with backend.fresh() as url:
        config = config_for(url, workdir)
        say(f"  {backend.name}: generating {customers} customers x {months} months")
        made = generate(config, Request(customers, months, seed))
        backend.settle()
        rows, baseline_s = plain_read(url)
        finance = build_finance(config)
        try:
            hub = finance.hub
            as_of = date.fromisoformat(made["until"])
            before = books(config, finance, as_of)
            start = time.perf_counter()
            replayed = hub.replay(ReplayFilter(everything=True))
            scanned = time.perf_counter()
            summary = hub.run_until_idle()
            done = time.perf_counter()
            status = hub.status()
            assert replayed.events == rows == made["events"], (replayed, rows, made["events"])
            assert summary.deliveries_attempted == replayed.requeued, summary
            assert set(status["deliveries"]) == {"done"}, status["deliveries"]
            assert books(config, finance, as_of) == before, "replay moved the books"
        finally:
            finance.dispose()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return Result(backend.name, customers, months, rows, replayed.requeued, made["seconds"],
                  made["billing_commands"], baseline_s, scanned - start, done - scanned, rss,
                  made["seconds_by_part"])


@dataclass(frozen=True)
class Scale:
    backend: str
    events: int
    baseline_s: float
    baseline_peak_mib: float
    scan_s: float
    scan_peak_mib: float
    requeued: int


def synthetic_log(url: str, n: int) -> None:
    """N accepted payment events (about 500 bytes of payload each) and their done
    deliveries to the ledger, bulk-inserted in batches of 5,000."""
    at = datetime(2026, 6, 1, tzinfo=UTC)
    engine = make_engine(url)
    for first in range(0, n, 5000):
        ids = range(first, min(n, first + 5000))
        event_rows = [{
            "event_id": f"evt_{i:09d}", "type": "payment.applied", "schema_version": 1,
            "source": "billing", "source_event_id": f"pay_{i:09d}-applied",
            "business_key": None, "occurred_at": at, "received_at": at,
            "correlation_id": f"corr_{i:09d}", "causation_id": None,
            "aggregate_type": "payment", "aggregate_id": f"pay_{i:09d}",
            "aggregate_version": None, "payload": json.dumps({"payment": {
                "id": f"pay_{i:09d}", "customer_id": f"cus_{i % 10_000:06d}",
                "legal_entity": "le_us", "amount": "100.00", "currency": "USD",
                "received_on": "2026-06-01", "applications": [
                    {"invoice_id": f"inv_{i:09d}", "amount": "100.00"}]},
                "padding": "x" * 200}), "payload_hash": f"{i:064d}", "raw_event_id": None,
            "status": EventStatus.ACCEPTED, "status_changed_at": at} for i in ids]
        delivery_rows = [{
            "event_id": f"evt_{i:09d}", "target": "ledger",
            "delivery_key": f"evt_{i:09d}:ledger", "partition_key": f"payment:pay_{i:09d}",
            "correlation_id": f"corr_{i:09d}", "status": "done", "attempts": 1,
            "next_attempt_at": at, "created_at": at, "completed_at": at,
            "result": "{}"} for i in ids]
        with engine.begin() as conn:
            conn.execute(insert(events), event_rows)
            conn.execute(insert(deliveries), delivery_rows)
    engine.dispose()


def peak_of(call: Any) -> tuple[Any, float, float]:
    """(result, seconds, Python heap peak in MiB) of `call()`."""
    tracemalloc.start()
    start = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, seconds, peak


def measure_scale(backend: backends.Backend, n: int, workdir: Path, say: Any) -> Scale:
    with backend.fresh() as url:
        config = config_for(url, workdir)
        hub = build_hub(config)  # migrates
        say(f"  {backend.name}: {n:,} synthetic events")
        synthetic_log(url, n)
        backend.settle()
        (rows, _), baseline_s, baseline_peak = peak_of(lambda: plain_read(url))
        replayed, scan_s, scan_peak = peak_of(lambda: hub.replay(ReplayFilter(everything=True)))
        hub.engine.dispose()
    assert rows == replayed.events == n and replayed.requeued == n, (rows, replayed)
    return Scale(backend.name, n, baseline_s, baseline_peak, scan_s, scan_peak,
                 replayed.requeued)


def report_scale(console: Any, scales: Sequence[Scale]) -> None:
    table = RichTable(title="5. the replay's scan at scale (synthetic log)",
                      title_justify="left")
    for column in ("backend", "events", "1 baseline s", "baseline ev/s", "baseline peak MiB",
                   "2 scan s", "scan ev/s", "scan peak MiB", "1 / 2"):
        table.add_column(column, justify="left" if column == "backend" else "right")
    for r in scales:
        table.add_row(r.backend, f"{r.events:,}", f"{r.baseline_s:.2f}",
                      f"{r.events / r.baseline_s:,.0f}", f"{r.baseline_peak_mib:.1f}",
                      f"{r.scan_s:.2f}", f"{r.events / r.scan_s:,.0f}",
                      f"{r.scan_peak_mib:.1f}", f"{r.baseline_s / r.scan_s:.2f}")
    console.print(table)


def report(console: Any, results: Sequence[Result]) -> None:
    made = RichTable(title="0. the generator (finsync generate)", title_justify="left")
    for column in ("backend", "customers x months", "events", "billing commands", "seconds",
                   "events/s", "commands/s", "billing s", "hub s", "close s"):
        made.add_column(column, justify="left" if column == "backend" else "right")
    for r in results:
        made.add_row(r.backend, f"{r.customers} x {r.months}", f"{r.events:,}",
                     f"{r.commands:,}", f"{r.generate_s:.1f}",
                     f"{r.events / r.generate_s:,.1f}", f"{r.commands / r.generate_s:,.1f}",
                     *(f"{r.parts.get(part, 0.0):.1f}" for part in ("billing", "hub", "close")))
    console.print(made)
    table = RichTable(title="1-4. replay --all", title_justify="left")
    for column in ("backend", "size", "events", "deliveries", "1 baseline s", "2 scan s",
                   "3 redeliver s", "4 replay s", "replay ev/s", "1 / 4", "max RSS MiB"):
        table.add_column(column, justify="left" if column == "backend" else "right")
    for r in results:
        table.add_row(r.backend, f"{r.customers} x {r.months}", f"{r.events:,}",
                      f"{r.deliveries:,}", f"{r.baseline_s:.3f}", f"{r.scan_s:.3f}",
                      f"{r.redeliver_s:.2f}", f"{r.replay_s:.2f}",
                      f"{r.events / r.replay_s:,.0f}", f"{r.baseline_s / r.replay_s:.4f}",
                      f"{r.max_rss_mib:,.0f}")
    console.print(table)
    console.print("1 / 4: the plain read's time as a share of the replay's. Target: replay --all "
                  "of a generated year of 10,000 customers in <= 60 s; at the rate measured, "
                  "scaled linearly in customers and months:")
    for r in results:
        scaled = r.replay_s * 10_000 / r.customers * 12 / r.months
        console.print(f"  {r.backend} {r.customers} x {r.months}: about {scaled:,.0f} s at "
                      f"10,000 x 12 (60 s is {60 / scaled:.2f} of it)")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", default="20,40",
                        help="comma-separated company sizes; default 20,40")
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--synthetic", default="100000",
                        help="comma-separated sizes of figure 5's synthetic log; 0: none")
    parser.add_argument("--tmpdir", type=Path, default=None)
    parser.add_argument("--backends", default=",".join(backends.BACKENDS))
    args = parser.parse_args(argv)
    args.customers = [int(n) for n in args.customers.split(",") if n.strip() and int(n)]
    args.synthetic = [int(n) for n in args.synthetic.split(",") if n.strip() and int(n)]
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    return args


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    console, say = backends.make_console()
    notes = backends.machine_notes()
    with tempfile.TemporaryDirectory(dir=args.tmpdir, prefix="finsync-bench-replay-") as tmp:
        workdir = Path(tmp)

        def run(backend: backends.Backend) -> tuple[list[Result], list[Scale]]:
            return ([measure(backend, n, args.months, args.seed, workdir, say)
                     for n in args.customers],
                    [measure_scale(backend, n, workdir, say) for n in args.synthetic])

        per_backend = backends.run_backends(args.backends, workdir, run, notes, say,
                                            sqlite_prefix="replay", unit="measurement")
    if args.customers:
        report(console, [r for results, _ in per_backend for r in results])
    if args.synthetic:
        report_scale(console, [s for _, scales in per_backend for s in scales])
    backends.print_grids(console, [("machine", notes)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
