"""What the kill tests share: how far the pipeline has got, and waiting for workers to
start on it."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

from sqlalchemy import Engine

from finsync.storage import outbox, raw_log
from finsync.storage.db import transaction


def progress(engine: Engine) -> tuple[int, int]:
    """(deliveries done, raw events or deliveries still to do)."""
    with transaction(engine) as conn:
        counts = outbox.counts(conn)
        waiting = raw_log.counts(conn).get("received", 0)
    return counts.get("done", 0), waiting + sum(n for s, n in counts.items() if s != "done")


def wait_for_work_to_start(engine: Engine, done_before: int,
                           workers: list[multiprocessing.process.BaseProcess],
                           log: Path) -> None:
    """Until a delivery is done; a worker that failed (a refused configuration, say) fails
    the test at once, with its log."""
    deadline = time.monotonic() + 30
    while progress(engine)[0] == done_before and time.monotonic() < deadline:
        failed = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
        assert not failed, f"a worker exited with {failed}: {log.read_text()}"
        time.sleep(0.02)


def kill_mid_work(engine: Engine, workers: list[multiprocessing.process.BaseProcess],
                  log: Path, pause_s: float) -> bool:
    """Waits for the workers to start delivering, lets them run `pause_s` (a random point
    inside the work), SIGKILLs every one; True when they were killed with work left."""
    done_before, _ = progress(engine)
    wait_for_work_to_start(engine, done_before, workers, log)
    time.sleep(pause_s)
    for proc in workers:
        proc.kill()  # SIGKILL
        proc.join()
    done_after, left = progress(engine)
    return done_after > done_before and left > 0
