"""A finsync cluster of real processes on one database, for the cluster kill tests and
`bench/cluster.py`: intake nodes answering HTTP, workers doing the pipeline, each a
process that a test may SIGKILL and start again.

Two transports, the same harness:
- `nats`: intake nodes are `finsync serve --role intake` (they answer 202 once JetStream
  holds the event), workers `finsync worker` (archiver and partitions), on the NATS
  servers of the configuration's `[transport]` (tests: `natskit.NatsCluster`);
- `database`: what a deployment does without a transport today: intake nodes are
  `finsync serve --no-pipeline` (202 once the database holds the event), workers
  `finsync run --loop`. The benchmark's baseline, and the harness's own check.

Rules:
- `prepare` migrates the database, adopts the configuration and issues the ingest token
  before any process starts: processes starting together never race to migrate.
- Each process is forked by multiprocessing's fork server, which imported finsync once
  (as tests/integration/test_kill.py does): a fresh interpreter spends 1 to 2 s of CPU on
  imports, and a kill test starts some thirty processes on a 2-core machine.
- Each node logs to a file of its own (appended across restarts); a node that exits on
  its own fails the test that waits on it, with the end of its log.
- `Cluster.stop` SIGKILLs every process it started, whatever happened: a test's cluster
  never outlives it.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine, func, select

from finsync.auth.principal import events_write
from finsync.bootstrap import approved_config, build_hub
from finsync.config import DEFAULT_CONFIG, FinsyncConfig, parse_config
from finsync.storage.schema import deliveries, events, raw_events
from tests import authkit
from tests.clikit import auth_section

Kind = Literal["nats", "database"]
SOURCE = "billing"  # lifecycle_stream's events say they come from billing
READY_S = 60.0
WORKER_INTERVAL_S = 0.1  # `run --loop`'s poll (the database transport's workers)

# Invoices and payments to the embedded ledger (tests/integration/test_kill.py's routes):
# the books are the ledger's. Contracts are accepted (their versions sequenced), routed
# nowhere: the revenue engine costs some 15 ms of CPU per contract, more than the whole
# budget of a kill test for 1,500 of them.
ROUTES = {"invoice.issued": ["ledger"], "payment.applied": ["ledger"]}
# Every worker is SIGKILLed some time: a lease held by a dead worker runs out in 2 s, and
# innocent deliveries lose leases too (test_kill.py). A payment that reaches the ledger
# before its invoice is retried soon, and for long enough.
DELIVERY = {"attempts_max": 60, "backoff_base_s": 0.2, "backoff_cap_s": 2, "lease_s": 2,
            "lease_expiries_max": 50, "batch_size": 50}


@dataclass(frozen=True)
class Transport:
    """The `[transport]` section of a nats cluster (keys as `TransportSettings`)."""

    servers: tuple[str, ...]
    namespace: str
    partitions: int = 8
    replicas: int = 3
    ack_wait_s: float = 3.0
    lease_ttl_s: float = 2.0

    def body(self) -> str:
        return "\n".join([
            'kind = "nats"', f"servers = {json.dumps(list(self.servers))}",
            f"namespace = {json.dumps(self.namespace)}", f"partitions = {self.partitions}",
            f"replicas = {self.replicas}", f"ack_wait_s = {self.ack_wait_s}",
            f"lease_ttl_s = {self.lease_ttl_s}", ""])


def _table_replaced(text: str, header: str, body: str) -> str:
    """`text` with the TOML table `header` (up to the next table) replaced by `body`."""
    lines = text.splitlines()
    start = lines.index(header)
    end = next((n for n in range(start + 1, len(lines)) if lines[n].startswith("[")),
               len(lines))
    return "\n".join([*lines[:start], header, body.rstrip("\n"), "", *lines[end:]]) + "\n"


def _toml_table(values: Mapping[str, Any]) -> str:
    return "\n".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in values.items())


def config_text(url: str, transport: Transport | None = None, *,
                routes: Mapping[str, list[str]] = ROUTES) -> str:
    """The shipped configuration on `url`: no pumps, the cluster's routes and delivery
    policy, billing's rate limit above any load, the current login an operator."""
    text = DEFAULT_CONFIG.read_text()
    text = text.replace('database_url = "sqlite:///var/finsync.db"',
                        f"database_url = {json.dumps(url)}")
    text = _table_replaced(text, "[pumps]", "")
    text = _table_replaced(text, "[routes]", _toml_table(routes))
    text = _table_replaced(text, "[delivery]", _toml_table(DELIVERY))
    text = _table_replaced(text, "[transport]",
                           transport.body() if transport else 'kind = "inprocess"')
    text += (f"\n[limits.{SOURCE}]\nrequests_per_s = 1000000\nburst = 1000000\n\n"
             + auth_section())
    return text


