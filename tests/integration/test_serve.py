"""`serve`'s threads: the daily reconciliation in a thread of its own never holds back a
delivery; usage totals have a worker of their own; an HTTP-only app runs no pipeline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine

from finsync.api.app import USAGE, create_app, pipeline_supervisor
from finsync.cli import serving
from finsync.domain.limits import InputLimits
from finsync.hub.pipeline import DAILY, PIPELINE
from finsync.hub.usage import UsageIntake
from tests import authkit
from tests.builders import envelope, payment_doc
from tests.clikit import with_auth
from tests.hubkit import make_hub

PAYMENT = json.dumps(envelope("payment.applied", "gw-1", ("payment", "pay_1", None),
                              {"payment": payment_doc("pay_1", "10.00", "inv_1")},
                              correlation_id="c1")).encode()


def _wait(condition: object, timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.05)
    return False


def test_a_long_reconciliation_never_holds_back_a_delivery(engine: Engine,
                                                          tmp_path: Path) -> None:
    hub = make_hub(engine, tmp_path)
    started, release = threading.Event(), threading.Event()

    def reconcile(_as_of: date) -> None:  # runs until the test lets it go
        started.set()
        release.wait(60)

    app = create_app(hub, worker_interval_s=0.05, daily=reconcile)
    try:
        with authkit.client(app, engine) as client:
            assert started.wait(30)  # the daily run is in progress …
            response = client.post("/v1/sources/billing/events", content=PAYMENT)
            assert response.status_code == 202
            # … and the payment is delivered all the same
            assert _wait(lambda: hub.delivered(["ledger"]))
            assert not release.is_set()
            pipeline = app.state.pipeline
            assert {w.name for w in pipeline.workers} == {PIPELINE, DAILY}
            release.set()
    finally:
        release.set()


def test_usage_has_a_worker_of_its_own(engine: Engine, tmp_path: Path) -> None:
    hub = make_hub(engine, tmp_path)
    closed: list[bool] = []
    hub.wakeup.close = lambda: closed.append(True)  # type: ignore[method-assign]
    usage = UsageIntake(engine, hub.clock, None, ["metering"], lambda _s: InputLimits())
    supervisor = pipeline_supervisor(hub, 1.0, None, usage, usage_interval_s=5.0)
    assert [w.name for w in supervisor.workers] == [PIPELINE, USAGE]
    assert supervisor.worker(USAGE).interval_s == 5.0
    supervisor.stop()  # the pipeline's wake-up listener (PostgreSQL) is closed with it
    assert closed == [True]


def test_an_http_only_app_runs_no_pipeline_and_still_stores(engine: Engine,
                                                             tmp_path: Path) -> None:
    woken: list[int] = []
    app = create_app(make_hub(engine, tmp_path), wake=woken.append)
    with authkit.client(app, engine) as client:
        response = client.post("/v1/sources/billing/events", content=PAYMENT)
        health = client.get("/healthz").json()
    assert response.status_code == 202 and app.state.pipeline is None
    assert health["pipeline"] == "not run by this process"
    assert woken == [1]  # the pipeline elsewhere is told about the committed batch


def test_the_pipeline_process_is_started_again_when_it_ends_and_stopped_after(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    starts = tmp_path / "starts"
    # Each start appends a line; the first two end at once, the third runs until stopped.
    script = (f"import time; p = {str(starts)!r}; open(p, 'a').write('x\\n'); "
              "n = len(open(p).read().split()); time.sleep(0 if n < 3 else 60)")
    monkeypatch.setattr(serving, "RESTART_PAUSE_S", 0.01)
    with serving.pipeline_process(True, [sys.executable, "-c", script]):
        assert _wait(lambda: starts.exists() and len(starts.read_text().split()) >= 3)
    assert len(starts.read_text().split()) == 3  # the third was stopped, not restarted


def test_the_pipeline_runs_apart_with_several_workers_or_when_asked() -> None:
    assert not serving.runs_apart(True, 1, None)  # one process: HTTP and the pipeline
    assert serving.runs_apart(True, 4, None)
    assert serving.runs_apart(True, 1, True)  # --pipeline-process
    assert not serving.runs_apart(False, 4, True)  # --no-pipeline wins
    with pytest.raises(ValueError, match="process of its own"):
        serving.runs_apart(True, 2, False)  # each worker would run a pipeline


def _running(pid: int) -> bool:
    """Whether `pid` runs (an ended process its new parent has not reaped is a zombie)."""
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def _environ(proc: Path) -> bytes:
    try:
        return (proc / "environ").read_bytes()
    except OSError:  # ended meanwhile, or not ours to read
        return b""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_the_pipeline_process_ends_when_serve_is_gone_without_stopping_it(
        tmp_path: Path) -> None:
    """uvicorn re-raises the SIGTERM it handled, which ends `serve` before it stops its
    pipeline process; a SIGKILL gives it no chance at all. Here `serve` is a parent that
    starts the pipeline and ends without a word: the pipeline must not outlive it."""
    config = tmp_path / "finsync.toml"
    config.write_text(with_auth())
    parent = (
        "import os, time\n"
        "from finsync.cli import serving\n"
        "with serving.pipeline_process(True):\n"
        "    time.sleep(3)\n"
        "    os._exit(0)\n")  # gone without leaving the block, as after a re-raised SIGTERM
    env = {**os.environ, "FINSYNC_CONFIG": str(config),
           "FINSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'hub.db'}"}
    assert subprocess.run([sys.executable, "-c", parent], env=env, timeout=60).returncode == 0
    pids = [int(d.name) for d in Path("/proc").iterdir() if d.name.isdigit()
            and f"FINSYNC_CONFIG={config}".encode() in _environ(d)]
    assert len(pids) == 1, pids  # the pipeline process serve started
    pid = pids[0]
    ended = _wait(lambda: not _running(pid), timeout_s=30)
    if not ended:
        os.kill(pid, signal.SIGKILL)
    assert ended, "the pipeline process outlived serve"
