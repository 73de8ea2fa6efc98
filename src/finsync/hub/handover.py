"""The hand-over of accepted envelopes from acceptance to delivery, in one process.

Rules:
- The processor puts the envelopes it accepted a set at a time, after their transaction
  commits (a rolled-back batch hands nothing over). The first delivery attempt of an event
  takes its envelope from here instead of reading and decoding the stored event again;
  everything else (a retry, a second target, another process, a restart, an event released
  from parking, a replay) reads the event log as before, so a stored event that no longer
  reads is found on its next attempt.
- Stored events never change, so a handed-over envelope is the stored one: the event log
  stores the envelope's own encoding, and decoding that gives the same event back.
- Bounded: past `size_max` the oldest are dropped (they are read from the log instead).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence

from finsync.domain.envelope import Envelope

HANDOVER_MAX = 10_000


class Handover:
    def __init__(self, size_max: int = HANDOVER_MAX) -> None:
        self._items: OrderedDict[str, Envelope] = OrderedDict()
        self._size_max, self._lock = size_max, threading.Lock()

    def put_many(self, envelopes: Iterable[Envelope]) -> None:
        with self._lock:
            for env in envelopes:
                self._items[env.event_id] = env
            while len(self._items) > self._size_max:
                self._items.popitem(last=False)

    def take_many(self, event_ids: Sequence[str]) -> dict[str, Envelope]:
        """The envelopes held for these ids, taken out: only a first attempt uses the
        hand-over; a retry, or an event's delivery to a second target, reads the log."""
        with self._lock:
            return {i: self._items.pop(i) for i in event_ids if i in self._items}
