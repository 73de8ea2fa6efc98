#!/usr/bin/env python3
"""The audit chain's append cost next to a plain insert of the same row.

A benchmark, not a test: it prints figures and checks only that each run did the work it
reports (every row stored, the chain verifying at the end).

    .venv/bin/python bench/audit.py [--rows 2000] [--batch 100] [--repeat 3]
                                    [--backends sqlite,postgresql]

Per backend, each figure on a fresh database (the audit schema migrated, and a plain copy
of `audit_trail` beside it with the same columns, types and primary key):

1. plain insert, one row per transaction: the rows `trail.append` would store (seq, hash
   and prev_hash computed beforehand), each a bare INSERT statement in a transaction of
   its own.
2. chained append, one per transaction: `finsync.audit.trail.append` for each row in a
   transaction of its own, as an audited action appends in its own: the lock
   (PostgreSQL's advisory lock; SQLite's write lock is already held), the head read, the
   hash, the insert.
3. and 4. the same with `--batch` rows per transaction: what the chain costs apart from
   the commit.
5. verify: `finsync.audit.verify.verify` over the rows of figure 2 (the walk, every
   checkpoint, the legacy-log coverage), rows/s.

The ratio is the append's time over the plain insert's, for the same rows. See
bench/README.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import backends
from rich.table import Table as RichTable
from sqlalchemy import Engine, func, insert, select

from finsync.audit import trail
from finsync.audit.chain import GENESIS, Entry, canonical, record_hash, timestamp
from finsync.audit.migrate import upgrade as upgrade_audit
from finsync.audit.signing import Keyring
from finsync.audit.tables import trail as trail_table
from finsync.audit.verify import verify
from finsync.storage.db import make_engine, reading
from finsync.storage.migrate import upgrade as upgrade_hub

T0 = datetime(2026, 12, 1, tzinfo=UTC)
PLAIN = backends.plain_copy(trail_table, "audit_trail_plain")


def entries(count: int) -> list[tuple[Entry, datetime]]:
    """Triage-sized records: a principal, an action on an exception, small before/after."""
    return [(Entry("ar.clerk", "exception.resolve", "exception", str(n),
                   f"paid by wire, reference WX-{n:08d}",
                   before={"status": "open", "amount_at_stake": "1250.00 USD"},
                   after={"status": "resolved"}, correlation_id=f"ord_{n}"),
             T0 + timedelta(seconds=n)) for n in range(count)]


def stored_rows(work: Sequence[tuple[Entry, datetime]]) -> list[dict[str, Any]]:
    """What `trail.append` stores for `work`, computed here, for the plain insert."""
    rows = []
    previous = GENESIS
    for seq, (entry, at) in enumerate(work, start=1):
        row: dict[str, Any] = {
            "seq": seq, "at": timestamp(at), "actor": entry.actor, "action": entry.action,
            "object_type": entry.object_type, "object_id": entry.object_id,
            "before": canonical(entry.before), "after": canonical(entry.after),
            "reason": entry.reason, "correlation_id": entry.correlation_id,
            "prev_hash": previous}
        previous = record_hash(row)
        rows.append({**row, "at": at, "hash": previous})
    return rows


def plain(engine: Engine, rows: Sequence[dict[str, Any]], batch: int) -> float:
    """One INSERT statement per row, as an append makes one (never an executemany)."""
    statement = insert(PLAIN)
    start = time.perf_counter()
    for chunk in backends.chunks(rows, batch):
        with engine.begin() as conn:
            for row in chunk:
                conn.execute(statement, row)
    return time.perf_counter() - start


def chained(engine: Engine, work: Sequence[tuple[Entry, datetime]], batch: int) -> float:
    start = time.perf_counter()
    for chunk in backends.chunks(work, batch):
        with engine.begin() as conn:
            for entry, at in chunk:
                trail.append(conn, entry, at)
    return time.perf_counter() - start


@dataclass
class Figures:
    backend: str
    seconds: dict[str, list[float]]
    rows: int

    def median(self, name: str) -> float:
        return statistics.median(self.seconds[name])


def measure(backend: backends.Backend, rows: int, batch: int, repeat: int,
            say: Callable[[str], None]) -> Figures:
    work = entries(rows)
    expected = stored_rows(work)
    seconds: dict[str, list[float]] = {"plain 1": [], "append 1": [], "plain batch": [],
                                       "append batch": [], "verify": []}
    for run in range(repeat):
        say(f"{backend.name}: run {run + 1} of {repeat}")
        for size, suffix in ((1, "1"), (batch, "batch")):
            with backend.fresh() as url:
                engine = make_engine(url)
                upgrade_hub(engine)  # verify reads the triage log too
                upgrade_audit(engine)
                PLAIN.create(engine)
                seconds[f"plain {suffix}"].append(plain(engine, expected, size))
                seconds[f"append {suffix}"].append(chained(engine, work, size))
                _check(engine, expected)
                if size == 1:
                    start = time.perf_counter()
                    with reading(engine) as conn:
                        verdict = verify(conn, Keyring.of(None))
                    seconds["verify"].append(time.perf_counter() - start)
                    assert verdict.ok and verdict.records == rows, verdict.as_json()
                engine.dispose()
    return Figures(backend.name, seconds, rows)


def _check(engine: Engine, expected: Sequence[dict[str, Any]]) -> None:
    """Both tables hold every row; the chained one ends on the hash computed beforehand."""
    with engine.connect() as conn:
        counts = [conn.execute(select(func.count()).select_from(t)).scalar_one()
                  for t in (PLAIN, trail_table)]
        head = conn.execute(select(trail_table.c.hash).order_by(trail_table.c.seq.desc())
                            .limit(1)).scalar_one()
    assert counts == [len(expected)] * 2, counts
    assert head == expected[-1]["hash"]


def render(console: Any, results: Sequence[Figures], batch: int) -> None:
    table = RichTable(title="audit append vs plain insert (median of the runs)",
                      title_justify="left")
    for column in ("backend", "rows per transaction", "plain insert µs/row",
                   "chained append µs/row", "ratio"):
        table.add_column(column, justify="right")
    for fig in results:
        for size, suffix in ((1, "1"), (batch, "batch")):
            base = fig.median(f"plain {suffix}") / fig.rows * 1e6
            chain = fig.median(f"append {suffix}") / fig.rows * 1e6
            table.add_row(fig.backend, str(size), f"{base:,.0f}", f"{chain:,.0f}",
                          f"{chain / base:.2f}x")
    console.print(table)
    for fig in results:
        console.print(f"{fig.backend}: verify walks {fig.rows:,} records at "
                      f"{fig.rows / fig.median('verify'):,.0f} records/s")


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000, help="records per figure")
    parser.add_argument("--batch", type=int, default=100,
                        help="rows per transaction in figures 3 and 4")
    parser.add_argument("--tmpdir", type=Path, default=None)
    backends.add_run_options(parser, repeat_figures="1 to 5")
    args = backends.parse_args(parser, argv)
    console, say = backends.make_console()
    notes = backends.machine_notes()
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as workdir:
        results = backends.run_backends(
            args.backends, Path(workdir),
            lambda b: measure(b, args.rows, args.batch, args.repeat, say), notes, say,
            sqlite_prefix="audit", unit="measurement")
    render(console, results, args.batch)
    backends.print_grids(console, [("machine", notes)])


if __name__ == "__main__":
    main(sys.argv[1:])
