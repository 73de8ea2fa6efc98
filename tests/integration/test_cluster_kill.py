"""A finsync cluster of real processes survives its processes being SIGKILLed while a
stream flows, and ends with the books of the same stream run in one process (issue 20).

The cluster: 2 intake nodes (`finsync serve --role intake`) and 3 workers (`finsync
worker`) on PostgreSQL and the 3-node NATS JetStream cluster of `tests/natskit.py`. The
stream: 500 customers' lifecycles from `builders.lifecycle_stream` (4,500 events), shuffled,
500 of them sent twice: 5,000 requests, posted alternately to both intake nodes by a client
that retries on a refused or dropped connection and on 503 (`tests/loadkit.py`).

While it flows: random workers are SIGKILLed and started again (at least 20 times), one
NATS node is SIGKILLed and later restarted, and an intake node is SIGKILLed with requests
in flight (the client retries on the other) and restarted. Afterwards, once settled:
every raw event stored once, no source event accepted twice, every document posted once,
the same ledger (entries per document, trial balances, balances per currency), the same
reconciliation with nothing unexplained, and each contract's versions applied in order.

A second test holds the order of versions while partitions move: shuffled versions of
contracts flow while workers join, stop cleanly and are SIGKILLed; each contract's versions
are applied 1, 2, 3 … (the contract-accepted milestones' order in the database).

The reference runs in a process of its own (on SQLite, the in-process pipeline) while the
cluster runs: on a 2-core machine the cluster's start and its waits leave it the CPU.
Phase timings are printed (`pytest -s`) and carried in any failure's message.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from finsync.storage.db import make_engine
from finsync.storage.raw_log import RawIn
from tests import bookskit, clusterkit
from tests.builders import lifecycle_stream
from tests.conftest import empty_postgres
from tests.loadkit import Load, shuffled_stream

CUSTOMERS = 500  # x 9 events, 1 in 9 sent twice: 5,000 requests
SEED = 20261207
WORKER_KILLS = 20
WORKER_AGE_MIN_S = 1.0
SETTLE_S = 300.0  # a bound for a stuck cluster, not a target: the phases are printed
LOAD_S = 180.0


def _reference(config: str, bodies: list[bytes], log: str) -> None:
    """The stream in one process: stored as raw events, the pipeline run until settled."""
    with open(log, "ab") as out:
        os.dup2(out.fileno(), 2)
    from finsync.bootstrap import build_hub

    hub = build_hub(clusterkit.load_config(Path(config)))
    hub.intake.store([RawIn(clusterkit.SOURCE, body, {}) for body in bodies])
    for _ in range(100):
        hub.run_until_settled(5.0)
        waiting = hub.status()["deliveries"]
        if not waiting.get("pending") and not waiting.get("in_flight"):
            break
    hub.engine.dispose()
    sys.exit(0)


def _start_reference(tmp_path: Path, template: Path, bodies: list[bytes]) -> tuple[Any, Path]:
    database = tmp_path / "reference.db"
    shutil.copyfile(template, database)
    directory = tmp_path / "reference"
    directory.mkdir()
    config, _ = clusterkit.prepare(directory, f"sqlite:///{database}", None)
    process = clusterkit.FORKS.Process(target=_reference, daemon=True, args=(
        str(config), bodies, str(directory / "reference.log")))
    process.start()
    return process, config


class Chaos:
    """Kills while the load flows, each at a share of the stream accepted: worker kill k of
    `WORKER_KILLS` at k / (WORKER_KILLS + 1) (a random worker, restarted after up to 0.3 s;
    one that has not run a second yet is spared, so each kill lands in work), a NATS node
    at a quarter (restarted at half), the first intake node at a third (restarted 0.5 s
    later)."""

    def __init__(self, cluster: clusterkit.Cluster, nats: Any, load: Load,
                 rng: random.Random, kills: int) -> None:
        self.cluster, self.nats, self.load, self.rng = cluster, nats, load, rng
        self.kills = kills
        self.worker_kills = 0
        self.nats_killed: int | None = None
        self.nats_restarted = False
        self.intake_killed_at: float | None = None
        self.retries_before_intake_kill = 0

    def run(self) -> None:
        while (self.load.running or self.worker_kills < self.kills
               or (self.nats is not None and not self.nats_restarted)):
            due = (self.worker_kills + 1) / (self.kills + 1)
            if self.worker_kills < self.kills and self.load.done >= due:
                self._kill_a_worker()
            self._nats_and_intake()
            time.sleep(0.02)

    def _kill_a_worker(self) -> None:
        settled = [n for n in self.cluster.workers
                   if time.monotonic() - n.started_at >= WORKER_AGE_MIN_S]
        if not settled:
            return
        node = self.rng.choice(settled)
        self.cluster.kill(node)
        time.sleep(self.rng.uniform(0.0, 0.3))
        self.cluster.start(node)
        self.worker_kills += 1

    def _nats_and_intake(self) -> None:
        done = self.load.done
        if self.nats is not None:
            self._nats(done)
        if self.intake_killed_at is None and done >= 0.33:
            intake = self.cluster.intakes[0]
            self.retries_before_intake_kill = sum(self.load.tally.retries.values())
            self.cluster.kill(intake)
            self.intake_killed_at = done
            time.sleep(0.5)
            self.cluster.start(intake)

    def _nats(self, done: float) -> None:
        if self.nats_killed is None and done >= 0.25:
            self.nats_killed = self.rng.randrange(3)
            self.nats.kill(self.nats_killed)
        if self.nats_killed is not None and not self.nats_restarted and done >= 0.5:
            self.nats.restart(self.nats_killed)
            self.nats_restarted = True


@pytest.mark.slow
def test_a_cluster_sigkilled_at_random_keeps_the_books_of_one_process(
        pg_database: str, sqlite_template: Path, nats_cluster: Any, transport_settings: Any,
        tmp_path: Path) -> None:
    transport = clusterkit.Transport(tuple(transport_settings.servers),
                                     transport_settings.namespace)
    assert len(shuffled_stream(CUSTOMERS, SEED)) >= 5000
    trial("nats", pg_database, sqlite_template, tmp_path, nats_cluster, transport)


def trial(kind: clusterkit.Kind, url: str, template: Path, tmp_path: Path, nats: Any,
          transport: clusterkit.Transport | None, *, customers: int = CUSTOMERS,
          kills: int = WORKER_KILLS) -> None:
    """The stream through a cluster of `kind` on `url` (PostgreSQL, emptied) under kills,
    and its books against the reference's."""
    timer = clusterkit.phase_timer()
    empty_postgres(url)
    bodies = shuffled_stream(customers, SEED)
    reference, reference_config = _start_reference(tmp_path, template, bodies)
    config, token = clusterkit.prepare(tmp_path, url, transport)
    engine = make_engine(url)
    reference_engine = make_engine(clusterkit.load_config(reference_config).database_url)
    timer.mark("setup")
    try:
        with clusterkit.running(kind, config, tmp_path) as cluster:
            timer.mark("start")
            load = Load(bodies, [n.port for n in cluster.intakes if n.port], token).start()
            chaos = Chaos(cluster, nats, load, random.Random(SEED), kills)
            chaos.run()
            load.join(LOAD_S)
            timer.mark(f"load ({len(bodies) / load.seconds:.0f} req/s, "
                       f"{chaos.worker_kills} worker kills)")
            reference.join(SETTLE_S)
            assert reference.exitcode == 0, (tmp_path / "reference" / "reference.log").read_text()
            target = clusterkit.progress(reference_engine)
            timer.mark("reference settled")
            clusterkit.wait_settled(engine, target, SETTLE_S, cluster)
            timer.mark("cluster settled")
            print(f"\ncluster CPU: {cluster.cpu_report()}; nats servers "
                  f"{_nats_cpu_s(nats):.1f} s; client and test process "
                  f"{time.process_time():.1f} s")
        _check_books(engine, reference_engine, config, reference_config, load, chaos,
                     len(set(bodies)) if kind == "nats" else None, customers, timer)
        timer.mark("compared")
    finally:
        engine.dispose()
        reference_engine.dispose()
        print(f"\ncluster kill test phases: {timer.report()} ({tmp_path})")


