"""The cluster's `daily` duty (issue 20) on the 3-node cluster: the worker holding the
`daily` lease runs `serve`'s daily job (reconciliation as of yesterday, the signed audit
checkpoint, the call log's purge); another takes it over when the holder stops; a day is
reconciled once even when two workers race for it (a holder that lost its lease mid-run);
a worker that cannot or may not run it says so, in its log and in `finsync cluster status`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

import finsync
from finsync.audit.checkpoint import DAILY, every
from finsync.bootstrap import (
    DAILY_SWITCHED_OFF,
    WorkerStack,
    build_daily_duty,
    build_finance,
    build_worker,
    build_worker_stack,
)
from finsync.config import DEFAULT_CONFIG, FinsyncConfig, parse_config
from finsync.domain.clock import utc_now
from finsync.hub.held_retry import HeldRetry
from finsync.hub.pipeline import DailyJob
from finsync.recon.model import Report
from finsync.recon.service import Reconciliation
from finsync.storage.db import reading
from finsync.storage.schema import recon_runs
from finsync.streaming.client import JetStream
from finsync.streaming.settings import TransportSettings
from finsync.streaming.worker import WorkerNode
from tests.clikit import auth_section, cli_json
from tests.integration.test_kill import CONFIG

WAIT_MAX_S = 90.0  # liveness only (a loaded machine starts an interpreter slowly)
KEY_ENV = "FINSYNC_TEST_AUDIT_KEY"
KEY = "22" * 32  # an Ed25519 seed: the daily job signs its checkpoint
ENTITIES = 2  # the shipped configuration's legal entities


def _until(what: str, done: Callable[[], bool], logs: Iterator[Path] | tuple[Path, ...] = ()
           ) -> None:
    start = time.monotonic()
    while not done():
        if time.monotonic() - start > WAIT_MAX_S:
            tails = "\n".join(f"-- {log.name}:\n{log.read_text(errors='replace')[-3000:]}"
                              for log in logs if log.exists())
            raise AssertionError(f"{what}: not after {WAIT_MAX_S} s\n{tails}")
        time.sleep(0.1)


def _transport(transport: TransportSettings) -> dict[str, Any]:
    return {"kind": "nats", "servers": list(transport.servers),
            "namespace": transport.namespace, "partitions": 4, "lease_ttl_s": 2}


def _toml(table: dict[str, Any]) -> str:
    lines = []
    for key, value in table.items():
        shown = f'"{value}"' if isinstance(value, str) else (
            "[" + ", ".join(f'"{v}"' for v in value) + "]" if isinstance(value, list)
            else str(value))
        lines.append(f"{key} = {shown}")
    return "\n".join(lines) + "\n"


def _yesterday() -> date:
    return utc_now().date() - timedelta(days=1)


def _runs(engine: Engine, day: date) -> int:
    """Reconciliation runs recorded as of `day` (one per entity for one run)."""
    with reading(engine) as conn:
        return int(conn.execute(select(func.count()).select_from(recon_runs)
                                .where(recon_runs.c.as_of == day)).scalar_one())


def _daily_checkpoints(engine: Engine) -> int:
    with reading(engine) as conn:
        return sum(1 for c in every(conn) if c.reason == DAILY)


# -- two workers in this process, racing for one day ------------------------------------
def _config(tmp_path: Path, transport: TransportSettings, db_url: str,
            monkeypatch: pytest.MonkeyPatch) -> FinsyncConfig:
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    monkeypatch.setenv(KEY_ENV, KEY)
    data = tomllib.loads(DEFAULT_CONFIG.read_text())
    return parse_config({**data, "transport": _transport(transport),
                         "audit": {"signing_key_env": KEY_ENV}}, tmp_path)


class Paused:
    """A reconciliation that, once past the daily job's check (`stored`), waits for `go`
    before it runs: its worker's lease runs out meanwhile (the duty's thread renews it
    between rounds only), as a holder's does in a reconciliation longer than the lease."""

    def __init__(self, recon: Reconciliation) -> None:
        self._recon = recon
        self.entered, self.go, self.done = threading.Event(), threading.Event(), threading.Event()

    def stored(self, as_of: date) -> list[dict[str, Any]]:
        return self._recon.stored(as_of)

    def run(self, as_of: date, **options: Any) -> Report:
        self.entered.set()
        self.go.wait(WAIT_MAX_S)
        try:
            return self._recon.run(as_of, **options)
        finally:
            self.done.set()


