#!/usr/bin/env python3
"""The hub pipeline end to end, intake → delivered to the embedded ledger, on SQLite and
PostgreSQL, against the bare batched insert of the very rows it wrote (issue 19).

A benchmark, not a test: it prints figures and asserts only that each run did the work it
claims (every event accepted, every delivery done, every row copied).

    .venv/bin/python bench/pipeline.py [--events N] [--backends sqlite,postgresql]
    .venv/bin/python bench/pipeline.py --rates 500,1000 --seconds 10 --profile

Figures, per backend (see bench/README.md):

1. pipeline: N on-account `payment.applied` envelopes stored with `Intake.store` (batches of
   500), then `Hub.run_until_idle()` until every delivery to the embedded ledger is done.
2. baseline, the limit: every row figure 1 wrote (raw events, events, deliveries,
   cross-references, milestones and the ledger's entries, lines and keys), read back and
   inserted into plain copies of their tables by bare SQLAlchemy executemany, one commit
   per 500 events' worth of rows. Figure 1 is shown as a share of it.
3. latency: a steady offered load of R events/s for S seconds, stored by a producer thread
   every 10 ms (one every 1/R s below 100/s) with `Hub.store` (which notifies the wake-up),
   while the pipeline thread of `finsync serve` (`hub_pipeline`) runs; event → posted
   latency is each delivery's `completed_at` minus its raw event's `received_at` (both the
   hub's clock), p50 and p99.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import math
import os
import pstats
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# bench/ is not a package: put this script's folder first on sys.path, so that the shared
# sibling modules import by name however the script is started.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import backends
import intake
from rich.console import Console
from rich.table import Table as RichTable
from sqlalchemy import Column, Engine, Index, MetaData, Table, func, insert, select

from finsync.bootstrap import Finance, build_finance
from finsync.config import DEFAULT_CONFIG, FinsyncConfig, parse_config
from finsync.connectors.embedded.ledger import EmbeddedLedger
from finsync.connectors.ports import Posting
from finsync.hub.pipeline import hub_pipeline
from finsync.storage import jsonutil
from finsync.storage.db import make_engine
from finsync.storage.raw_log import RawIn
from finsync.storage.schema import deliveries, events, metadata, raw_events
from finsync.systems.ledger import tables as ledger_tables

BATCH = 500  # Intake.store batch size, and the baseline's rows per commit (in events)
TARGETS = {"sqlite": 10_000.0, "postgresql": 5_000.0}  # events/s (issue 19)
TARGET_RATIO = 0.25  # of the baseline, PostgreSQL
TICK_S = 0.01  # the latency producer stores a micro-batch this often


def on_account(i: int) -> dict[str, Any]:
    """`bench/intake.py`'s payment envelope, on account (no invoice applied): the ledger
    books it without an open item to settle, so every one posts."""
    envelope = intake.payment_envelope(i)
    envelope["payload"]["payment"]["applications"] = []
    return envelope


def raw_items(n: int, start: int = 0) -> list[RawIn]:
    return [RawIn(intake.SOURCE, jsonutil.dumps(on_account(i)).encode(),
                  {"content-type": "application/json", "x-request-id": f"req-{i:07d}"},
                  "application/json") for i in range(start, start + n)]


def config_for(url: str, base_dir: Path) -> FinsyncConfig:
    """The packaged default configuration (embedded ledger, default routes and pumps) on
    the benchmark's database."""
    data = tomllib.loads(DEFAULT_CONFIG.read_text())
    data["hub"]["database_url"] = url
    config = parse_config(data, base_dir=base_dir)
    assert config.database_url == url, config.database_url
    return config


@dataclass
class Figure:
    events: int
    seconds: float
    phases: dict[str, float] = field(default_factory=dict)
    profile: str = ""

    @property
    def rate(self) -> float:
        return self.events / self.seconds


@dataclass
class Latency:
    rate: int
    seconds: float
    events: int
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass
class Results:
    backend: str
    pipeline: Figure | None = None
    baseline: Figure | None = None
    latencies: list[Latency] = field(default_factory=list)


# --------------------------------------------------------------------------------------
# Figure 1: the pipeline


