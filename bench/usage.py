#!/usr/bin/env python3
"""Usage intake: durable meter events per second, against a raw insert of the same rows.

A benchmark, not a test: it prints figures and checks only that each run did the work it
claims (every meter event stored once, every total written).

    .venv/bin/python bench/usage.py [--events N] [--batch B] [--backends sqlite,postgresql]
                                    [--profile]

Figures, per backend, each on a fresh database:

1. raw baselines: the rows `usage_log.append` writes for N meter events, built before the
   clock starts, inserted into a plain copy of `usage_events` (same columns, primary key,
   unique key and index), one commit per batch of B:
   1a. by a bare SQLAlchemy executemany (as bench/intake.py's baseline);
   1b. by the driver's bulk path with no SQLAlchemy in between (COPY on PostgreSQL,
       `sqlite3` executemany on SQLite), the values already bound: the stricter limit;
2. durable usage intake: `UsageIntake.receive(source, body)` for N/B bodies of B meter
   events (JSON arrays, bytes built before the clock starts): each body checked against
   the source's limits, parsed, every item validated, stored with `ON CONFLICT DO NOTHING`
   on (source, event id) in one committed transaction; target ≥ 50,000 events/s and ≥ 50 %
   of figure 1 (both 1a and 1b are shown);
3. the same bodies sent again: every event a duplicate, nothing stored;
4. aggregation: one `UsageIntake.aggregate` run over the N events through April 1
   (billing's periods read for the 100 subscriptions waiting, claim, GROUP BY into totals
   per subscription, product and period), shown as events/s. The subscriptions are made in
   the embedded billing before the clock starts (monthly usage periods from January): one
   total per subscription, product and March, 300 in all.

See bench/README.md.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import tempfile
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import backends
from rich.table import Table as RichTable
from sqlalchemy import Engine, Table, UniqueConstraint, func, select

from finsync.bootstrap import build_billing_service, build_engine, build_usage
from finsync.config import DEFAULT_CONFIG, FinsyncConfig, parse_config
from finsync.domain.catalog import BillingFrequency
from finsync.domain.contract import ContractLine, SubscriptionContract
from finsync.domain.meter import MeterEvent
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount
from finsync.storage import usage_log
from finsync.storage.db import make_engine
from finsync.storage.migrate import upgrade
from finsync.systems.billing.handler import RegisterCustomer
from finsync.systems.billing.subscription import CreateSubscription

SOURCE = "metering"
TARGET_RATE = 50_000
TARGET_RATIO = 0.5
RECEIVED_AT = datetime(2026, 3, 31, 12, tzinfo=UTC)
SUBSCRIPTIONS = 100
PRODUCTS = ("prod_api_calls", "prod_storage_gb", "prod_usage_overage")


def meter_event(i: int) -> dict[str, Any]:
    """One meter event: 100 subscriptions, 3 products, spread over March 2026."""
    moment = datetime(2026, 3, 1, tzinfo=UTC) + timedelta(seconds=(i * 37) % (30 * 86_400))
    return {"id": f"evt_{i:09d}", "subscription": f"con_{i % SUBSCRIPTIONS:05d}",
            "product": PRODUCTS[i % len(PRODUCTS)], "quantity": 1 + i % 50,
            "timestamp": moment.isoformat().replace("+00:00", "Z")}


def baseline_rows(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """What `usage_log.append` writes for each event."""
    rows = []
    for e in events:
        moment = datetime.fromisoformat(e["timestamp"])
        parsed = MeterEvent(e["id"], e["subscription"], e["product"], e["quantity"], moment)
        rows.append({"source": SOURCE, "event_id": parsed.id,
                     "subscription_id": parsed.subscription_id,
                     "product_id": parsed.product_id, "quantity": parsed.quantity,
                     "occurred_at": parsed.occurred_at, "usage_day": parsed.usage_day,
                     "received_at": RECEIVED_AT})
    return rows


def plain_usage_events() -> Table:
    """`usage_events` under another name: the same columns, keys and indexes."""
    copy = backends.plain_copy(usage_log.usage_events, "bench_usage_events_plain")
    copy.append_constraint(UniqueConstraint("source", "event_id"))
    return copy


def config_for(url: str, base_dir: Path) -> FinsyncConfig:
    data = tomllib.loads(DEFAULT_CONFIG.read_text())
    data["hub"]["database_url"] = url
    config = parse_config(data, base_dir=base_dir)
    assert config.database_url == url, config.database_url
    return config


@dataclass(frozen=True, slots=True)
class Figure:
    events: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def measure_baseline(url: str, rows: Sequence[dict[str, Any]], batch: int) -> Figure:
    engine = make_engine(url)
    try:
        upgrade(engine)
        table = plain_usage_events()
        table.metadata.create_all(engine)
        seconds = backends.insert_batches(engine, table, backends.chunks(rows, batch))
        with engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(table)).scalar_one()
        assert stored == len(rows), (stored, len(rows))
        return Figure(len(rows), seconds)
    finally:
        engine.dispose()


def measure_driver_baseline(url: str, rows: Sequence[dict[str, Any]], batch: int) -> Figure:
    """The same rows by the driver's bulk path into the plain copy, values bound first."""
    engine = make_engine(url)
    try:
        upgrade(engine)
        table = plain_usage_events()
        table.metadata.create_all(engine)
        columns = list(rows[0])
        with engine.connect() as conn:
            processors = [table.c[c].type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
                          for c in columns]
        bound = [tuple(p(r[c]) if p else r[c] for p, c in zip(processors, columns, strict=True))
                 for r in rows]
        names = ", ".join(columns)
        with engine.connect() as conn:
            raw = conn.connection.driver_connection
            start = time.perf_counter()
            for chunk in backends.chunks(bound, batch):
                if engine.dialect.name == "postgresql":
                    statement = f"COPY {table.name} ({names}) FROM STDIN"
                    with raw.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
                        for row in chunk:
                            copy.write_row(row)
                    raw.commit()  # type: ignore[union-attr]
                else:
                    raw.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
                    raw.executemany(  # type: ignore[union-attr]
                        f"INSERT INTO {table.name} ({names}) VALUES "
                        f"({', '.join('?' for _ in columns)})", chunk)
                    raw.execute("COMMIT")  # type: ignore[union-attr]
            seconds = time.perf_counter() - start
        with engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(table)).scalar_one()
        assert stored == len(rows), (stored, len(rows))
        return Figure(len(rows), seconds)
    finally:
        engine.dispose()