def load_config(path: Path) -> FinsyncConfig:
    return parse_config(tomllib.loads(path.read_text()), path.parent)


def prepare(directory: Path, url: str, transport: Transport | None) -> tuple[Path, str]:
    """The configuration file of a cluster on `url` and an ingest token for `SOURCE`; the
    database migrated and the configuration adopted."""
    path = directory / "finsync.toml"
    path.write_text(config_text(url, transport))
    config = load_config(path)
    assert config.database_url == url, "FINSYNC_DATABASE_URL must not be set for a cluster"
    hub = build_hub(config)
    try:
        approved_config(config, hub.engine, hub.clock)
        token = authkit.issue(hub.engine, [events_write(SOURCE)], principal="cluster.source")
    finally:
        hub.engine.dispose()
    return path, token


# -- processes ------------------------------------------------------------------------------

FORKS = multiprocessing.get_context("forkserver")
FORKS.set_forkserver_preload(["finsync.cli.main", "finsync.api.main", __name__])


def _finsync(argv: list[str], log: str) -> None:
    """`finsync ARGV` in a forked process, its stdout and stderr to `log`."""
    os.environ.pop("FINSYNC_DATABASE_URL", None)
    with open(log, "ab") as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
    sys.argv = ["finsync", *argv]
    from finsync.cli.main import main

    main()  # exits with the command's status


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Node:
    """One process of the cluster, restarted under the same name, port and log."""

    role: Literal["intake", "worker"]
    name: str
    argv: list[str]
    log: Path
    port: int | None = None
    process: multiprocessing.process.BaseProcess | None = None
    started_at: float = 0.0
    kills: int = 0
    starts: int = 0
    ended_cpu_s: float = 0.0  # the CPU of its ended runs

    @property
    def cpu_s(self) -> float:
        """CPU seconds of all its runs so far."""
        live = 0.0 if self.process is None or not self.alive else process_cpu_s(self.process.pid)
        return self.ended_cpu_s + live

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


@dataclass
class Cluster:
    kind: Kind
    config: Path
    directory: Path
    nodes: list[Node] = field(default_factory=list)

    @property
    def intakes(self) -> list[Node]:
        return [n for n in self.nodes if n.role == "intake"]

    @property
    def workers(self) -> list[Node]:
        return [n for n in self.nodes if n.role == "worker"]

    def add_intake(self, name: str) -> Node:
        port = free_port()
        role = ["--role", "intake"] if self.kind == "nats" else ["--no-pipeline"]
        node = Node("intake", name, ["serve", "--port", str(port), *role,
                                     "--config", str(self.config)],
                    self.directory / f"{name}.log", port)
        self.nodes.append(node)
        return self.start(node)

    def add_worker(self, name: str) -> Node:
        argv = (["worker", "--name", name] if self.kind == "nats" else
                ["run", "--loop", "--interval-s", str(WORKER_INTERVAL_S)])
        node = Node("worker", name, [*argv, "--config", str(self.config)],
                    self.directory / f"{name}.log")
        self.nodes.append(node)
        return self.start(node)

    def start(self, node: Node) -> Node:
        assert not node.alive, f"{node.name} is running"
        node.process = FORKS.Process(target=_finsync, args=(node.argv, str(node.log)),
                                     name=node.name, daemon=True)
        node.process.start()
        node.started_at = time.monotonic()
        node.starts += 1
        if node.role == "intake":
            self.wait_listening(node)
        return node

    def wait_listening(self, node: Node) -> None:
        """Until the node answers HTTP (any status: /healthz may say 503 for a reason of
        its own)."""
        deadline = time.monotonic() + READY_S
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{node.port}/healthz", timeout=1):
                    return
            except urllib.error.HTTPError:
                return
            except OSError:
                assert node.alive, f"{node.name} exited ({self.exitcode(node)}):\n{node.tail()}"
                time.sleep(0.05)
        raise AssertionError(f"{node.name} did not answer within {READY_S} s:\n{node.tail()}")

    def kill(self, node: Node) -> None:
        """SIGKILL, and reap it."""
        assert node.process is not None
        node.ended_cpu_s += process_cpu_s(node.process.pid)
        node.process.kill()
        node.process.join()
        node.kills += 1

    def terminate(self, node: Node, timeout_s: float = 30.0) -> None:
        """SIGTERM, a clean stop (a worker releases its leases), and reap it."""
        assert node.process is not None
        cpu_s = process_cpu_s(node.process.pid)
        node.process.terminate()
        node.process.join(timeout_s)
        node.ended_cpu_s += cpu_s
        assert node.process.exitcode is not None, f"{node.name} ignored SIGTERM:\n{node.tail()}"

    def restart(self, node: Node) -> Node:
        self.kill(node)
        return self.start(node)

    def exitcode(self, node: Node) -> int | None:
        return None if node.process is None else node.process.exitcode

    def check_running(self) -> None:
        """Fails with the log of a node that exited on its own (a refused configuration,
        a defect), not killed by the test."""
        for node in self.nodes:
            assert node.alive, f"{node.name} exited ({self.exitcode(node)}):\n{node.tail()}"

    def stop(self) -> None:
        for node in self.nodes:
            if node.alive:
                self.kill(node)

    def cpu_report(self) -> str:
        """CPU seconds per role, and the starts behind them."""
        parts = []
        for role in ("intake", "worker"):
            nodes = [n for n in self.nodes if n.role == role]
            parts.append(f"{role}s {sum(n.cpu_s for n in nodes):.1f} s CPU in "
                         f"{sum(n.starts for n in nodes)} starts")
        return ", ".join(parts)