def drained(finance: Finance, expected: int) -> bool:
    status = finance.hub.status()
    counts = status["deliveries"]
    return bool(status["raw_events"].get("received", 0) == 0
                and counts.get("done", 0) == expected
                and counts.get("pending", 0) + counts.get("in_flight", 0) == 0)


@contextmanager
def ledger_clock(phases: dict[str, float]) -> Iterator[None]:
    """Add the time spent inside `EmbeddedLedger.post_batch` (the ledger's own work) to
    `phases["ledger"]`, for this run only."""
    original = EmbeddedLedger.post_batch

    def timed(self: EmbeddedLedger, postings: Sequence[Posting]) -> Sequence[Any]:
        start = time.perf_counter()
        try:
            return original(self, postings)
        finally:
            phases["ledger"] += time.perf_counter() - start

    phases["ledger"] = 0.0
    setattr(EmbeddedLedger, "post_batch", timed)  # noqa: B010 - instrumentation only
    try:
        yield
    finally:
        setattr(EmbeddedLedger, "post_batch", original)  # noqa: B010


def measure_pipeline(url: str, workdir: Path, items: Sequence[RawIn],
                     profile: bool) -> tuple[Figure, Finance]:
    """Store every envelope, then drain the hub; returns the finance (still open) so that
    the baseline can read what it wrote."""
    phases: dict[str, float] = {}
    with ledger_clock(phases):
        figure, finance = _pipeline(url, workdir, items, profile)
    figure.phases.update(phases)
    return figure, finance


def _pipeline(url: str, workdir: Path, items: Sequence[RawIn],
              profile: bool) -> tuple[Figure, Finance]:
    finance = build_finance(config_for(url, workdir))
    hub = finance.hub
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    for batch in backends.chunks(items, BATCH):
        hub.intake.store(batch)
    stored = time.perf_counter()
    if profiler:
        profiler.enable()
    while True:
        summary = hub.run_until_idle()
        if summary.raw_processed == 0 and summary.deliveries_attempted == 0:
            break
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - start
    assert drained(finance, len(items)), finance.hub.status()
    text = ""
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
        text = out.getvalue()
    return Figure(len(items), elapsed, {"store": stored - start,
                                        "drain": elapsed - (stored - start)}, text), finance


# --------------------------------------------------------------------------------------
# Figure 2: the bare batched insert of the same rows


def written_tables(engine: Engine) -> list[Table]:
    """The hub's and the ledger's tables that hold rows (in dependency order)."""
    tables = [*metadata.sorted_tables, *ledger_tables.metadata.sorted_tables]
    with engine.connect() as conn:
        return [t for t in tables
                if conn.execute(select(func.count()).select_from(t)).scalar_one() > 0]


def measure_baseline(engine: Engine, events_n: int, before: dict[str, int]) -> Figure:
    """Every row the pipeline added, re-inserted bare into plain copies of its tables: one
    transaction per 500 events' worth, holding that share of every table's rows."""
    copies = MetaData()
    loads: list[tuple[Table, list[dict[str, Any]]]] = []
    with engine.connect() as conn:
        for table in written_tables(engine):
            if before.get(table.name, 0):
                continue  # set-up rows (accounts, periods): not the pipeline's
            rows = [dict(r) for r in conn.execute(select(table)).mappings()]
            loads.append((plain_copy(table, copies), rows))
    copies.create_all(engine)
    commits = max(1, math.ceil(events_n / BATCH))
    start = time.perf_counter()
    for k in range(commits):
        with engine.begin() as conn:
            for table, rows in loads:
                share = math.ceil(len(rows) / commits)
                part = rows[k * share:(k + 1) * share]
                if part:
                    conn.execute(insert(table), part)
    elapsed = time.perf_counter() - start
    with engine.connect() as conn:
        for table, rows in loads:
            stored = conn.execute(select(func.count()).select_from(table)).scalar_one()
            assert stored == len(rows), f"{table.name}: {stored} of {len(rows)}"
    phases = {table.name.removeprefix("bench_plain_"): float(len(rows)) for table, rows in loads}
    return Figure(events_n, elapsed, phases)