def subscribe(config: FinsyncConfig, engine: Engine) -> None:
    """The bench's subscriptions in the embedded billing (monthly usage periods), so that
    aggregation totals per billing period."""
    service = build_billing_service(config, engine, lambda: RECEIVED_AT)
    start, end = date(2026, 1, 1), date(2027, 1, 1)
    for i in range(SUBSCRIPTIONS):
        customer = f"cus_{i:05d}"
        line = ContractLine("ln_overage", "prod_usage_overage", "price_usage_overage", 0,
                            Money(Decimal("0.002"), "USD"), start, end)
        contract = SubscriptionContract(f"con_{i:05d}", customer, "le_us", "USD", start, end,
                                        BillingFrequency.MONTHLY, (line,))
        service.execute(RegisterCustomer(CustomerAccount(customer, f"Customer {i}", "le_us",
                                                         "USD", "US")))
        service.execute(CreateSubscription(contract, f"ord_{i:05d}"))


@dataclass(frozen=True, slots=True)
class Results:
    backend: str
    baseline: Figure
    driver: Figure
    intake: Figure
    again: Figure
    aggregate: Figure
    totals: int
    profile: str = ""  # figure 2's cProfile (--profile)


def _top(profiler: cProfile.Profile) -> str:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(20)
    return out.getvalue()


def measure_usage(url: str, workdir: Path, bodies: Sequence[bytes], n: int,
                  baseline: Figure, profile: bool = False) -> Results:
    config = config_for(url, workdir)
    engine = build_engine(config)
    try:
        upgrade(engine)
        subscribe(config, engine)
        usage = build_usage(config, engine, lambda: RECEIVED_AT)
        # CPU time, not wall time: the machine is shared, and what is asked is where our
        # own work goes (the database's waits show as the driver calls' share).
        profiler = cProfile.Profile(time.process_time) if profile else None
        start = time.perf_counter()
        if profiler:
            profiler.enable()
        for body in bodies:
            usage.receive(SOURCE, body)
        if profiler:
            profiler.disable()
        intake = Figure(n, time.perf_counter() - start)
        assert usage.counts()["events"] == n
        start = time.perf_counter()
        for body in bodies:
            receipt = usage.receive(SOURCE, body)
            assert receipt.stored == 0 and not receipt.refused
        again = Figure(n, time.perf_counter() - start)
        start = time.perf_counter()
        run = usage.aggregate(date(2026, 4, 1))
        aggregate = Figure(n, time.perf_counter() - start)
        assert run.events == n, run
        return Results("", baseline, baseline, intake, again, aggregate, run.totals,
                       _top(profiler) if profiler else "")
    finally:
        engine.dispose()