@contextmanager
def running(kind: Kind, config: Path, directory: Path, *, intakes: int = 2,
            workers: int = 3) -> Iterator[Cluster]:
    cluster = Cluster(kind, config, directory)
    try:
        for n in range(intakes):
            cluster.add_intake(f"intake-{n}")
        for n in range(workers):
            cluster.add_worker(f"worker-{n}")
        yield cluster
    finally:
        cluster.stop()


# -- progress ---------------------------------------------------------------------------------


def _counts(engine: Engine, column: Any) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(select(column, func.count()).group_by(column)).all()
    return {str(status): int(n) for status, n in rows}


@dataclass(frozen=True)
class Progress:
    raw: dict[str, int]
    events: dict[str, int]
    deliveries: dict[str, int]

    def settled_as(self, target: Progress) -> bool:
        """Every raw event processed, and the events and deliveries of `target` (the same
        stream run in one process) all there, accepted and done."""
        return ("received" not in self.raw and self.events == target.events
                and self.deliveries == target.deliveries)


def progress(engine: Engine) -> Progress:
    return Progress(_counts(engine, raw_events.c.status), _counts(engine, events.c.status),
                    _counts(engine, deliveries.c.status))


def wait_settled(engine: Engine, target: Progress, timeout_s: float,
                 cluster: Cluster | None = None) -> Progress:
    """Until the database holds what `target` holds; fails after `timeout_s` saying where
    it stopped."""
    deadline = time.monotonic() + timeout_s
    while True:
        now = progress(engine)
        if now.settled_as(target):
            return now
        if cluster is not None:
            cluster.check_running()
        assert time.monotonic() < deadline, (
            f"not settled in {timeout_s} s: {now}, expected {target}")
        time.sleep(0.2)


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a running process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_s() -> float:
    """CPU seconds (user + system) used so far by this process and its descendants, the
    ended ones included (a reaped child's time is in its parent's cutime and cstime): the
    fork server's nodes, the NATS servers, the reference run. PostgreSQL's backends are
    not ours and are left out."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, int] = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            fields = (proc / "stat").read_text().rpartition(")")[2].split()
        except OSError:  # ended meanwhile
            continue
        pid = int(proc.name)
        parents[pid] = int(fields[1])
        times[pid] = sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    ours = {os.getpid()}
    for pid in sorted(parents):
        chain, at = [], pid
        while at in parents and at not in ours and at > 1:
            chain.append(at)
            at = parents[at]
        if at in ours:
            ours.update(chain)
    return sum(times.get(pid, 0) for pid in ours) / tick


def phase_timer() -> PhaseTimer:
    return PhaseTimer(time.perf_counter(), tree_cpu_s())


@dataclass
class PhaseTimer:
    """Wall and CPU time per phase, printed at the end (pytest -s, or in the failure
    report). On a shared 2-core machine the wall times say as much about the neighbours as
    about the cluster; the CPU seconds of the test's processes, halved, are about what the
    test takes on two idle cores."""

    last: float
    last_cpu_s: float
    phases: list[tuple[str, float, float]] = field(default_factory=list)

    def mark(self, phase: str) -> None:
        now, cpu = time.perf_counter(), tree_cpu_s()
        self.phases.append((phase, now - self.last, cpu - self.last_cpu_s))
        self.last, self.last_cpu_s = now, cpu

    def report(self) -> str:
        wall = sum(p[1] for p in self.phases)
        cpu = sum(p[2] for p in self.phases)
        load = "/".join(f"{x:.1f}" for x in os.getloadavg())
        return " | ".join([*(f"{p} {w:.1f} s (CPU {c:.1f} s)" for p, w, c in self.phases),
                           f"total {wall:.1f} s, CPU {cpu:.1f} s (load average {load})"])
