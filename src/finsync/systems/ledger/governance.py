"""ERP-like governance: a call budget per minute and a cap on concurrent calls.

Real ERPs ration their APIs (NetSuite, Intacct, Xero publish hard budgets); the embedded
ledger does the same, so that the hub's posting buffer is tested against a real limit.
Over the limit a call is refused with `LedgerBusyError` carrying when to come back.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from finsync.systems.ledger.errors import LedgerBusyError


class Governor:
    def __init__(self, calls_per_minute: int | None = None, concurrency: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._per_minute, self._clock = calls_per_minute, clock
        self._calls: deque[float] = deque()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(concurrency) if concurrency else None

    def _admit(self) -> None:
        if self._per_minute is None:
            return
        with self._lock:
            now = self._clock()
            while self._calls and self._calls[0] <= now - 60:
                self._calls.popleft()
            if len(self._calls) >= self._per_minute:
                wait = self._calls[0] + 60 - now
                raise LedgerBusyError(f"over {self._per_minute} calls a minute", wait)
            self._calls.append(now)

    @contextmanager
    def call(self) -> Iterator[None]:
        self._admit()
        if self._slots is not None and not self._slots.acquire(blocking=False):
            raise LedgerBusyError("too many concurrent calls", 0.1)
        try:
            yield
        finally:
            if self._slots is not None:
                self._slots.release()