def _worker(config: FinsyncConfig, stack: WorkerStack,
            name: str) -> tuple[WorkerNode, JetStream]:
    node, js = build_worker(config, stack, name, None)
    node.start()
    return node, js


def test_a_day_is_reconciled_once_when_two_workers_race(
        tmp_path: Path, db_url: str, engine: Engine, transport_settings: TransportSettings,
        monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(tmp_path, transport_settings, db_url, monkeypatch)
    first = build_worker_stack(config)
    second = build_worker_stack(config)
    assert first.finance is not None and second.finance is not None
    paused = Paused(first.finance.recon)
    first = replace(first, finance=replace(first.finance, recon=paused))  # type: ignore[arg-type]
    started: list[tuple[WorkerNode, JetStream]] = []
    try:
        started.append(_worker(config, first, "w-first"))
        assert paused.entered.wait(WAIT_MAX_S)  # w-first holds `daily`, past the check
        started.append(_worker(config, second, "w-second"))
        # w-first's lease runs out while it waits: w-second takes the duty and runs the day.
        _until("w-second reconciles yesterday", lambda: _runs(engine, _yesterday()) > 0)
        assert _runs(engine, _yesterday()) == ENTITIES
        paused.go.set()  # w-first finds the day recorded when it records: it keeps nothing
        assert paused.done.wait(WAIT_MAX_S)
        assert _runs(engine, _yesterday()) == ENTITIES
    finally:
        paused.go.set()
        for node, js in started:
            node.stop()
            js.close()
        first.dispose()
        second.dispose()


# -- `finsync worker` processes ---------------------------------------------------------
def _process(config: Path, log: Path, db_url: str, *args: str,
             **more_env: str) -> subprocess.Popen[bytes]:
    # This checkout's finsync, whatever the working directory (the test runs in tmp_path).
    source = str(Path(finsync.__file__).resolve().parents[1])
    env = {**os.environ, "FINSYNC_DATABASE_URL": db_url, KEY_ENV: KEY, **more_env,
           "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])}
    with log.open("ab") as out:  # the child holds its own copy
        return subprocess.Popen([sys.executable, "-m", "finsync", "worker", "--config",
                                 str(config), *args], env=env, cwd=log.parent, stdout=out,
                                stderr=subprocess.STDOUT)


def _shipped(tmp_path: Path, transport: TransportSettings) -> Path:
    """The shipped configuration, signing with `KEY_ENV`, on `transport`."""
    text = DEFAULT_CONFIG.read_text().replace('[transport]\nkind = "inprocess"\n',
                                               "[transport]\n" + _toml(_transport(transport)))
    assert 'kind = "nats"' in text
    path = tmp_path / "finsync.toml"
    path.write_text(f'{text}\n[audit]\nsigning_key_env = "{KEY_ENV}"\n\n{auth_section()}')
    return path


def _holder(js: JetStream, transport: TransportSettings, lease: str) -> bytes | None:
    entry = js.kv(transport.bucket("leases"), ttl_s=2).get(lease)
    return None if entry is None else entry.value


def _stopped(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()


def test_the_holder_runs_the_daily_job_and_another_takes_it_over(
        tmp_path: Path, db_url: str, engine: Engine,
        transport_settings: TransportSettings) -> None:
    config = _shipped(tmp_path, transport_settings)
    logs = (tmp_path / "a.log", tmp_path / "b.log")
    a = _process(config, logs[0], db_url, "--name", "w-a")
    b: subprocess.Popen[bytes] | None = None
    try:
        with JetStream(transport_settings, "observer") as js:
            # Its daily job: yesterday reconciled, then the day's checkpoint signed.
            _until("w-a runs the daily job", lambda: _daily_checkpoints(engine) == 1, logs)
            assert _holder(js, transport_settings, "daily") == b"w-a"
            assert _runs(engine, _yesterday()) == ENTITIES
            b = _process(config, logs[1], db_url, "--name", "w-b")
            nodes = js.kv(transport_settings.bucket("nodes"), ttl_s=2)
            _until("w-b owns partitions", lambda: b"w-b" in {
                _holder(js, transport_settings, f"p{p}") for p in range(4)}, logs)
            assert _holder(js, transport_settings, "daily") == b"w-a"
            assert _daily_checkpoints(engine) == 1  # w-b, up, did not run it
            assert sorted(nodes.keys()) == ["w-a", "w-b"]
            a.send_signal(signal.SIGTERM)
            assert a.wait(WAIT_MAX_S) == 0, logs[0].read_text()
            # w-b's daily job (a new process's, as after a restart of `serve`) signs the
            # day's checkpoint again and leaves the day's reconciliation as w-a recorded it.
            _until("w-b takes the daily job over", lambda: _daily_checkpoints(engine) == 2,
                   logs)
            assert _holder(js, transport_settings, "daily") == b"w-b"
            assert _runs(engine, _yesterday()) == ENTITIES
    finally:
        _stopped(a)
        if b is not None:
            _stopped(b)


def _ledger_only(tmp_path: Path, url: str, transport: TransportSettings) -> Path:
    """A configuration with a ledger and no revenue engine nor billing system."""
    path = tmp_path / "ledger-only.toml"
    path.write_text(CONFIG.format(url=url) + "\n" + auth_section() + "\n[transport]\n"
                    + _toml(_transport(transport)))
    return path


def test_a_worker_without_the_daily_duty_says_so(
        tmp_path: Path, db_url: str, transport_settings: TransportSettings,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    monkeypatch.chdir(tmp_path)
    ledger_only = _ledger_only(tmp_path, db_url, transport_settings)
    logs = (tmp_path / "ledger.log", tmp_path / "cron.log", tmp_path / "env.log")
    processes = (_process(ledger_only, logs[0], db_url, "--name", "w-ledger"),
                 _process(ledger_only, logs[1], db_url, "--name", "w-cron", "--no-daily"),
                 _process(ledger_only, logs[2], db_url, "--name", "w-env",
                          FINSYNC_DAILY="off"))
    try:
        def all_up() -> bool:
            found = cli_json(["cluster", "status", "--config", str(ledger_only)])
            return sorted(n["name"] for n in found["nodes"]) == ["w-cron", "w-env", "w-ledger"]
        _until("the workers heartbeat", all_up, logs)
        found = cli_json(["cluster", "status", "--config", str(ledger_only)])
        declined = {n["name"]: n["declined"] for n in found["nodes"]}
        assert "no system with role 'revenue'" in declined["w-ledger"]["daily"]
        assert declined["w-cron"]["daily"] == declined["w-env"]["daily"] == DAILY_SWITCHED_OFF
        assert found["singletons"]["daily"] is None
        assert set(found["singletons"]) == {"relay", "duties", "daily"}
        assert found["singletons"]["duties"] in {"w-cron", "w-env", "w-ledger"}
        for log in logs:
            assert log.read_text().count("runs without the daily duty") == 1
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(WAIT_MAX_S)
            finally:
                _stopped(process)


def test_the_daily_duty_is_serves_daily_job_and_its_held_invoice_retry(
        tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSYNC_DATABASE_URL", db_url)
    finance = build_finance(parse_config(tomllib.loads(DEFAULT_CONFIG.read_text()), tmp_path))
    try:
        daily, held = build_daily_duty(finance)  # the embedded billing holds invoices
        assert isinstance(daily, DailyJob)
        assert isinstance(getattr(held, "__self__", None), HeldRetry)
        holds_none = replace(finance, ports=replace(finance.ports, held={}))
        assert [type(step) for step in build_daily_duty(holds_none)] == [DailyJob]
    finally:
        finance.dispose()
