#!/usr/bin/env python3
"""The scale-out cluster of issue 20 on NATS JetStream, with real processes: intake rate,
end-to-end rate per number of workers, and the time a partition takes to move after its
worker is SIGKILLed. Each against a baseline measured in the same run.

A benchmark, not a test: it prints figures and checks only that each run did the work it
claims (every request answered 2xx, every event accepted, every delivery done).

    .venv/bin/python bench/cluster.py [--events 3000] [--workers 1,2,4] [--partitions 8]
                                      [--threads 16] [--lease-ttl-s 2] [--markers 100]

The processes are those of `tests/clusterkit.py` (`finsync serve --role intake`, `finsync
worker`, forked from a fork server that imported finsync once) on a 3-node NATS cluster
(`tests/natskit.py`, the pinned nats-server) and a fresh PostgreSQL database per
measurement (`FINSYNC_BENCH_PG_URL`, see bench/README.md), each measurement in a JetStream
namespace of its own. The events are `bench/serve.py`'s on-account payments (independent
aggregates, spread over every partition), each posted to the embedded ledger; the client is
`tests/loadkit.py`'s, closed-loop on `--threads` connections.

Figures:
1. intake: requests answered 202 per second by one intake node with no worker running:
   through JetStream (202 after the PubAck of a stream replicated on 3 nodes) against the
   baseline, `finsync serve --no-pipeline` storing in the database (today's intake);
2. end to end: events per second from the first request to the last delivery done, with
   1, 2 and 4 workers behind one intake node, against 1 worker; and per partition; and
   the same stream through today's database transport (`serve --no-pipeline` and one
   `finsync run --loop`) as a second baseline;
3. partition move: with 2 workers, `--markers` events spread over every partition are
   posted, and timed until every partition has accepted one (its first delivery enqueued,
   by `deliveries.partition_hash`), first with both workers alive (the baseline), then
   from the SIGKILL of one: the difference is what the dead worker's partitions waited
   for (its leases' TTL, then the survivor's takeover).

On a 2-core machine the processes share the cores with PostgreSQL, three nats-servers and
the client: the ratios say more than the rates (docs/scaling.md extrapolates them).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(Path(__file__).resolve().parent), str(ROOT)]

import backends  # noqa: E402
import serve  # noqa: E402  (its payment envelope)
from rich.table import Table as RichTable  # noqa: E402
from sqlalchemy import Engine, func, select  # noqa: E402

from finsync.domain.clock import utc_now  # noqa: E402
from finsync.storage.db import make_engine  # noqa: E402
from finsync.storage.schema import deliveries  # noqa: E402
from tests import clusterkit  # noqa: E402
from tests.loadkit import Load  # noqa: E402
from tests.natskit import NatsCluster  # noqa: E402

SETTLE_MAX_S = 600.0
RUNS = itertools.count()  # each measurement's namespace and folder


@dataclass
class Figure:
    name: str
    value: float  # events (or requests) per second, or seconds
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    note: str = ""


@dataclass
class Bench:
    args: argparse.Namespace
    backend: backends.Backend
    nats: NatsCluster
    workdir: Path
    say: Callable[[str], None]

    @contextmanager
    def cluster(self, kind: clusterkit.Kind, intakes: int, workers: int
                ) -> Iterator[tuple[clusterkit.Cluster, str, Engine]]:
        """A fresh database and namespace, and a cluster of `kind` on them."""
        n = next(RUNS)
        directory = Path(tempfile.mkdtemp(prefix=f"run{n}-", dir=self.workdir))
        transport = clusterkit.Transport(tuple(self.nats.urls), f"bench{os.getpid()}r{n}",
                                         partitions=self.args.partitions,
                                         lease_ttl_s=self.args.lease_ttl_s)
        with self.backend.fresh() as url:
            config, token = clusterkit.prepare(directory, url,
                                               transport if kind == "nats" else None)
            engine = make_engine(url)
            try:
                with clusterkit.running(kind, config, directory, intakes=intakes,
                                        workers=workers) as cluster:
                    yield cluster, token, engine
            finally:
                engine.dispose()

    def post(self, cluster: clusterkit.Cluster, token: str, bodies: Sequence[bytes]) -> Load:
        load = Load(bodies, [n.port for n in cluster.intakes if n.port], token,
                    threads=self.args.threads).start()
        load.join(SETTLE_MAX_S)
        assert load.tally.accepted == len(bodies), (load.tally.answers, load.tally.refusals[:3])
        return load


def payments(n: int, run: str) -> list[bytes]:
    return [serve.payment(i, run) for i in range(n)]


def settled(total: int) -> clusterkit.Progress:
    return clusterkit.Progress({"mapped": total}, {"accepted": total}, {"done": total})


def every_partition_served_s(engine: Engine, since: datetime, partitions: int,
                             timeout_s: float = SETTLE_MAX_S) -> float:
    """Seconds from `since` until each partition has accepted an event posted after it:
    the first delivery enqueued per partition (`deliveries.partition_hash % partitions`,
    the hash workers claim by), waited for until every partition has one."""
    query = (select(deliveries.c.partition_hash, func.min(deliveries.c.created_at))
             .where(deliveries.c.created_at >= since)
             .group_by(deliveries.c.partition_hash))
    deadline = time.monotonic() + timeout_s
    while True:
        firsts: dict[int, datetime] = {}
        with engine.connect() as conn:
            for hashed, at in conn.execute(query):
                p = int(hashed) % partitions
                firsts[p] = min(at, firsts.get(p, at))
        if len(firsts) == partitions:
            return max((at - since).total_seconds() for at in firsts.values())
        assert time.monotonic() < deadline, f"partitions served: {sorted(firsts)}"
        time.sleep(0.01)


def served_after(bench: Bench, cluster: clusterkit.Cluster, token: str, engine: Engine,
                 run: str, before: Callable[[], None]) -> float:
    """`before()`, then `--markers` events posted: seconds until every partition served."""
    since = utc_now()
    before()
    bench.post(cluster, token, payments(bench.args.markers, run))
    return every_partition_served_s(engine, since, bench.args.partitions)


# -- the figures ---------------------------------------------------------------------------------


def intake(bench: Bench) -> list[Figure]:
    rates = {}
    for kind in ("database", "nats"):
        with bench.cluster(kind, 1, 0) as (cluster, token, _engine):
            load = bench.post(cluster, token, payments(bench.args.events, f"in{kind}"))
        rates[kind] = bench.args.events / load.seconds
        bench.say(f"intake, {kind}: {rates[kind]:,.0f} req/s")
    return [Figure("intake, one node: JetStream (202 after the PubAck)", rates["nats"], "req/s",
                   rates["database"], "serve --no-pipeline (database)")]


def settled_rate(bench: Bench, kind: clusterkit.Kind, workers: int, run: str) -> float:
    """Events per second from the first request to the last delivery done, on a fresh
    cluster. Measured again (up to twice) if a node of it exited (on a loaded machine a worker
    starting on a fresh namespace may find its KV bucket not answering in time): the
    run says so."""
    n = bench.args.events
    for attempt in (1, 2, 3):
        try:
            with bench.cluster(kind, 1, workers) as (cluster, token, engine):
                start = time.perf_counter()
                bench.post(cluster, token, payments(n, f"{run}a{attempt}"))
                clusterkit.wait_settled(engine, settled(n), SETTLE_MAX_S, cluster)
                return float(n / (time.perf_counter() - start))
        except AssertionError as exc:
            if attempt == 3 or "exited" not in str(exc):
                raise
            bench.say(f"{run}: {str(exc).splitlines()[0]} measured again")
    raise AssertionError("unreachable")  # the last attempt returns or raises


def end_to_end(bench: Bench) -> list[Figure]:
    figures = []
    database_rate = settled_rate(bench, "database", 1, "e2edb")
    bench.say(f"end to end, database transport, 1 worker: {database_rate:,.0f} events/s")
    one: float | None = None
    for workers in bench.args.workers:
        rate = settled_rate(bench, "nats", workers, f"e2e{workers}")
        one = one or rate
        bench.say(f"end to end, {workers} worker(s): {rate:,.0f} events/s")
        figures.append(Figure(f"end to end, {workers} worker(s)", rate, "events/s", one,
                              "1 worker", f"{rate / bench.args.partitions:,.0f}/s per "
                              f"partition ({bench.args.partitions})"))
    figures.append(Figure("end to end, database transport, 1 worker (today)", database_rate,
                          "events/s", one, "nats, 1 worker"))
    return figures


def partition_move(bench: Bench) -> list[Figure]:
    markers = bench.args.markers
    with bench.cluster("nats", 1, 2) as (cluster, token, engine):
        warm = payments(markers, "warm")  # both workers own their partitions by now
        bench.post(cluster, token, warm)
        clusterkit.wait_settled(engine, settled(markers), SETTLE_MAX_S, cluster)
        alive_s = served_after(bench, cluster, token, engine, "alive", lambda: None)
        killed_s = served_after(bench, cluster, token, engine, "killed",
                                lambda: cluster.kill(cluster.workers[0]))
    bench.say(f"partition move: every partition served {alive_s:.2f} s after a batch with "
              f"both workers, {killed_s:.2f} s after a SIGKILL")
    return [Figure("partition move: every partition served again after a SIGKILL",
                   killed_s, "s", alive_s, "both workers alive",
                   f"lease TTL {bench.args.lease_ttl_s:g} s; the move about "
                   f"{killed_s - alive_s:.2f} s")]


FIGURES = {"intake": intake, "end-to-end": end_to_end, "move": partition_move}


# -- the report ----------------------------------------------------------------------------------


def report(console: object, figures: Sequence[Figure], notes: list[backends.Note]) -> None:
    table = RichTable(title="cluster: NATS JetStream, PostgreSQL, real processes")
    for column in ("figure", "value", "baseline", "ratio", "note"):
        table.add_column(column, justify="left" if column in {"figure", "note"} else "right")
    for f in figures:
        base = "" if f.baseline is None else f"{f.baseline:,.2f} {f.unit} ({f.baseline_name})"
        ratio = "" if not f.baseline else f"{f.value / f.baseline:.2f}"
        table.add_row(f.name, f"{f.value:,.2f} {f.unit}", base, ratio, f.note)
    console.print(table)  # type: ignore[attr-defined]
    backends.print_grids(console, [("machine", notes)])  # type: ignore[arg-type]


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3000, help="per measurement")
    parser.add_argument("--workers", default="1,2,4", help="worker counts, end to end")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--threads", type=int, default=16, help="client connections")
    parser.add_argument("--lease-ttl-s", type=float, default=2.0)
    parser.add_argument("--markers", type=int, default=100, help="events of the move figure")
    parser.add_argument("--figures", default="intake,end-to-end,move",
                        help="which figures, comma-separated")
    parser.add_argument("--tmpdir", type=Path, default=None)
    args = parser.parse_args(argv)
    args.workers = [int(w) for w in args.workers.split(",") if w.strip()]
    parts = [FIGURES[name.strip()] for name in args.figures.split(",") if name.strip()]
    os.environ.pop("FINSYNC_DATABASE_URL", None)  # the bench's database, not the shell's
    console, say = backends.make_console()
    notes = backends.machine_notes()
    notes.append(("load average at start", " ".join(f"{x:.1f}" for x in os.getloadavg())))
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        workdir = Path(tmp)
        nats = NatsCluster(workdir / "nats")
        nats.start()
        try:
            runs = backends.run_backends(
                ["postgresql"], workdir,
                lambda b: [*(f for part in parts
                             for f in part(Bench(args, b, nats, workdir, say)))],
                notes, say, sqlite_prefix="cluster", unit="measurement")
        finally:
            nats.stop()
    report(console, [f for figures in runs for f in figures], notes)


if __name__ == "__main__":
    main(sys.argv[1:])