def _nats_cpu_s(nats: Any) -> float:
    """CPU seconds of the NATS nodes now running (the session's: since the session began)."""
    return 0.0 if nats is None else sum(clusterkit.process_cpu_s(p.pid) for p in nats._procs
                                        if p is not None)


def _check_books(engine: Any, reference_engine: Any, config: Path, reference_config: Path,
                 load: Load, chaos: Chaos, distinct: int | None, customers: int,
                 timer: clusterkit.PhaseTimer) -> None:
    tally = load.tally
    assert tally.refusals == [], tally.refusals[:5]
    assert tally.accepted == len(load.bodies)
    assert sum(tally.retries.values()) > chaos.retries_before_intake_kill, (
        "the intake node was killed with requests in flight: the client retried")
    assert chaos.worker_kills >= chaos.kills
    assert chaos.nats is None or chaos.nats_restarted

    if distinct is not None:  # one raw event per source event, however often sent
        raw = bookskit.raw_log(engine)
        assert (raw.rows, raw.transport_ids, raw.stored_twice) == (distinct, distinct, [])
    assert bookskit.events_accepted_twice(engine) == []

    cluster_books = bookskit.books(clusterkit.load_config(config), engine)
    reference_books = bookskit.books(clusterkit.load_config(reference_config),
                                     reference_engine)
    timer.mark("books read")
    assert bookskit.documents_posted_twice(cluster_books) == []
    assert cluster_books.unexplained == []
    assert cluster_books.comparable() == reference_books.comparable()

    applied = bookskit.applied_versions(engine)
    assert len(applied) == customers and bookskit.out_of_order(applied) == {}
    contracts = {key: version for key, version in bookskit.cursors(engine).items()
                 if key[0] == "subscription_contract"}
    assert len(contracts) == customers and set(contracts.values()) == {3}


