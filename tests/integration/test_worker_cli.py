"""`finsync worker` as a real process on the 3-node cluster (issue 20): it takes the
partitions it is given, SIGTERM releases its leases at once, and after a SIGKILL they run
out by themselves; without NATS, or with partitions that do not exist, it is refused."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import finsync
from finsync.streaming.client import JetStream
from finsync.streaming.settings import TransportSettings
from tests.clikit import auth_section, cli_json
from tests.integration.test_kill import CONFIG

WAIT_MAX_S = 90.0  # liveness only (a loaded machine starts an interpreter slowly)


def _config(tmp_path: Path, url: str, transport: TransportSettings | None) -> Path:
    text = CONFIG.format(url=url) + "\n" + auth_section()
    if transport is not None:
        servers = ", ".join(f'"{s}"' for s in transport.servers)
        text += (f'\n[transport]\nkind = "nats"\nservers = [{servers}]\n'
                 f'namespace = "{transport.namespace}"\npartitions = 4\nlease_ttl_s = 2\n')
    path = tmp_path / "finsync.toml"
    path.write_text(text)
    return path


def _until(what: str, done: Callable[[], bool], log: Path) -> None:
    start = time.monotonic()
    while not done():
        if time.monotonic() - start > WAIT_MAX_S:
            raise AssertionError(f"{what}: not after {WAIT_MAX_S} s; the worker's log:\n"
                                 f"{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)


def _worker(config: Path, tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    # This checkout's finsync, whatever the working directory (the test runs in tmp_path).
    source = str(Path(finsync.__file__).resolve().parents[1])
    env = {**os.environ, "FINSYNC_DATABASE_URL": "",
           "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])}
    with (tmp_path / "worker.log").open("ab") as log:  # the child holds its own copy
        return subprocess.Popen([sys.executable, "-m", "finsync", "worker", "--config",
                                 str(config), *args], env=env, cwd=tmp_path, stdout=log,
                                stderr=subprocess.STDOUT)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL])
def test_sigterm_releases_the_leases_and_sigkill_leaves_them_to_run_out(
        db_url: str, tmp_path: Path, transport_settings: TransportSettings,
        stop: signal.Signals) -> None:
    config = _config(tmp_path, db_url, transport_settings)
    log = tmp_path / "worker.log"
    worker = _worker(config, tmp_path, "--partitions", "1-2", "--name", "w-cli")
    try:
        with JetStream(transport_settings, "observer") as js:
            _until("the worker starts", lambda: js.kv(
                transport_settings.bucket("leases"), ttl_s=2).keys() == ["p1", "p2"], log)
            leases = js.kv(transport_settings.bucket("leases"), ttl_s=2)
            entry = leases.get("p1")
            assert entry is not None and entry.value == b"w-cli"
            # A daemon's log says what it does, with the UTC time (INFO, not only warnings).
            _until("the log tells", lambda: re.search(
                r"\d\d:\d\d:\d\dZ INFO finsync\.streaming\.ownership: w-cli owns partitions 1-2\n",
                log.read_text(errors="replace")) is not None, log)
            worker.send_signal(stop)
            code = worker.wait(WAIT_MAX_S)
            if stop is signal.SIGTERM:
                assert code == 0, (tmp_path / "worker.log").read_text()
                assert leases.keys() == []  # released: taken over at the next round
            else:
                assert leases.keys() == ["p1", "p2"]  # left to run out
                _until("the leases run out", lambda: leases.keys() == [], log)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_a_worker_needs_nats_and_existing_partitions(
        db_url: str, tmp_path: Path, transport_settings: TransportSettings,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSYNC_DATABASE_URL", "")
    monkeypatch.chdir(tmp_path)
    without = _config(tmp_path, db_url, None)
    refused = cli_json(["worker", "--config", str(without)], code=1)["error"]
    assert refused["code"] == "transport_not_configured"
    with_nats = _config(tmp_path, db_url, transport_settings)
    refused = cli_json(["worker", "--config", str(with_nats), "--partitions", "3-4"],
                       code=1)["error"]
    assert refused["code"] == "invalid_partitions"
    assert "partition 4 does not exist" in refused["message"]