def run_backend(backend: backends.Backend, workdir: Path, rows: Sequence[dict[str, Any]],
                bodies: Sequence[bytes], batch: int, repeat: int,
                say: Any, profile: bool = False) -> Results:
    runs: list[Results] = []
    for k in range(repeat):
        with backend.fresh() as url:
            baseline = measure_baseline(url, rows, batch)
        with backend.fresh() as url:
            driver = measure_driver_baseline(url, rows, batch)
        with backend.fresh() as url:
            result = measure_usage(url, Path(tempfile.mkdtemp(dir=workdir)), bodies,
                                   len(rows), baseline, profile)
        say(f"{backend.name} run {k + 1}: raw {baseline.rate:,.0f}/s, driver "
            f"{driver.rate:,.0f}/s, intake {result.intake.rate:,.0f}/s")
        runs.append(Results(backend.name, baseline, driver, result.intake, result.again,
                            result.aggregate, result.totals, result.profile))
    ordered = sorted(runs, key=lambda r: r.intake.rate / r.driver.rate)
    return ordered[len(ordered) // 2]


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=10_000,
                        help="meter events per request body and per baseline commit")
    parser.add_argument("--tmpdir", type=Path, default=None)
    parser.add_argument("--profile", action="store_true",
                        help="cProfile figure 2 (CPU time), the top 20 by own time; the "
                             "profiler slows figure 2 itself")
    backends.add_run_options(parser, repeat_figures="1 to 4")
    args = backends.parse_args(parser, argv)
    console, say = backends.make_console()
    events = [meter_event(i) for i in range(args.events)]
    bodies = [json.dumps(list(chunk)).encode()
              for chunk in backends.chunks(events, args.batch)]
    rows = baseline_rows(events)
    notes = backends.machine_notes()
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        workdir = Path(tmp)
        results = backends.run_backends(
            args.backends, workdir,
            lambda b: run_backend(b, workdir, rows, bodies, args.batch, args.repeat, say,
                                  args.profile),
            notes, say, sqlite_prefix="usage", unit="measurement")
    table = RichTable(title=f"usage intake: {args.events:,} meter events, bodies of "
                            f"{args.batch:,}, median of {args.repeat} run(s)")
    for column in ("backend", "figure", "events/s", "vs 1a", "vs 1b", "target"):
        table.add_column(column, justify="left" if column in {"backend", "figure"} else "right")
    for r in results:
        def vs(figure: Figure, r: Results = r) -> tuple[str, str]:
            return (f"{figure.rate / r.baseline.rate:.2f}", f"{figure.rate / r.driver.rate:.2f}")
        ratio = r.intake.rate / max(r.baseline.rate, r.driver.rate)
        verdict = ("met" if r.intake.rate >= TARGET_RATE and ratio >= TARGET_RATIO
                   else "NOT met")
        table.add_row(r.backend, "1a raw insert, SQLAlchemy", f"{r.baseline.rate:,.0f}",
                      *vs(r.baseline), "")
        table.add_row("", "1b raw insert, driver bulk", f"{r.driver.rate:,.0f}",
                      *vs(r.driver), "")
        table.add_row("", "2 durable usage intake", f"{r.intake.rate:,.0f}", *vs(r.intake),
                      f"≥ {TARGET_RATE:,}/s and ≥ {TARGET_RATIO:.0%}: {verdict}")
        table.add_row("", "3 the same again (duplicates)", f"{r.again.rate:,.0f}",
                      *vs(r.again), "")
        table.add_row("", f"4 aggregation ({r.totals:,} totals)", f"{r.aggregate.rate:,.0f}",
                      "", "", "")
    console.print(table)
    console.print("The run shown is the median by figure 2 / figure 1b; the target's ratio "
                  "is taken against the faster of 1a and 1b. Each figure on a fresh database.")
    for r in results:
        if r.profile:
            console.print(f"[bold]{r.backend}: profile of figure 2 (cProfile, CPU)[/bold]")
            console.print(r.profile, highlight=False, markup=False)
    backends.print_grids(console, [("machine", notes)])


if __name__ == "__main__":
    main(sys.argv[1:])
