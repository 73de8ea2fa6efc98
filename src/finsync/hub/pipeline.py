"""The pipeline: how a defect in one item is described, and the supervised threads that run
the hub in `finsync serve`.

Rules:
- A defect in one item (a raw event, a delivery) is quarantined on that item: its summary
  is `describe(exc)`, one short line (the error's type and the first line of its message,
  never the SQL or its bound parameters, credentials in URLs masked) and its detail the
  traceback (`trace(exc)`). Both are `storable`: no NUL and no lone surrogate, which
  PostgreSQL would refuse and so fail the quarantine itself.
- A worker thread's iteration is guarded: an error is logged (the short description and the
  stack, never the message's data), counted, and the loop goes on after a backoff that
  doubles from the interval up to `backoff_max_s`. Only a `BaseException` ends the thread;
  it is recorded as the thread's death and the supervisor starts a new thread.
- A worker records, on the hub's clock, when its last iteration completed and when it last
  made progress (something processed or delivered, reported even in the middle of a long
  iteration).
- Unhealthy: a thread that died, or work waiting (a raw event received, a delivery due) while
  no iteration completed and no progress was made within the stall window (by default
  5 x interval + 30 s).
- The supervisor restarts dead threads when `check()` is called: the app calls it every
  `check_s` from its lifespan, so recovery does not wait for anyone to ask `/healthz`.
- The daily job (reconciliation as of yesterday) has a thread of its own: a long run never
  holds back deliveries, and its failure is retried on its next iteration.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import StatementError

from finsync.domain.secret import mask_secrets
from finsync.hub.wakeup import Wakeup
from finsync.storage import outbox, raw_log
from finsync.storage.db import reading
from finsync.storage.text import storable

if TYPE_CHECKING:
    from finsync.hub.service import Hub

# `serve` names itself to its pipeline process, which ends once `serve` is no longer its
# parent (`api.main.run_pipeline`).
SERVE_PID_ENV = "FINSYNC_SERVE_PID"

log = logging.getLogger(__name__)

SUMMARY_MAX_CHARS = 300
DETAIL_MAX_CHARS = 20_000

# An iteration: called with `progressed` (to report work done mid-way); returns how much it
# did (0: nothing to do).
Step = Callable[[Callable[[], None]], int]
# What waits for a worker, named ("raw events are waiting"); empty when nothing does.
Waiting = Callable[[], Sequence[str]]


def describe(exc: BaseException) -> str:
    """One short, storable line for an error: never a statement or its parameters."""
    message = str(exc)
    if isinstance(exc, StatementError) and exc.orig is not None:
        message = str(exc.orig)  # the driver's words, without SQLAlchemy's [SQL: ...] block
    first = message.strip().splitlines()[0] if message.strip() else ""
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    text = storable(mask_secrets(text))
    if len(text) > SUMMARY_MAX_CHARS:
        text = text[:SUMMARY_MAX_CHARS - 1] + "…"
    return text


def trace(exc: BaseException) -> str:
    """The traceback, storable, its middle cut when longer than `DETAIL_MAX_CHARS`."""
    text = storable("".join(traceback.format_exception(exc)))
    if len(text) <= DETAIL_MAX_CHARS:
        return text
    half = DETAIL_MAX_CHARS // 2
    return f"{text[:half]}\n[… {len(text) - 2 * half} characters cut …]\n{text[-half:]}"


def _stack(exc: BaseException) -> str:
    """Where an error happened, for the log: the frames only, not the message's data."""
    return "".join(traceback.format_tb(exc.__traceback__))


@dataclass(frozen=True, slots=True)
class WorkerHealth:
    name: str
    alive: bool
    reasons: tuple[str, ...]
    last_iteration_at: datetime | None
    last_progress_at: datetime | None
    failures: int
    restarts: int
    last_error: str | None

    def as_json(self) -> dict[str, Any]:
        return {"alive": self.alive, "healthy": not self.reasons,
                "last_iteration_at": _iso(self.last_iteration_at),
                "last_progress_at": _iso(self.last_progress_at), "failures": self.failures,
                "restarts": self.restarts, "last_error": self.last_error}


