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
   delivery to the default config's filedrop ledger is done; and the same with the routes
   emptied (the hub's own mapping, dedupe, sequencing and acceptance cost only).

See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import sqlalchemy
from rich.console import Console, JustifyMethod
from rich.markup import escape
from rich.table import Table as RichTable
from sqlalchemy import (
    Column,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError

from finsync.bootstrap import build_hub
from finsync.config import DEFAULT_CONFIG, FinsyncConfig, parse_config
from finsync.connectors.filedrop.ledger import FileDropLedger
from finsync.connectors.ports import DeliveryContext, Receipt
from finsync.domain.payment import Payment
from finsync.hub.service import Hub
from finsync.storage import jsonutil
from finsync.storage.db import make_engine, normalise_url
from finsync.storage.migrate import upgrade
from finsync.storage.raw_log import RawIn
from finsync.storage.schema import raw_events
from finsync.storage.types import Serial, UtcDateTime

BATCH = 500  # Intake.store batch size, and the baseline's executemany/commit size
SOURCE = "canonical"  # the default config's intake source (CanonicalMapper)
LEDGER = "ledger"  # the default config's filedrop ledger system
PG_URL_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
TARGET_RATIO = 0.5
OCCURRED_AT = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)

T = TypeVar("T")


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
        "causation_id": None, "idempotency_key": None,
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


def chunks(seq: Sequence[T], size: int) -> list[Sequence[T]]:
    return [seq[k:k + size] for k in range(0, len(seq), size)]


# A plain copy of raw_events: same columns, types and (status, id) index; only the names
# differ, so it can live in the hub's own database next to the real table.
plain_metadata = MetaData()
raw_events_plain = Table(
    "bench_raw_events_plain", plain_metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("content_type", String(128)),
    Column("headers", Text, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("status", String(16), nullable=False),
    Column("error_code", String(64)),
    Column("error_detail", Text),
    Column("processed_at", UtcDateTime),
    Index("ix_bench_raw_events_plain_status_id", "status", "id"),
)
if [c.name for c in raw_events_plain.columns] != [c.name for c in raw_events.columns]:
    raise SystemExit("bench: raw_events changed shape; update raw_events_plain to match")


# --------------------------------------------------------------------------------------
# Backends: each hands out an empty database for one measurement


class Backend(Protocol):
    name: str

    def fresh(self) -> AbstractContextManager[str]: ...  # yields an empty database's URL

    def notes(self) -> list[tuple[str, str]]: ...

    def close(self) -> None: ...


class SqliteBackend:
    """A new database file per measurement in a temp directory (WAL, as make_engine sets)."""

    name = "sqlite"

    def __init__(self, workdir: Path) -> None:
        self._dir, self._count = workdir, 0
        self._pragmas: dict[str, str] = {}

    @contextmanager
    def fresh(self) -> Iterator[str]:
        self._count += 1
        path = self._dir / f"finsync-{self._count}.db"
        url = f"sqlite:///{path}"
        if not self._pragmas:
            engine = make_engine(url)
            with engine.connect() as conn:
                for pragma in ("journal_mode", "synchronous"):
                    value = conn.exec_driver_sql(f"PRAGMA {pragma}").scalar()
                    self._pragmas[pragma] = str(value)
            engine.dispose()
        try:
            yield url
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)

    def notes(self) -> list[tuple[str, str]]:
        sync = {"0": "OFF", "1": "NORMAL", "2": "FULL", "3": "EXTRA"}
        return [("SQLite", f"{sqlite3.sqlite_version}, journal_mode="
                 f"{self._pragmas.get('journal_mode', '?')}, synchronous="
                 f"{sync.get(self._pragmas.get('synchronous', ''), '?')}; "
                 f"file in {self._dir} ({filesystem_of(self._dir)})")]

    def close(self) -> None:
        pass


class PostgresBackend:
    """`CREATE DATABASE finsync_bench_<pid>` for the run; a fresh `public` schema per
    measurement; the database is dropped at the end."""

    name = "postgresql"

    def __init__(self, admin_url: str) -> None:
        self._admin = create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT",
                                    connect_args={"connect_timeout": 5})
        self._dbname = f"finsync_bench_{os.getpid()}"
        self._settings: dict[str, str] = {}
        self._checkpoint = "not tried"
        try:
            with self._admin.connect() as conn:
                for name in ("server_version", "fsync", "synchronous_commit",
                             "wal_sync_method", "shared_buffers"):
                    self._settings[name] = str(conn.exec_driver_sql(f"SHOW {name}").scalar())
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self._dbname}"'))
                conn.execute(text(f'CREATE DATABASE "{self._dbname}"'))
        except DBAPIError:
            self._admin.dispose()
            raise
        self.url = self._admin.url.set(database=self._dbname).render_as_string(
            hide_password=False)
        self._db = create_engine(self.url, isolation_level="AUTOCOMMIT")

    @contextmanager
    def fresh(self) -> Iterator[str]:
        with self._db.connect() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
            try:  # start every measurement with no dirty buffers from the last one
                conn.execute(text("CHECKPOINT"))
                self._checkpoint = "before each measurement"
            except DBAPIError:
                self._checkpoint = "not permitted (no CHECKPOINT between measurements)"
        yield self.url

    def notes(self) -> list[tuple[str, str]]:
        s = self._settings
        return [("PostgreSQL", f"{s['server_version']} at {self._admin.url.host}:"
                 f"{self._admin.url.port}; fsync={s['fsync']}, synchronous_commit="
                 f"{s['synchronous_commit']}, wal_sync_method={s['wal_sync_method']}, "
                 f"shared_buffers={s['shared_buffers']}; CHECKPOINT {self._checkpoint}; "
                 f"database {self._dbname} (dropped at the end)")]

    def close(self) -> None:
        self._db.dispose()
        with self._admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self._dbname}" WITH (FORCE)'))
        self._admin.dispose()


