#!/usr/bin/env python3
"""`finsync serve` under a steady load: HTTP 202 latency, event → posted lag, backlog.

A benchmark, not a test: it prints figures and checks only that the run did the work it
claims (every accepted event stored, every delivery done by the end of the drain).

    .venv/bin/python bench/serve.py [--rate 1000 | --rate 250,500,750,1000] [--seconds 60]
                                    [--workers 1] [--pipeline-process] [--no-pipeline]
                                    [--backends postgresql] [--connections 64]
                                    [--profile FILE [--profile-clock cpu|wall]]

The server is a real `finsync serve` process (uvicorn) on a fresh database, with the
embedded ledger as the target (each event an on-account `payment.applied`, posted as a
journal entry). The load is open-loop: request i is due at t0 + i / rate, whatever the
previous ones are doing, sent on one of `--connections` keep-alive connections by an asyncio
client in this process; latency runs from the moment a request was due (so a server that
falls behind is charged the wait, no coordinated omission) to its response.

Figures:
1. offered and achieved rates: requests due per second, and 202s per second;
2. HTTP 202 latency p50 / p99 / max (target p99 ≤ 20 ms);
3. event → posted: per event, the ledger delivery's `completed_at` minus the raw event's
   `received_at` (both on the server's clock), p50 / p99 (target p99 ≤ 100 ms);
4. backlog: raw events not yet processed plus deliveries not done, sampled every second;
   its growth is the slope of a least-squares line through the samples of the second half
   of the run (target: none, i.e. ≤ 1 % of the rate);
5. the limit, measured in the same run beforehand on the same kind of database: an
   in-process `Intake.receive` loop (map, one transaction per event, no HTTP, no pipeline);
6. the server's CPU time per 202 (user + system, from /proc), during the load, and through
   the drain split into the HTTP processes and the pipeline's own process: on a shared
   machine a steadier figure than the latencies, which wait for the CPU as much as for work.

With several rates, each runs on a fresh database and server, and the run ends with the
highest rate that met every target (202 p99, event → posted p99, no backlog growth, nothing
but 202) and its ratio to the limit.

See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pstats
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import backends
from rich.table import Table as RichTable
from sqlalchemy import Engine, func, select

from finsync.auth import tokens
from finsync.auth.principal import ADMIN, Principal, events_write
from finsync.bootstrap import build_hub
from finsync.config import DEFAULT_CONFIG, parse_config
from finsync.domain.clock import utc_now
from finsync.storage.db import make_engine
from finsync.storage.schema import deliveries, events, raw_events

HTTP_P99_TARGET_MS = 20.0
LAG_P99_TARGET_MS = 100.0
SOURCE = "billing"  # the payments say they come from billing: posted as billing
PATH = f"/v1/sources/{SOURCE}/events"
BENCH_ADMIN = Principal.of("bench.admin", [ADMIN])


def payment(i: int, run: str) -> bytes:
    """An on-account payment (no application): the embedded ledger posts Dr cash, Cr
    customer credits."""
    pay = f"pay_{run}_{i:08d}"
    return json.dumps({
        "type": "payment.applied", "schema_version": 1, "source": "billing",
        "source_event_id": f"{pay}-applied", "occurred_at": "2026-01-15T09:00:00+00:00",
        "correlation_id": f"corr_{run}_{i:08d}", "causation_id": None, "business_key": None,
        "aggregate": {"type": "payment", "id": pay, "version": None},
        "payload": {"payment": {
            "id": pay, "customer_id": f"cus_{i % 1000:04d}", "legal_entity": "le_us",
            "currency": "USD", "amount": f"{100 + i % 900}.{i % 100:02d}",
            "received_on": "2026-01-15", "applications": []}},
    }).encode()


def _pipeline_process_flag(pipeline_process: bool | None) -> list[str]:
    """`serve`'s flag for where its pipeline runs (None: `serve`'s default)."""
    if pipeline_process is None:
        return []
    return ["--pipeline-process" if pipeline_process else "--pipeline-in-process"]


def write_config(directory: Path, url: str) -> Path:
    """The packaged configuration on `url`, with the billing source's rate limit above the
    offered load (the limit is what is measured, not the rate limiter), and every OS login
    acting as the bench's admin (`serve` refuses a login that maps to no admin)."""
    text = DEFAULT_CONFIG.read_text()
    text = text.replace('database_url = "sqlite:///var/finsync.db"', f'database_url = "{url}"')
    text += (f"\n[limits.{SOURCE}]\nrequests_per_s = 1000000\nburst = 1000000\n"
             # `serve` needs an admin: whoever runs the bench acts as one
             f"\n[auth.principals.\"{BENCH_ADMIN.id}\"]\nscopes = [\"{ADMIN}\"]\n"
             f"\n[auth.os_users]\n\"*\" = \"{BENCH_ADMIN.id}\"\n")
    path = directory / "finsync.toml"
    path.write_text(text)
    parse_config(tomllib.loads(text), directory)  # refuse a broken file here, not in serve
    return path