@dataclass(frozen=True, slots=True)
class Health:
    workers: tuple[WorkerHealth, ...]

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(reason for w in self.workers for reason in w.reasons)

    @property
    def healthy(self) -> bool:
        return not self.reasons

    def as_json(self) -> dict[str, Any]:
        return {"status": "ok" if self.healthy else "unhealthy", "reasons": list(self.reasons),
                "workers": {w.name: w.as_json() for w in self.workers}}


class PipelineWorker:
    """One loop in a thread of its own: `step` every `interval_s`, guarded."""

    def __init__(self, name: str, step: Step, clock: Callable[[], datetime],
                 interval_s: float, *, waiting: Waiting | None = None,
                 stall_s: float | None = None, backoff_max_s: float = 60.0,
                 wakeup: Wakeup | None = None, batch_size: int = 1,
                 linger_s: float = 0.0) -> None:
        self.name, self._step, self._clock = name, step, clock
        # With a wake-up, the worker sleeps until work is notified (a batch's worth, or
        # `linger_s` after the first item), `interval_s` at most: retries that fall due.
        self._wakeup, self._batch_size, self._linger_s = wakeup, batch_size, linger_s
        self._waiting = waiting or _nothing
        self.interval_s = interval_s
        self.stall_s = 5 * interval_s + 30 if stall_s is None else stall_s
        self.backoff_max_s = max(backoff_max_s, interval_s)
        self._stopping, self._wake = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None
        self._since = clock()  # the stall window's start until something happens
        self.last_iteration_at: datetime | None = None
        self.last_progress_at: datetime | None = None
        self.failures = self.restarts = self._failing = 0
        self.last_error: str | None = None
        self.death: str | None = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def dead(self) -> bool:
        """Started, not stopped, and its thread has ended."""
        return self._thread is not None and not self.alive and not self._stopping.is_set()

    def start(self) -> None:
        if self.alive:
            return
        if self._thread is not None:
            self.restarts += 1
        self._stopping.clear()
        self.death, self._since = None, self._clock()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end after its current iteration (`join` waits for it)."""
        self._stopping.set()
        self._wake.set()
        if self._wakeup is not None:
            self._wakeup.notify()

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for the thread to end; True when it has."""
        if self._thread is not None:
            self._thread.join(timeout_s)
        return not self.alive

    def wake(self) -> None:
        """Run the next iteration now instead of after the interval."""
        self._wake.set()
        if self._wakeup is not None:
            self._wakeup.notify()

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                self._sleep()
                if not self._stopping.is_set():
                    self.run_once()
        except BaseException as exc:  # the thread's death is recorded, not lost
            self.death = describe(exc)
            log.critical("%s thread died: %s\n%s", self.name, self.death, _stack(exc))

    def _sleep(self) -> None:
        """Until woken (work notified, `wake`, `stop`) or the pause is over. The signal is
        taken before the iteration reads its work, so what is notified meanwhile wakes the
        next one."""
        if self._wakeup is None or self._failing:
            self._wake.wait(self._pause_s())
            self._wake.clear()
            return
        self._wakeup.wait_batch(self._batch_size, self._linger_s, self._pause_s())
        self._wakeup.take()
        self._wake.clear()

    def _pause_s(self) -> float:
        if not self._failing:
            return self.interval_s
        doublings = min(self._failing - 1, 30)  # 2.0 ** 1024 would overflow
        return min(self.interval_s * 2.0 ** doublings, self.backoff_max_s)

    def run_once(self) -> bool:
        """One guarded iteration; False when it failed (logged and counted)."""
        try:
            done = self._step(self.progressed)
        except Exception as exc:
            self.failures += 1
            self._failing += 1
            self.last_error = describe(exc)
            log.error("%s: iteration failed (retrying in %.1f s): %s\n%s", self.name,
                      self._pause_s(), self.last_error, _stack(exc))
            return False
        self._failing = 0
        now = self._clock()
        self.last_iteration_at = now
        if done:
            self.last_progress_at = now
        return True

    def progressed(self) -> None:
        self.last_progress_at = self._clock()

    def health(self) -> WorkerHealth:
        return WorkerHealth(self.name, self.alive, self._reasons(), self.last_iteration_at,
                            self.last_progress_at, self.failures, self.restarts,
                            self.last_error)

    def _reasons(self) -> tuple[str, ...]:
        if self.dead:
            return (f"{self.name} thread is dead ({self.death or 'ended'})",)
        moments = [m for m in (self._since, self.last_iteration_at, self.last_progress_at)
                   if m is not None]
        idle_s = (self._clock() - max(moments)).total_seconds()
        if idle_s <= self.stall_s:
            return ()
        try:
            waiting = self._waiting()
        except Exception as exc:
            return (f"{self.name} is idle for {idle_s:.0f} s and what waits for it cannot be "
                    f"read: {describe(exc)}",)
        if not waiting:
            return ()
        return (f"{self.name} completed no iteration and made no progress for {idle_s:.0f} s "
                f"(stall window {self.stall_s:.0f} s) while {' and '.join(waiting)}",)


