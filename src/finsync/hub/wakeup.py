"""Wake-up: the pipeline sleeps until there is work instead of polling on an interval.

Rules:
- Whoever commits work for the pipeline (intake, a pump, a replay) calls `notify(count)`
  after its commit. A notification before the commit could wake the worker to find nothing,
  and it would then sleep while the work waits.
- `wait(timeout_s)` returns as soon as something was notified since the last `take()`, or
  after `timeout_s` (the fallback poll: retries falling due, work from a process that does
  not notify). A notification is never lost: one that arrives while nobody waits is kept
  until the next `wait`.
- Batches form by size or linger, whichever comes first: `wait_batch` returns once `size`
  items were notified, or `linger_s` after the first one.
- On PostgreSQL, other processes' work wakes this one too: the hub migration 0005 has
  `raw_events` notify channel `CHANNEL` once per inserting statement (folded into one per
  transaction), with the writer's `application_name` as the payload; the listener ignores
  its own process's (its writers call `notify`, with counts), so that only another
  process's work wakes it that way.
  `PostgresWakeup` listens on its own connection, in a thread, and turns each notification
  into a local `notify`. If the listening connection breaks it is opened again, and a
  wake-up is given in case something was missed meanwhile.
- SQLite has no cross-process signal: another process's work is found by the fallback poll.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from sqlalchemy import Engine

from finsync.storage.db import process_name

log = logging.getLogger(__name__)

CHANNEL = "finsync_work"  # the notify channel of migration 0005's trigger
_RECONNECT_S = 1.0  # pause before listening again after the connection broke
_LISTEN_TICK_S = 0.5  # how often the listener looks whether it must stop


class Wakeup(Protocol):
    def notify(self, count: int = 1) -> None: ...
    def wait(self, timeout_s: float) -> bool: ...
    def wait_batch(self, size: int, linger_s: float, timeout_s: float) -> int: ...
    def take(self) -> int: ...
    def close(self) -> None: ...


class LocalWakeup:
    """An in-process signal with a count of the items notified since the last `take`."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._count = 0
        self._signalled = False

    def notify(self, count: int = 1) -> None:
        """Say that `count` items of work were committed (≥ 1 wakes the worker)."""
        with self._cond:
            self._count += max(count, 1)
            self._signalled = True
            self._cond.notify_all()

    def wait(self, timeout_s: float) -> bool:
        """Until notified or `timeout_s`; True when notified (the signal stays until
        `take`)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._signalled, max(timeout_s, 0.0))

    def wait_batch(self, size: int, linger_s: float, timeout_s: float) -> int:
        """Until `size` items were notified, or `linger_s` after the first notification, or
        `timeout_s` with none; returns how many were notified (not taken)."""
        if not self.wait(timeout_s):
            return 0
        deadline = time.monotonic() + linger_s
        with self._cond:
            while self._count < size:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return self._count

    def take(self) -> int:
        """Clear the signal before reading the work; returns the items notified since the
        last `take`."""
        with self._cond:
            count, self._count, self._signalled = self._count, 0, False
            return count

    def close(self) -> None:
        with self._cond:
            self._signalled = True
            self._cond.notify_all()


class PostgresWakeup(LocalWakeup):
    """`LocalWakeup`, plus a thread that LISTENs on `CHANNEL` (other processes' intake)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        url = engine.url.set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._own = process_name()  # this process's writers notify us directly
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()

    def wait(self, timeout_s: float) -> bool:
        self._listening()
        return super().wait(timeout_s)

    def _listening(self) -> None:
        """The listener starts with the first wait: a hub that never waits (a test, the CLI)
        holds no connection for it."""
        with self._starting:
            if self._thread is None or not self._thread.is_alive():
                self._stopping.clear()
                self._thread = threading.Thread(target=self._listen, name="finsync-wakeup",
                                                daemon=True)
                self._thread.start()

    def _listen(self) -> None:
        import psycopg  # the engine's own driver; imported here so SQLite never needs it

        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.notify()  # anything committed while we were not listening
                    while not self._stopping.is_set():
                        for note in conn.notifies(timeout=_LISTEN_TICK_S):
                            if note.payload != self._own:
                                self.notify()
            except Exception as exc:  # the listener lives on; the fallback poll covers
                log.warning("wake-up listener: %s; listening again in %.0f s",
                            type(exc).__name__, _RECONNECT_S)
                self._stopping.wait(_RECONNECT_S)

    def close(self) -> None:
        """Stop listening (a later `wait` listens again)."""
        self._stopping.set()
        super().close()
        with self._starting:
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(_LISTEN_TICK_S * 4)


def wakeup_for(engine: Engine) -> LocalWakeup:
    """The wake-up for the hub's database: LISTEN/NOTIFY on PostgreSQL, in-process only on
    SQLite."""
    if engine.dialect.name == "postgresql":
        return PostgresWakeup(engine)
    return LocalWakeup()
