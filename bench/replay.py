#!/usr/bin/env python3
"""`replay --all` of a generated company, and the generator's own throughput.

A benchmark, not a test: it prints figures and checks only that each run did the work it
reports (every event replayed, every delivery done again, the books unchanged).

    .venv/bin/python bench/replay.py [--customers 20,40] [--months 12] [--seed 1]
                                     [--backends sqlite,postgresql]

Per backend and company size, on a fresh database:

0. generate: `finsync generate`'s work (`finsync.generator.run.generate`), N customers over
   M months, every month closed; events/s and billing commands/s.
1. baseline, the limit: a plain keyset-paged read of the same event rows (every column, in
   pages of the replay's size, one transaction per page), nothing done with them.
2. replay scan: `Hub.replay(everything)`: the log streamed in pages, the deliveries of each
   page looked up, any missing one enqueued, all sent again (one update per page).
3. re-delivery: `Hub.run_until_idle()` until every delivery is done again; each target
   answers the known idempotency key with its first receipt.
4. replay --all = 2 + 3, what `finsync replay --all` does; events/s and the ratio of the
   baseline's time to it.

See bench/README.md.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import backends
from rich.table import Table as RichTable
from sqlalchemy import select

from finsync.bootstrap import build_finance, build_ledger_service
from finsync.config import DEFAULT_CONFIG, FinsyncConfig, parse_config
from finsync.domain.status import EventStatus
from finsync.generator.run import Request, generate
from finsync.hub.replay import BATCH_SIZE, ReplayFilter
from finsync.storage.db import make_engine
from finsync.storage.schema import events


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
    """Figure 1: every accepted event row, paged by position as the replay pages."""
    engine = make_engine(url)
    rows, after = 0, 0
    start = time.perf_counter()
    while True:
        with engine.connect() as conn, conn.begin():
            page = conn.execute(select(events).where(
                events.c.status == EventStatus.ACCEPTED, events.c.position > after)
                .order_by(events.c.position).limit(BATCH_SIZE)).all()
        if not page:
            break
        rows += len(page)
        after = page[-1].position
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
    parser.add_argument("--tmpdir", type=Path, default=None)
    parser.add_argument("--backends", default=",".join(backends.BACKENDS))
    args = parser.parse_args(argv)
    args.customers = [int(n) for n in args.customers.split(",") if n.strip()]
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    return args


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    console, say = backends.make_console()
    notes = backends.machine_notes()
    with tempfile.TemporaryDirectory(dir=args.tmpdir, prefix="finsync-bench-replay-") as tmp:
        workdir = Path(tmp)

        def run(backend: backends.Backend) -> list[Result]:
            return [measure(backend, n, args.months, args.seed, workdir, say)
                    for n in args.customers]

        per_backend = backends.run_backends(args.backends, workdir, run, notes, say,
                                            sqlite_prefix="replay", unit="measurement")
    report(console, [r for results in per_backend for r in results])
    backends.print_grids(console, [("machine", notes)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