class Supervisor:
    """The app's pipeline threads: started and stopped together, restarted when dead."""

    def __init__(self, workers: Sequence[PipelineWorker], check_s: float = 5.0,
                 on_stop: Sequence[Callable[[], None]] = ()) -> None:
        self.workers, self.check_s = tuple(workers), check_s
        self._on_stop = tuple(on_stop)  # what the workers held open (the wake-up listener)

    def worker(self, name: str) -> PipelineWorker:
        return next(w for w in self.workers if w.name == name)

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        for worker in self.workers:
            worker.stop()
        for worker in self.workers:
            worker.join(timeout_s)
        for release in self._on_stop:
            release()

    def check(self) -> list[str]:
        """Start a new thread for each dead one; returns their names."""
        restarted: list[str] = []
        for worker in self.workers:
            if not worker.dead:
                continue
            log.error("%s thread is dead (%s); starting it again", worker.name,
                      worker.death or "ended")
            try:
                worker.start()
            except Exception as exc:  # no thread to be had now: the next check tries again
                log.error("%s could not be started: %s", worker.name, describe(exc))
                continue
            restarted.append(worker.name)
        return restarted

    def health(self) -> Health:
        return Health(tuple(w.health() for w in self.workers))


class DailyJob:
    """`job(yesterday)` once per day of the clock; a failed run is tried again on the next
    iteration."""

    def __init__(self, job: Callable[[date], object], clock: Callable[[], datetime]) -> None:
        self._job, self._clock = job, clock
        self.last_day: date | None = None

    def __call__(self, progressed: Callable[[], None]) -> int:
        today = self._clock().date()
        if self.last_day == today:
            return 0
        self._job(today - timedelta(days=1))
        self.last_day = today
        return 1


PIPELINE, DAILY = "finsync-pipeline", "finsync-daily"
# How long the pipeline lets a batch fill after the first item is notified: a short wait
# buys whole batches under load and costs at most this much latency when idle.
LINGER_S = 0.005


def hub_pipeline(hub: Hub, interval_s: float, daily: Callable[[date], object] | None = None,
                 *, stall_s: float | None = None, check_s: float = 5.0) -> Supervisor:
    """The hub until idle whenever work is notified (`hub.wakeup`), at least every
    `interval_s`, and the daily job in a thread of its own."""
    def step(progressed: Callable[[], None]) -> int:
        summary = hub.run_until_idle(lambda _stage, _done, _total: progressed())
        return summary.raw_processed + summary.deliveries_attempted

    workers = [PipelineWorker(PIPELINE, step, hub.clock, interval_s,
                              waiting=lambda: work_waiting(hub), stall_s=stall_s,
                              wakeup=hub.wakeup, batch_size=hub.settings.intake_batch_size,
                              linger_s=LINGER_S)]
    if daily is not None:
        workers.append(PipelineWorker(DAILY, DailyJob(daily, hub.clock), hub.clock,
                                      interval_s, stall_s=stall_s))
    return Supervisor(workers, check_s, on_stop=(hub.wakeup.close,))


def work_waiting(hub: Hub) -> list[str]:
    """What waits for the pipeline now: raw events received, deliveries due."""
    waiting: list[str] = []
    with reading(hub.engine) as conn:
        if raw_log.pending(conn, 1):
            waiting.append("raw events are waiting")
        if outbox.any_due(conn, hub.clock()):
            waiting.append("deliveries are due")
    return waiting


def _nothing() -> Sequence[str]:
    return ()


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