def plain_copy(table: Table, into: MetaData) -> Table:
    """`table`'s columns, types, primary key and indexes (numbered names, which stay
    within PostgreSQL's 63 characters), under `bench_plain_<name>`."""
    name = f"bench_plain_{table.name}"
    copy = Table(name, into, *(
        Column(c.name, c.type, nullable=c.nullable, primary_key=c.primary_key,
               autoincrement=c.autoincrement) for c in table.columns))
    for number, index in enumerate(table.indexes):
        Index(f"ix_bp_{number}_{table.name}"[:63], *(copy.c[c.name] for c in index.columns))
    return copy


def row_counts(engine: Engine) -> dict[str, int]:
    tables = [*metadata.sorted_tables, *ledger_tables.metadata.sorted_tables]
    with engine.connect() as conn:
        return {t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                for t in tables}


# --------------------------------------------------------------------------------------
# Figure 3: latency under a steady load


def measure_latency(url: str, workdir: Path, rate: int, seconds: float) -> Latency:
    finance = build_finance(config_for(url, workdir))
    hub = finance.hub
    pipeline = hub_pipeline(hub, interval_s=1.0)
    per_tick = max(1, round(rate * TICK_S))
    tick_s = per_tick / rate  # TICK_S, or longer below 100 events/s
    ticks = int(seconds / tick_s)
    items = raw_items(per_tick * ticks)
    total = len(items)
    pipeline.start()
    try:
        start = time.monotonic()
        for k in range(ticks):
            pause = start + k * tick_s - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            part = items[k * per_tick:(k + 1) * per_tick]
            hub.store(intake.SOURCE, [i.body for i in part], dict(part[0].headers))
        deadline = time.monotonic() + 120
        while not drained(finance, total):
            if time.monotonic() > deadline:
                raise RuntimeError(f"not drained: {hub.status()}")
            time.sleep(0.05)
    finally:
        pipeline.stop()
    with finance.hub.engine.connect() as conn:
        rows = conn.execute(
            select(deliveries.c.completed_at, raw_events.c.received_at)
            .join(events, events.c.event_id == deliveries.c.event_id)
            .join(raw_events, raw_events.c.id == events.c.raw_event_id)).all()
    finance.dispose()
    lags = sorted((done - received).total_seconds() * 1000 for done, received in rows)
    assert len(lags) == total, f"{len(lags)} latencies for {total} events"
    return Latency(rate, seconds, total, _quantile(lags, 0.50), _quantile(lags, 0.99),
                   lags[-1])