# --------------------------------------------------------------------------------------
# The limit: an in-process receive loop


def receive_loop_rate(config_path: Path, n: int) -> float:
    config = parse_config(tomllib.loads(config_path.read_text()), config_path.parent)
    hub = build_hub(config)
    try:
        bodies = [payment(i, "limit") for i in range(n)]
        start = time.perf_counter()
        for body in bodies:
            hub.intake.receive(SOURCE, body, {"content-type": "application/json"})
        return n / (time.perf_counter() - start)
    finally:
        hub.engine.dispose()


# --------------------------------------------------------------------------------------
# The load


@dataclass
class Load:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    sent: int = 0
    seconds: float = 0.0


def _request(body: bytes, port: int, token: str) -> bytes:
    return (f"POST {PATH} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
            f"authorization: Bearer {token}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
            ).encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status


async def offer(port: int, rate: float, seconds: float, connections: int,
                run: str, token: str) -> Load:
    """Open-loop: request i is due at t0 + i/rate; free connections take due requests."""
    load = Load()
    total = int(rate * seconds)
    queue: asyncio.Queue[tuple[int, float]] = asyncio.Queue()

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while True:
                i, due = await queue.get()
                if i < 0:
                    return
                writer.write(_request(payment(i, run), port, token))
                try:
                    status = await _read_response(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    load.errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                load.statuses[status] = load.statuses.get(status, 0) + 1
                if status == 202:
                    load.latencies_ms.append((time.perf_counter() - due) * 1000)
        finally:
            writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(connections)]
    start = time.perf_counter()
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((i, due))
        load.sent += 1
    for _ in workers:
        queue.put_nowait((-1, 0.0))
    await asyncio.gather(*workers)
    load.seconds = time.perf_counter() - start
    return load


