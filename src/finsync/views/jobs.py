"""Long operations run in the background (reconcile, replay), so that a page that starts
one is never blocked: the start answers at once with a job id, and the job's progress is
read until it has finished.

Rules:
- One job of a kind runs at a time: starting another while one runs answers the running
  job (a second click on "run reconciliation" does not run it twice).
- A job's progress is the stage it is in and `done` of `total` (total 0: not known yet).
- Jobs live in the process that runs them, and the last `KEPT` finished jobs are kept for
  reading; what they changed is in the database and the audit trail like any other run.
- A process that stops waits for its running jobs (`wait`, bounded) before it lets go of
  the database, so a job never loses its connection half-way.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from finsync.domain.errors import DomainError

log = logging.getLogger(__name__)
KEPT = 50
RUNNING, DONE, FAILED = "running", "done", "failed"


class UnknownJobError(DomainError):
    code = "not_found"


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    kind: str
    started_by: str
    started_at: datetime
    status: str = RUNNING
    stage: str = ""
    done: int = 0
    total: int = 0
    finished_at: datetime | None = None
    result: dict[str, Any] | None = None
    error: dict[str, str] | None = None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "started_by": self.started_by,
                "started_at": self.started_at.isoformat(), "status": self.status,
                "stage": self.stage, "done": self.done, "total": self.total,
                "finished_at": None if self.finished_at is None
                else self.finished_at.isoformat(),
                "result": self.result, "error": self.error}


Progress = Callable[[str, int, int], None]  # (stage, done, total)
Work = Callable[[Progress], dict[str, Any]]


class Jobs:
    """The background jobs of this process."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._threads: dict[str, threading.Thread] = {}

    def start(self, kind: str, started_by: str, work: Work) -> Job:
        """Run `work` in a thread of its own; the running job of `kind` if there is one."""
        with self._lock:
            running = next((j for j in self._jobs.values()
                            if j.kind == kind and j.status == RUNNING), None)
            if running is not None:
                return running
            job = Job(f"job_{next(self._ids)}", kind, started_by, self.clock())
            self._jobs[job.id] = job
            self._trim()
        thread = threading.Thread(target=self._run, args=(job.id, work),
                                  name=f"finsync-{job.id}", daemon=True)
        with self._lock:
            self._threads[job.id] = thread
        thread.start()
        return job

    def wait(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` in all for the running jobs; True if none is left."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in threads)

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise UnknownJobError(f"no job {job_id[:40]!r} in this process")
        return job

    def _run(self, job_id: str, work: Work) -> None:
        def progress(stage: str, done: int, total: int) -> None:
            self._update(job_id, stage=stage, done=done, total=total)
        try:
            result = work(progress)
        except DomainError as exc:
            self._update(job_id, status=FAILED, finished_at=self.clock(),
                         error={"code": exc.code, "message": str(exc)})
        except Exception as exc:  # a job never takes its thread's reason with it silently
            log.exception("job %s failed", job_id)
            self._update(job_id, status=FAILED, finished_at=self.clock(),
                         error={"code": "internal_error", "message": type(exc).__name__})
        else:
            self._update(job_id, status=DONE, finished_at=self.clock(), result=result)
        finally:
            with self._lock:
                self._threads.pop(job_id, None)

    def _update(self, job_id: str, **changes: Any) -> None:
        with self._lock:
            self._jobs[job_id] = replace(self._jobs[job_id], **changes)

    def _trim(self) -> None:
        finished = [k for k, j in self._jobs.items() if j.status != RUNNING]
        for key in finished[:max(0, len(finished) - KEPT)]:
            del self._jobs[key]