def _quantile(values: Sequence[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


# --------------------------------------------------------------------------------------
# Running and reporting


def run_backend(backend: backends.Backend, workdir: Path, args: argparse.Namespace,
                say: Callable[[str], None]) -> Results:
    results = Results(backend.name)
    items = raw_items(args.events)
    counter = 0

    def scratch() -> Path:
        nonlocal counter
        counter += 1
        path = workdir / f"{backend.name}-{counter}"
        path.mkdir()
        return path

    with backend.fresh() as url:
        engine = make_engine(url)
        before = {}
        try:
            # Set-up rows (the ledger's chart, periods) are made by building the finance.
            build_finance(config_for(url, scratch())).dispose()
            before = row_counts(engine)
        finally:
            engine.dispose()
        figure, finance = measure_pipeline(url, scratch(), items, args.profile)
        results.pipeline = figure
        say(f"{backend.name}: pipeline {figure.rate:,.0f} events/s")
        try:
            backend.settle()
            results.baseline = measure_baseline(finance.hub.engine, len(items), before)
        finally:
            finance.dispose()
        say(f"{backend.name}: bare insert of the same rows {results.baseline.rate:,.0f} "
            "events/s")
    for rate in args.rates:
        with backend.fresh() as url:
            latency = measure_latency(url, scratch(), rate, args.seconds)
        results.latencies.append(latency)
        say(f"{backend.name}: {rate}/s offered: p50 {latency.p50_ms:.1f} ms, "
            f"p99 {latency.p99_ms:.1f} ms")
    return results


def report(console: Console, all_results: Sequence[Results], notes: list[backends.Note],
           events_n: int) -> None:
    table = RichTable(title=f"Pipeline, intake → delivered to the embedded ledger "
                            f"({events_n:,} events)")
    for name, justify in (("backend", "left"), ("figure", "left"), ("s", "right"),
                          ("events/s", "right"), ("vs baseline", "right"),
                          ("target", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in all_results:
        assert r.pipeline is not None and r.baseline is not None
        ratio = r.pipeline.rate / r.baseline.rate
        target = TARGETS[r.backend]
        wanted = f"≥ {target:,.0f}/s"
        met = r.pipeline.rate >= target
        if r.backend == "postgresql":
            wanted += f" and ≥ {TARGET_RATIO:.0%}"
            met = met and ratio >= TARGET_RATIO
        table.add_row(r.backend, "1 pipeline", f"{r.pipeline.seconds:.2f}",
                      f"{r.pipeline.rate:,.0f}", f"{ratio:.1%}",
                      f"{wanted}: {'met' if met else 'NOT met'}")
        table.add_row("", "2 bare insert, same rows", f"{r.baseline.seconds:.2f}",
                      f"{r.baseline.rate:,.0f}", "100%", "the limit")
        for lat in r.latencies:
            table.add_row("", f"3 latency at {lat.rate:,}/s for {lat.seconds:g} s",
                          "", f"{lat.events:,} events", "",
                          f"p50 {lat.p50_ms:.1f} ms, p99 {lat.p99_ms:.1f} ms, "
                          f"max {lat.max_ms:.1f} ms")
    console.print(table)
    for r in all_results:
        assert r.pipeline is not None and r.baseline is not None
        phases = r.pipeline.phases
        rows = ", ".join(f"{name} {int(n):,}" for name, n in r.baseline.phases.items())
        hub_s = r.pipeline.seconds - phases["ledger"]
        notes.append((f"{r.backend} split", f"store {phases['store']:.2f} s, drain "
                      f"{phases['drain']:.2f} s, of which inside the ledger's post_batch "
                      f"{phases['ledger']:.2f} s; the hub's own part {hub_s:.2f} s = "
                      f"{r.pipeline.events / hub_s:,.0f} events/s; rows copied for the "
                      f"baseline: {rows}"))
    backends.print_grids(console, [("Notes", notes)])
    for r in all_results:
        if r.pipeline is not None and r.pipeline.profile:
            console.print(f"[bold]{r.backend}: profile of the drain (cProfile)[/bold]")
            console.print(r.pipeline.profile, highlight=False, markup=False)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events in figures 1-2")
    parser.add_argument("--backends", default=",".join(backends.BACKENDS))
    parser.add_argument("--rates", default="500,1000",
                        help="offered loads for figure 3, events/s (empty: skip it)")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="length of each figure 3 run")
    parser.add_argument("--profile", action="store_true",
                        help="print cProfile's top entries for figure 1's drain")
    parser.add_argument("--tmpdir", default=None, help="where SQLite files go")
    args = parser.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.rates = [int(r) for r in args.rates.split(",") if r.strip()]
    return args


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    console, say = backends.make_console()
    if os.environ.pop("FINSYNC_DATABASE_URL", None):
        say("note: FINSYNC_DATABASE_URL is ignored here (it would override the bench database)")
    notes = [
        *backends.machine_notes(),
        ("workload", f"{args.events:,} canonical on-account payment.applied envelopes, "
                     f"source {intake.SOURCE!r}, the packaged default configuration (embedded "
                     "ledger, default routes); a fresh database for every figure"),
    ]
    with tempfile.TemporaryDirectory(prefix="finsync-bench-", dir=args.tmpdir) as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()

        def run(backend: backends.Backend) -> Results:
            return run_backend(backend, workdir, args, say)

        all_results = backends.run_backends(args.backends, workdir, run, notes, say,
                                            sqlite_prefix="pipeline", unit="figure")
        notes.append(("wall time", f"{time.perf_counter() - started:.1f} s in all"))
    if not all_results:
        say("nothing measured")
        return 1
    report(console, all_results, notes, args.events)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
