"""Keeping a batch's leases while its calls go on.

A batch's outcomes are recorded after its last call, so its leases (its deliveries', and
the concurrency slots its calls hold) must outlast the calls: a delivery whose lease runs
out is a suspect another worker may take and send again, and is buried after
`lease_expiries_max` of them; a slot that runs out lets one more call out than the ERP's
concurrency.

Rules:
- Once a third of `lease_s` has passed since the claim (or the last extension), the leases
  are extended by `lease_s`: checked before each call (`tick`, on the hub's clock), and
  every third of `lease_s` while the calls are out (`during`, a thread of its own: one call
  slower than the lease).
- Extending is best effort: a failure is logged and the calls go on (a lease that runs
  out costs a call made twice, which the target answers once under its key).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from finsync.hub.pipeline import describe

log = logging.getLogger(__name__)


class LeaseKeeper:
    def __init__(self, extend: Callable[[datetime], None], clock: Callable[[], datetime],
                 lease_s: float, since: datetime | None = None) -> None:
        """`extend(until)`: the leases extended to `until`; `since`: when they were taken
        (None: now)."""
        self._extend, self._clock, self._lease_s = extend, clock, lease_s
        self._since = clock() if since is None else since
        self._lock = threading.Lock()

    def tick(self) -> None:
        with self._lock:
            now = self._clock()
            if (now - self._since).total_seconds() <= self._lease_s / 3:
                return
            self._since = now
            try:
                self._extend(now + timedelta(seconds=self._lease_s))
            except Exception as exc:
                log.warning("leases could not be extended (%s); they may run out before "
                            "the calls end", describe(exc))

    @contextmanager
    def during(self) -> Iterator[None]:
        """Ticks every third of the lease while the block runs."""
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(self._lease_s / 3):
                self.tick()

        thread = threading.Thread(target=run, name="lease-keeper", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
