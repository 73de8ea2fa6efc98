"""`serve --workers N` (or `--pipeline-process`): the pipeline's own process, started beside
the HTTP processes and started again when it ends by itself (the HTTP processes are
uvicorn's to supervise); and the roles a served process can take (`serve --role`)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum

from finsync.hub.pipeline import SERVE_PID_ENV

log = logging.getLogger(__name__)


class Role(StrEnum):
    """What a served process is: the whole hub (the API and its pipeline), or an intake
    node of a NATS JetStream deployment (no pipeline; the app's `FINSYNC_ROLE`)."""

    ALL = "all"
    INTAKE = "intake"


RESTART_PAUSE_S = 1.0
STOP_WAIT_S = 30.0
# By name: the CLI does not import the API.
_COMMAND = [sys.executable, "-c", "from finsync.api.main import run_pipeline; run_pipeline()"]


def runs_apart(pipeline: bool, workers: int, asked: bool | None) -> bool:
    """Whether the pipeline runs in a process of its own: when asked (`--pipeline-process`),
    else with more than one HTTP process (each would otherwise run one); never without a
    pipeline. `ValueError` when asked to run it in-process beside several HTTP processes."""
    if not pipeline:
        return False
    if asked is False and workers > 1:
        raise ValueError("with more than one worker the pipeline runs in a process of its own")
    return workers > 1 if asked is None else asked


@contextmanager
def pipeline_process(wanted: bool, command: Sequence[str] = _COMMAND) -> Iterator[None]:
    """While the block runs, the pipeline (`command`) runs in a child process (when
    `wanted`), started again whenever it ends by itself; it is stopped after the block."""
    if not wanted:
        yield
        return
    stopping, lock = threading.Event(), threading.Lock()
    current: list[subprocess.Popen[bytes]] = []

    def keep_running() -> None:
        while True:
            with lock:  # never start one after the block has ended
                if stopping.is_set():
                    return
                env = {**os.environ, SERVE_PID_ENV: str(os.getpid())}
                child = subprocess.Popen(list(command), env=env)
                current[:] = [child]
            code = child.wait()
            if not stopping.is_set():
                log.error("the pipeline process ended (exit %s); starting it again", code)
                stopping.wait(RESTART_PAUSE_S)

    watcher = threading.Thread(target=keep_running, name="finsync-pipeline-process",
                               daemon=True)
    watcher.start()
    try:
        yield
    finally:
        with lock:
            stopping.set()
        for child in current:
            child.terminate()
            try:
                child.wait(STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                child.kill()
        watcher.join(STOP_WAIT_S)