async def sample_backlog(engine: Engine, stop: asyncio.Event,
                         samples: list[tuple[float, int]]) -> None:
    start = time.perf_counter()
    while not stop.is_set():
        samples.append((time.perf_counter() - start, await asyncio.to_thread(backlog, engine)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


def backlog(engine: Engine) -> int:
    with engine.connect() as conn:
        raw = conn.execute(select(func.count()).select_from(raw_events)
                           .where(raw_events.c.status == "received")).scalar_one()
        due = conn.execute(select(func.count()).select_from(deliveries)
                           .where(deliveries.c.status != "done")).scalar_one()
    return int(raw) + int(due)


def slope(points: Sequence[tuple[float, int]]) -> float:
    """Least-squares growth per second."""
    if len(points) < 2:
        return 0.0
    xs = [p[0] for p in points]
    ys = [float(p[1]) for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return 0.0 if sxx == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def lags_ms(engine: Engine) -> list[float]:
    """Per delivered event: the delivery's completion minus the raw event's receipt."""
    query = (select(raw_events.c.received_at, deliveries.c.completed_at)
             .join(events, events.c.raw_event_id == raw_events.c.id)
             .join(deliveries, deliveries.c.event_id == events.c.event_id)
             .where(deliveries.c.status == "done"))
    with engine.connect() as conn:
        return [(done - received).total_seconds() * 1000
                for received, done in conn.execute(query)]


def wait_drained(engine: Engine, limit_s: float) -> float:
    start = time.perf_counter()
    while backlog(engine) and time.perf_counter() - start < limit_s:
        time.sleep(0.2)
    return time.perf_counter() - start


# --------------------------------------------------------------------------------------
# The server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(config: Path, port: int, workers: int, interval_s: float,
                 log: Path, profile: Path | None = None, clock: str = "cpu",
                 pipeline: bool = True,
                 pipeline_process: bool | None = None) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.pop("FINSYNC_DATABASE_URL", None)
    program = (["-c", "from finsync.cli.main import main; main()"] if profile is None else
               [str(Path(__file__).with_name("profiled_serve.py")), str(profile), clock])
    command = [sys.executable, *program, "serve",
               "--config", str(config), "--port", str(port), "--workers", str(workers),
               "--interval-s", str(interval_s), "--pipeline" if pipeline else "--no-pipeline",
               *_pipeline_process_flag(pipeline_process)]
    server = subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return server
        except OSError:
            if server.poll() is not None:
                raise SystemExit(f"serve exited; see {log}:\n{log.read_text()[-2000:]}") from None
            time.sleep(0.3)
    server.kill()
    raise SystemExit(f"serve did not answer within 60 s; see {log}")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    os.killpg(server.pid, signal.SIGINT)
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


PIPELINE_MARK = b"run_pipeline"  # in the command line of serve's pipeline process


def group_cpu_s(group: int) -> dict[str, float]:
    """CPU seconds (user + system) used so far by the living processes of process group
    `group` (the server), as `http` (uvicorn and its workers, with the pipeline's threads
    when it runs in-process) and `pipeline` (the pipeline's own process)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = {"http": 0, "pipeline": 0}
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            fields = (proc / "stat").read_text().rpartition(")")[2].split()
            if int(fields[2]) != group:  # pgrp; utime and stime are fields 14, 15
                continue
            role = "pipeline" if PIPELINE_MARK in (proc / "cmdline").read_bytes() else "http"
            total[role] += int(fields[11]) + int(fields[12])
    return {role: ticks / tick for role, ticks in total.items()}


def cpu_since(group: int, before: dict[str, float]) -> dict[str, float]:
    now = group_cpu_s(group)
    return {role: now[role] - before.get(role, 0.0) for role in now}


# --------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Results:
    backend: str
    rate: float
    limit_rate: float
    load: Load
    lags: list[float]
    samples: list[tuple[float, int]]
    drain_s: float
    load_cpu_s: dict[str, float]  # the server's, by role, during the load
    all_cpu_s: dict[str, float]  # the server's, by role, during the load and the drain
    client_cpu_s: float  # this process (load, sampler) during the load


def run_backend(backend: backends.Backend, args: argparse.Namespace, workdir: Path,
                say: Any) -> list[Results]:
    """The limit, then each rate on a database and a server of its own."""
    with backend.fresh() as url:
        config = write_config(Path(tempfile.mkdtemp(dir=workdir)), url)
        limit = receive_loop_rate(config, args.limit_events)
        say(f"{backend.name}: in-process receive loop {limit:,.0f}/s")
    return [run_rate(backend, rate, limit, args, workdir, say) for rate in args.rates]


def run_rate(backend: backends.Backend, rate: float, limit: float, args: argparse.Namespace,
             workdir: Path, say: Any) -> Results:
    with backend.fresh() as url:
        directory = Path(tempfile.mkdtemp(dir=workdir))
        config = write_config(directory, url)
        hub = build_hub(parse_config(tomllib.loads(config.read_text()), directory))
        token = tokens.create(hub.engine, BENCH_ADMIN, "bench", "billing",
                              [events_write(SOURCE)], utc_now()).secret
        hub.engine.dispose()
        port = free_port()
        server = start_server(config, port, args.workers, args.interval_s,
                              directory / "serve.log", args.profile, args.profile_clock,
                              args.pipeline, args.pipeline_process)
        engine = make_engine(url)
        try:
            samples: list[tuple[float, int]] = []

            async def measured() -> Load:
                stop = asyncio.Event()
                sampler = asyncio.create_task(sample_backlog(engine, stop, samples))
                load = await offer(port, rate, args.seconds, args.connections, "run", token)
                stop.set()
                await sampler
                return load

            say(f"{backend.name}: offering {rate:,.0f} req/s for {args.seconds:g} s")
            before, client_cpu = group_cpu_s(server.pid), time.process_time()
            load = asyncio.run(measured())
            load_cpu = cpu_since(server.pid, before)
            client_cpu = time.process_time() - client_cpu
            drain_s = wait_drained(engine, args.drain_s) if args.pipeline else 0.0
            all_cpu = cpu_since(server.pid, before)
            lags = lags_ms(engine)
        finally:
            stop_server(server)
            engine.dispose()
            if args.keep_log:
                args.keep_log.write_bytes((directory / "serve.log").read_bytes())
        stored = load.statuses.get(202, 0)
        assert len(lags) == stored or drain_s >= args.drain_s or not args.pipeline, (
            len(lags), stored)
        return Results(backend.name, rate, limit, load, lags, samples, drain_s, load_cpu,
                       all_cpu, client_cpu)


def report(console: Any, results: Sequence[Results], args: argparse.Namespace,
           notes: list[tuple[str, str]]) -> None:
    own = args.pipeline_process if args.pipeline_process is not None else args.workers > 1
    where = ("no pipeline" if not args.pipeline else
             "the pipeline in its own process" if own else "the pipeline in-process")
    rates = ", ".join(f"{rate:,.0f}" for rate in args.rates)
    table = RichTable(title=f"serve: {rates} req/s offered for {args.seconds:g} s, "
                            f"{args.workers} HTTP process(es), {where}, "
                            f"{args.connections} connections")
    for column in ("backend", "figure", "value", "target / limit", "ratio"):
        table.add_column(column, justify="left" if column in {"backend", "figure"} else "right")
    for r in results:
        ok = r.load.statuses.get(202, 0)
        achieved = ok / r.load.seconds
        p99 = percentile(r.load.latencies_ms, 0.99)
        lag99 = percentile(r.lags, 0.99)
        half = [s for s in r.samples if s[0] >= args.seconds / 2]
        growth = slope(half)
        others = {k: v for k, v in r.load.statuses.items() if k != 202}
        table.add_row(f"{r.backend} {r.rate:,.0f}/s", "offered rate",
                      f"{r.load.sent / r.load.seconds:,.0f}/s", "", "")
        table.add_row("", "achieved (202/s)", f"{achieved:,.0f}/s",
                      f"limit {r.limit_rate:,.0f}/s", f"{achieved / r.limit_rate:.2f}")
        table.add_row("", "HTTP 202 p50 / p99 / max",
                      f"{percentile(r.load.latencies_ms, 0.5):.1f} / {p99:.1f} / "
                      f"{max(r.load.latencies_ms, default=float('nan')):.1f} ms",
                      f"p99 ≤ {HTTP_P99_TARGET_MS:g} ms", f"{p99 / HTTP_P99_TARGET_MS:.2f}")
        table.add_row("", "event → posted p50 / p99",
                      f"{percentile(r.lags, 0.5):.0f} / {lag99:.0f} ms",
                      f"p99 ≤ {LAG_P99_TARGET_MS:g} ms", f"{lag99 / LAG_P99_TARGET_MS:.2f}")
        table.add_row("", "backlog growth (2nd half)", f"{growth:+,.1f} items/s",
                      f"≤ {r.rate / 100:,.0f}/s", "")
        table.add_row("", "backlog max / at end",
                      f"{max((s[1] for s in r.samples), default=0):,} / "
                      f"{r.samples[-1][1] if r.samples else 0:,}", "", "")
        table.add_row("", "drain after the load", f"{r.drain_s:.1f} s", "", "")
        cores = os.cpu_count() or 1
        load_cpu = sum(r.load_cpu_s.values())
        table.add_row("", "server CPU during the load: per 202 / share of the machine",
                      f"{load_cpu / max(ok, 1) * 1e6:,.0f} µs / "
                      f"{load_cpu / (cores * r.load.seconds):.0%}", "", "")
        if r.all_cpu_s["pipeline"]:
            table.add_row("", "CPU per 202, load and drain: HTTP / pipeline process",
                          f"{r.all_cpu_s['http'] / max(ok, 1) * 1e6:,.0f} / "
                          f"{r.all_cpu_s['pipeline'] / max(ok, 1) * 1e6:,.0f} µs", "", "")
        table.add_row("", "load generator CPU share",
                      f"{r.client_cpu_s / (cores * r.load.seconds):.0%}", "", "")
        table.add_row("", "other answers / lost connections",
                      f"{others or '-'} / {r.load.errors}", "", "")
    console.print(table)
    for backend in dict.fromkeys(r.backend for r in results):
        steady = [r for r in results if r.backend == backend and meets(r, args)]
        best = max(steady, key=lambda r: r.rate, default=None)
        say = ("none of the rates offered" if best is None else
               f"{best.rate:,.0f} req/s = {best.rate / best.limit_rate:.2f} of the "
               f"in-process receive loop ({best.limit_rate:,.0f}/s)")
        console.print(f"{backend}: highest steady rate meeting the targets: {say}")
    backends.print_grids(console, [("machine", notes)])


def meets(r: Results, args: argparse.Namespace) -> bool:
    """Every request answered 202 within the target, every event posted within the target,
    and no backlog growth."""
    half = [s for s in r.samples if s[0] >= args.seconds / 2]
    return (set(r.load.statuses) == {202} and not r.load.errors
            and percentile(r.load.latencies_ms, 0.99) <= HTTP_P99_TARGET_MS
            and percentile(r.lags, 0.99) <= LAG_P99_TARGET_MS
            and slope(half) <= r.rate / 100)


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", default="1000",
                        help="requests offered per s; several, comma-separated, are measured "
                             "one after the other (e.g. 250,500,750,1000)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=1, help="serve --workers")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--interval-s", type=float, default=1.0,
                        help="serve --interval-s (the fallback poll)")
    parser.add_argument("--drain-s", type=float, default=120.0,
                        help="the longest wait for the backlog to empty after the load")
    parser.add_argument("--limit-events", type=int, default=2000,
                        help="events of the in-process receive loop (the limit)")
    parser.add_argument("--backends", default="postgresql")
    parser.add_argument("--tmpdir", type=Path, default=None)
    parser.add_argument("--keep-log", type=Path, default=None,
                        help="copy the server's log here")
    parser.add_argument("--pipeline", action=argparse.BooleanOptionalAction, default=True,
                        help="--no-pipeline: serve HTTP only (serve --no-pipeline), to "
                             "measure intake alone; nothing is posted")
    parser.add_argument("--pipeline-process", action=argparse.BooleanOptionalAction,
                        default=None, help="serve --pipeline-process (the pipeline in a "
                        "process of its own) or --no-pipeline-process (in the HTTP process); "
                        "default: serve's (its own process with more than one worker)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="profile every thread of the server process (not uvicorn's "
                             "workers nor the pipeline's process) into this pstats file, "
                             "and print its top lines")
    parser.add_argument("--profile-clock", choices=("cpu", "wall"), default="cpu",
                        help="--profile: each thread's CPU time (where the work goes) or "
                             "elapsed time (where requests wait)")
    args = parser.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.rates = [float(r) for r in args.rate.split(",") if r.strip()]
    console, say = backends.make_console()
    notes = backends.machine_notes()
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        workdir = Path(tmp)
        per_backend = backends.run_backends(args.backends, workdir,
                                            lambda b: run_backend(b, args, workdir, say),
                                            notes, say, sqlite_prefix="serve",
                                            unit="measurement")
    report(console, [r for rates in per_backend for r in rates], args, notes)
    if args.profile:
        stats = pstats.Stats(str(args.profile))
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    main(sys.argv[1:])
