#!/usr/bin/env python3
"""Intake and pipeline throughput of the finsync hub on SQLite and PostgreSQL.

A benchmark, not a test: it prints figures and asserts only that each run did the work it
claims (every row stored, every event accepted, every delivery done).

    .venv/bin/python bench/intake.py [--events N] [--backends sqlite,postgresql]

Figures, per backend, each measured on fresh tables:

1. raw baseline: the rows `Intake.store` writes, inserted into a plain copy of `raw_events`
   by a bare SQLAlchemy executemany, one commit per batch (the limit);
2. durable intake: `Intake.store`, one committed batch of 500 at a time;
3. pipeline: N `payment.applied` envelopes stored, then `Hub.run_until_idle()` until every
   delivery to a file-drop ledger on the default routes is done; and the same with the routes
   emptied (the hub's own mapping, dedupe, sequencing and acceptance cost only).

See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# bench/ is not a package: put this script's folder first on sys.path, so that the shared
# sibling module backends.py imports by name however the script is started.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import backends
from rich.console import Console, JustifyMethod
from rich.table import Table as RichTable
from sqlalchemy import (
    func,
    select,
)

from finsync.bootstrap import build_hub
from finsync.config import DEFAULT_CONFIG, FinsyncConfig, parse_config
from finsync.connectors.filedrop.ledger import FileDropLedger
from finsync.connectors.ports import DeliveryContext, Receipt
from finsync.domain.payment import Payment
from finsync.hub.service import Hub
from finsync.storage import jsonutil
from finsync.storage.db import make_engine
from finsync.storage.migrate import upgrade
from finsync.storage.raw_log import RawIn
from finsync.storage.schema import raw_events

BATCH = 500  # Intake.store batch size, and the baseline's executemany/commit size
SOURCE = "canonical"  # the default config's intake source (CanonicalMapper)
LEDGER = "ledger"  # a file-drop ledger on the default routes system
TARGET_RATIO = 0.5
OCCURRED_AT = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)


# --------------------------------------------------------------------------------------
# Workload


def payment_envelope(i: int) -> dict[str, Any]:
    """One canonical `payment.applied` envelope from billing, with ids unique to `i`."""
    pay, inv = f"pay_{i:07d}", f"inv_{i:07d}"
    amount = f"{100 + i % 900}.{i % 100:02d}"
    return {
        "type": "payment.applied", "schema_version": 1,
        "source": "billing", "source_event_id": f"{pay}-applied",
        "occurred_at": OCCURRED_AT.isoformat(), "correlation_id": f"corr_{i:07d}",
        "causation_id": None, "business_key": None,
        "aggregate": {"type": "payment", "id": pay, "version": None},
        "payload": {"payment": {
            "id": pay, "customer_id": f"cus_{i % 1000:04d}", "legal_entity": "le_us",
            "currency": "USD", "amount": amount, "received_on": "2026-01-15",
            "applications": [{"invoice_id": inv, "amount": amount}],
        }},
    }


def raw_items(n: int) -> list[RawIn]:
    """What a source posts: one envelope per raw event, JSON body, a couple of headers."""
    return [RawIn(SOURCE, jsonutil.dumps(payment_envelope(i)).encode(),
                  {"content-type": "application/json", "x-request-id": f"req-{i:07d}"},
                  "application/json")
            for i in range(n)]


def baseline_rows(items: Sequence[RawIn], received_at: datetime) -> list[dict[str, Any]]:
    """The very column values `raw_log.append` builds for `raw_events`."""
    return [{"source": i.source, "received_at": received_at, "content_type": i.content_type,
             "headers": jsonutil.dumps(dict(i.headers)), "body": i.body, "status": "received"}
            for i in items]


raw_events_plain = backends.plain_copy(raw_events, "bench_raw_events_plain")


# --------------------------------------------------------------------------------------
# Measurements


@dataclass(frozen=True, slots=True)
class Figure:
    events: int
    seconds: float
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def hub_config(url: str, base_dir: Path, *, routes: bool) -> FinsyncConfig:
    data = tomllib.loads(DEFAULT_CONFIG.read_text())
    data["hub"]["database_url"] = url
    # The hub's own cost is measured against a cheap, durable sink: the file-drop ledger
    # (the embedded ledger has its own benchmark, bench/ledger.py).
    data["systems"]["ledger"] = {"role": "ledger", "connector": "filedrop",
                                 "directory": "exports"}
    if not routes:
        data["routes"] = {}
    config = parse_config(data, base_dir=base_dir)
    assert config.database_url == url, config.database_url
    return config


def measure_baseline(url: str, items: Sequence[RawIn]) -> Figure:
    """Bare executemany of the same rows into a plain copy of raw_events, commit per batch."""
    engine = make_engine(url)
    try:
        upgrade(engine)  # the hub's database, with the plain table beside raw_events
        raw_events_plain.create(engine)
        batches = backends.chunks(baseline_rows(items, datetime.now(UTC)), BATCH)
        elapsed = backends.insert_batches(engine, raw_events_plain, batches)
        with engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(raw_events_plain)).scalar()
        assert stored == len(items), f"baseline stored {stored} of {len(items)}"
    finally:
        engine.dispose()
    return Figure(len(items), elapsed)


def measure_intake(url: str, workdir: Path, items: Sequence[RawIn]) -> Figure:
    """`Intake.store` (raw_log.append + commit) one batch of 500 at a time."""
    hub = build_hub(hub_config(url, workdir, routes=True))
    try:
        batches = backends.chunks(items, BATCH)
        start = time.perf_counter()
        for batch in batches:
            hub.intake.store(batch)
        elapsed = time.perf_counter() - start
        stored = hub.status()["raw_events"]
        assert stored == {"received": len(items)}, f"intake stored {stored}"
    finally:
        hub.engine.dispose()
    return Figure(len(items), elapsed)


def drain(hub: Hub, expected: int, *, deliveries: bool, limit_s: float = 600) -> None:
    """`run_until_idle` until every raw event is processed and every delivery is done."""
    deadline = time.perf_counter() + limit_s
    while True:
        summary = hub.run_until_idle()
        status = hub.status()
        counts = status["deliveries"]
        if status["raw_events"].get("received", 0) == 0 and \
                counts.get("pending", 0) + counts.get("in_flight", 0) == 0:
            break
        if time.perf_counter() > deadline:
            raise RuntimeError(f"pipeline did not drain in {limit_s} s: {status}")
        if summary.raw_processed == 0 and summary.deliveries_attempted == 0:
            time.sleep(0.05)  # a retry is waiting for its backoff
    assert status["events"] == {"accepted": expected}, f"events: {status['events']}"
    wanted = {"done": expected} if deliveries else {}
    assert counts == wanted, f"deliveries: {counts} (exceptions: {hub.exceptions()[:3]})"


@contextmanager
def ledger_clock(phases: dict[str, float]) -> Iterator[None]:
    """Add the time spent inside `FileDropLedger.post_payment` (flock, catch-up read, append,
    fsync) to `phases["ledger"]`; active while the hub is built (targets bind the method)."""
    original = FileDropLedger.post_payment

    def timed(self: FileDropLedger, payment: Payment, ctx: DeliveryContext) -> Receipt:
        start = time.perf_counter()
        try:
            return original(self, payment, ctx)
        finally:
            phases["ledger"] += time.perf_counter() - start

    phases["ledger"] = 0.0
    setattr(FileDropLedger, "post_payment", timed)  # noqa: B010 - instrumentation only
    try:
        yield
    finally:
        setattr(FileDropLedger, "post_payment", original)  # noqa: B010


def measure_pipeline(url: str, workdir: Path, items: Sequence[RawIn], *,
                     routes: bool) -> Figure:
    """Intake → delivered: store every envelope, then drain the hub."""
    config = hub_config(url, workdir, routes=routes)
    phases: dict[str, float] = {}
    with ledger_clock(phases):
        hub = build_hub(config)
        try:
            batches = backends.chunks(items, BATCH)
            start = time.perf_counter()
            for batch in batches:
                hub.intake.store(batch)
            stored = time.perf_counter()
            drain(hub, len(items), deliveries=routes)
            elapsed = time.perf_counter() - start
        finally:
            hub.engine.dispose()
    ledger = config.resolve(config.systems[LEDGER].directory) / f"{LEDGER}.jsonl"
    if routes:
        with ledger.open("rb") as handle:
            lines = sum(1 for _ in handle)
        assert lines == len(items), f"ledger holds {lines} documents, not {len(items)}"
    else:
        assert not ledger.exists(), "routes were emptied, yet the ledger was written"
    phases.update(store=stored - start, drain=elapsed - (stored - start))
    return Figure(len(items), elapsed, phases)


# --------------------------------------------------------------------------------------
# Running and reporting


@dataclass
class Results:
    backend: str
    baseline: list[Figure] = field(default_factory=list)
    intake: list[Figure] = field(default_factory=list)
    pipeline: Figure | None = None
    hub_only: Figure | None = None


def median_rate(figures: Sequence[Figure]) -> float:
    return statistics.median(f.rate for f in figures)


def run_backend(backend: backends.Backend, workdir: Path, items: Sequence[RawIn], repeat: int,
                say: Callable[[str], None]) -> Results:
    results = Results(backend.name)
    counter = 0

    def scratch() -> Path:
        nonlocal counter
        counter += 1
        path = workdir / f"{backend.name}-{counter}"
        path.mkdir()
        return path

    for round_ in range(1, repeat + 1):  # interleaved, so drift hits both alike
        with backend.fresh() as url:
            results.baseline.append(measure_baseline(url, items))
        with backend.fresh() as url:
            results.intake.append(measure_intake(url, scratch(), items))
        say(f"{backend.name}: round {round_}/{repeat}: baseline "
            f"{results.baseline[-1].rate:,.0f}/s, intake {results.intake[-1].rate:,.0f}/s")
    with backend.fresh() as url:
        results.pipeline = measure_pipeline(url, scratch(), items, routes=True)
    say(f"{backend.name}: pipeline to ledger {results.pipeline.rate:,.0f}/s")
    with backend.fresh() as url:
        results.hub_only = measure_pipeline(url, scratch(), items, routes=False)
    say(f"{backend.name}: pipeline, routes emptied {results.hub_only.rate:,.0f}/s")
    return results


def spread(figures: Sequence[Figure]) -> str:
    rates = sorted(f.rate for f in figures)
    if len(rates) == 1:
        return "1 run"
    return f"median of {len(rates)} runs, {rates[0]:,.0f} to {rates[-1]:,.0f}/s"


LEGEND = (
    ("1 raw baseline", "the rows Intake.store writes (source, received_at, content_type, "
     "headers JSON, body, status), pre-built, inserted into a plain copy of raw_events by a "
     f"bare SQLAlchemy executemany, one commit per {BATCH}: the limit"),
    ("2 durable intake", f"Intake.store, {BATCH} events per call, each call one committed "
     "transaction (raw_log.append: one executemany INSERT, no ids returned)"),
    ("3a pipeline", "N payment.applied envelopes stored, then Hub.run_until_idle() until "
     "every delivery is done, to a file-drop ledger on the default routes, which flocks, "
     "appends and fsyncs each document; 'ledger' is the time inside the connector"),
    ("3b no routes", "the same with [routes] emptied: the hub's own mapping, dedupe, "
     "sequencing and acceptance cost, no deliveries"),
    ("delivery share", "1 - t(3b)/t(3a): the part of end-to-end time spent delivering "
     "(outbox claim, event load, connector call, completion commit)"),
)


def report(console: Console, all_results: Sequence[Results], notes: list[tuple[str, str]],
           n: int) -> None:
    table = RichTable(title=f"finsync intake benchmark: {n:,} events per measurement, "
                            f"batches of {BATCH}")
    columns: list[tuple[str, JustifyMethod]] = [
        ("backend", "left"), ("figure", "left"), ("seconds", "right"),
        ("events/s", "right"), ("vs 1", "right"), ("notes", "left")]
    for header, justify in columns:
        table.add_column(header, justify=justify)
    for r in all_results:
        base = median_rate(r.baseline)
        intake = median_rate(r.intake)
        ratio = intake / base
        verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
        table.add_row(r.backend, "1 raw baseline",
                      f"{statistics.median(f.seconds for f in r.baseline):.3f}",
                      f"{base:,.0f}", "100%", spread(r.baseline))
        table.add_row("", "2 durable intake",
                      f"{statistics.median(f.seconds for f in r.intake):.3f}",
                      f"{intake:,.0f}", f"{ratio:.0%}",
                      f"target ≥ {TARGET_RATIO:.0%}: {verdict}; {spread(r.intake)}")
        if r.pipeline is not None and r.hub_only is not None:
            p, h = r.pipeline, r.hub_only
            share = 1 - h.seconds / p.seconds
            table.add_row("", "3a pipeline → ledger", f"{p.seconds:.2f}", f"{p.rate:,.0f}",
                          f"{p.rate / base:.1%}",
                          f"store {p.phases['store']:.2f} s, drain {p.phases['drain']:.2f} s "
                          f"(ledger {p.phases['ledger']:.2f} s); delivery share {share:.0%}")
            table.add_row("", "3b no routes", f"{h.seconds:.2f}", f"{h.rate:,.0f}",
                          f"{h.rate / base:.1%}",
                          f"store {h.phases['store']:.2f} s, drain {h.phases['drain']:.2f} s")
        table.add_section()
    console.print(table)
    backends.print_grids(console, (("figures", LEGEND), ("machine", tuple(notes))))


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=5000, help="events per measurement")
    backends.add_run_options(parser, repeat_figures="1 and 2")
    parser.add_argument("--tmpdir", type=Path, default=None,
                        help="where SQLite files and the ledger go (default: the system temp)")
    args = backends.parse_args(parser, argv)
    if args.events < 1 or args.repeat < 1:
        parser.error("--events and --repeat must be positive")
    return args


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    console, say = backends.make_console()
    if os.environ.pop("FINSYNC_DATABASE_URL", None):
        say("note: FINSYNC_DATABASE_URL is ignored here (it would override the bench database)")
    items = raw_items(args.events)
    notes = [
        *backends.machine_notes(),
        ("workload", f"{args.events:,} canonical payment.applied envelopes "
                     f"(~{sum(len(i.body) for i in items) // len(items)} B each), source "
                     f"{SOURCE!r}; fresh tables for every measurement"),
        ("ledger", "a file-drop ledger on the default routes, in the temp dir: flock + append + "
                   "fsync for every document"),
    ]
    with tempfile.TemporaryDirectory(prefix="finsync-bench-", dir=args.tmpdir) as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()

        def run(backend: backends.Backend) -> Results:
            return run_backend(backend, workdir, items, args.repeat, say)

        all_results = backends.run_backends(args.backends, workdir, run, notes, say,
                                            sqlite_prefix="finsync", unit="measurement")
        if "sqlite" not in args.backends:
            notes.append(("temp dir", f"{workdir} ({backends.filesystem_of(workdir)})"))
        notes.append(("wall time", f"{time.perf_counter() - started:.1f} s in all"))
    if not all_results:
        say("nothing measured")
        return 1
    report(console, all_results, notes, args.events)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