VERSIONS = 10  # per contract
CONTRACTS = 40


def _contract_versions() -> list[bytes]:
    """Only the contract events of `lifecycle_stream`: CONTRACTS contracts of VERSIONS
    versions each, in random order (a later version waits for the earlier ones)."""
    stream = lifecycle_stream(customers=CONTRACTS, amendments=VERSIONS - 1)
    lines = [json.dumps(e).encode() for e in stream.events
             if e["aggregate"]["type"] == "subscription_contract"]
    random.Random(SEED).shuffle(lines)
    return lines


@pytest.mark.slow
def test_each_contracts_versions_apply_in_order_while_partitions_move(
        pg_database: str, nats_cluster: Any, transport_settings: Any, tmp_path: Path) -> None:
    """Real workers join, stop cleanly (their leases released) and are SIGKILLed (their
    leases run out) while shuffled versions flow: the database applies each contract's
    versions 1, 2, 3 … in that order, each once."""
    timer = clusterkit.phase_timer()
    empty_postgres(pg_database)
    transport = clusterkit.Transport(tuple(transport_settings.servers),
                                     transport_settings.namespace)
    config, token = clusterkit.prepare(tmp_path, pg_database, transport)
    bodies = _contract_versions()
    engine = make_engine(pg_database)
    try:
        with clusterkit.running("nats", config, tmp_path, intakes=1, workers=1) as cluster:
            first = cluster.workers[0]
            load = Load(bodies, [n.port for n in cluster.intakes if n.port], token,
                        threads=4).start()
            second = cluster.add_worker("worker-1")  # the partitions are shared out again
            _wait_share(load, 0.3)
            cluster.terminate(first)  # released: the second takes them at once
            _wait_share(load, 0.5)
            third = cluster.add_worker("worker-2")
            _wait_share(load, 0.7)
            cluster.kill(second)  # left to run out: the third takes them after the TTL
            cluster.start(first)
            load.join(LOAD_S)
            timer.mark(f"load ({len(bodies)} versions)")
            target = clusterkit.Progress({"mapped": len(bodies)}, {"accepted": len(bodies)}, {})
            cluster.start(second)
            clusterkit.wait_settled(engine, target, SETTLE_S, cluster)
            timer.mark("settled")
            assert third.alive
        applied = bookskit.applied_versions(engine)
        assert len(applied) == CONTRACTS and bookskit.out_of_order(applied) == {}
        assert set(bookskit.cursors(engine).values()) == {VERSIONS}
        assert load.tally.refusals == []
    finally:
        engine.dispose()
        print(f"\nordering test phases: {timer.report()} ({tmp_path})")


def _wait_share(load: Load, share: float) -> None:
    while load.running and load.done < share:
        time.sleep(0.02)