def filesystem_of(path: Path) -> str:
    """The filesystem type holding `path` (Linux, best effort): fsync on tmpfs is free."""
    try:
        mounts = [line.split()[1:3] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return "filesystem unknown"
    resolved = str(path.resolve())
    best = max((m for m in mounts if resolved == m[0] or resolved.startswith(m[0].rstrip("/")
                                                                            + "/")),
               key=lambda m: len(m[0]), default=None)
    return "filesystem unknown" if best is None else f"{best[1]} at {best[0]}"


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
        plain_metadata.create_all(engine)
        batches = chunks(baseline_rows(items, datetime.now(UTC)), BATCH)
        statement = insert(raw_events_plain)
        start = time.perf_counter()
        for batch in batches:
            with engine.begin() as conn:
                conn.execute(statement, batch)
        elapsed = time.perf_counter() - start
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
        batches = chunks(items, BATCH)
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
            batches = chunks(items, BATCH)
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


def run_backend(backend: Backend, workdir: Path, items: Sequence[RawIn], repeat: int,
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
     "every delivery is done, to the default config's filedrop ledger, which flocks, "
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
    for title, rows in (("figures", LEGEND), ("machine", tuple(notes))):
        grid = RichTable(title=title, title_justify="left", show_header=False, box=None)
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        for key, value in rows:
            grid.add_row(escape(key), escape(value))
        console.print(grid)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=5000, help="events per measurement")
    parser.add_argument("--backends", default="sqlite,postgresql",
                        help="comma-separated: sqlite, postgresql")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of figures 1 and 2 (the median is shown); default 3")
    parser.add_argument("--tmpdir", type=Path, default=None,
                        help="where SQLite files and the ledger go (default: the system temp)")
    args = parser.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(args.backends) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    if args.events < 1 or args.repeat < 1:
        parser.error("--events and --repeat must be positive")
    return args


def open_backend(name: str, workdir: Path) -> Backend | str:
    """The backend, or why it is skipped."""
    if name == "sqlite":
        return SqliteBackend(workdir)
    url = os.environ.get("FINSYNC_BENCH_PG_URL", PG_URL_DEFAULT)
    try:
        return PostgresBackend(url)
    except DBAPIError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        return f"skipped: {reason} (FINSYNC_BENCH_PG_URL={url})"


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    console = Console(width=shutil.get_terminal_size((120, 24)).columns)

    def say(message: str) -> None:
        console.print(message, highlight=False)

    if os.environ.pop("FINSYNC_DATABASE_URL", None):
        say("note: FINSYNC_DATABASE_URL is ignored here (it would override the bench database)")
    items = raw_items(args.events)
    notes: list[tuple[str, str]] = [
        ("Python", f"{platform.python_implementation()} {platform.python_version()} "
                   f"on {platform.platform()}"),
        ("CPU", f"{os.cpu_count()} logical CPUs, {platform.processor() or platform.machine()}"),
        ("SQLAlchemy", sqlalchemy.__version__),
        ("workload", f"{args.events:,} canonical payment.applied envelopes "
                     f"(~{sum(len(i.body) for i in items) // len(items)} B each), source "
                     f"{SOURCE!r}; fresh tables for every measurement"),
        ("ledger", "the default config's filedrop ledger, in the temp dir: flock + append + "
                   "fsync for every document"),
    ]
    all_results: list[Results] = []
    with tempfile.TemporaryDirectory(prefix="finsync-bench-", dir=args.tmpdir) as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        for name in args.backends:
            backend = open_backend(name, workdir)
            if isinstance(backend, str):
                say(f"[yellow]PostgreSQL {escape(backend)}[/yellow]")
                notes.append(("PostgreSQL", backend))
                continue
            try:
                all_results.append(run_backend(backend, workdir, items, args.repeat, say))
                notes.extend(backend.notes())
            finally:
                backend.close()
        if "sqlite" not in args.backends:
            notes.append(("SQLite", f"{sqlite3.sqlite_version} (not measured)"))
            notes.append(("temp dir", f"{workdir} ({filesystem_of(workdir)})"))
        notes.append(("wall time", f"{time.perf_counter() - started:.1f} s in all"))
    if not all_results:
        say("nothing measured")
        return 1
    report(console, all_results, notes, args.events)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
