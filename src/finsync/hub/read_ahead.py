"""Mapping the next batch of raw events while the hub delivers the last one.

Rules:
- After a full batch (more raw events are likely waiting), the processor starts mapping the
  next batch's raw events in a thread of its own while its own thread goes on (a delivery
  round, mostly waiting for the database). What it maps goes to the hand-over of mapped
  payloads (`intake.Mapped`), where the next batch takes it instead of mapping it again.
- It only reads: a raw event never changes and a mapper is pure, so an envelope mapped
  ahead is the one the batch would map itself. A raw event that does not map, or anything
  that fails here, is left out: the batch maps it again and rejects or quarantines it as
  before. Raw events intake has mapped already are not mapped again.
- One read-ahead at a time, and the next batch waits for it before it starts: a raw event
  is never mapped by both at once, and no read-ahead outlives the batch after it (the last
  batch of `run_until_idle` is never full, so none is left running when it returns).
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine

from finsync.hub.intake import Mapped
from finsync.hub.mapping import MapperRegistry
from finsync.hub.pipeline import describe
from finsync.storage import raw_log
from finsync.storage.db import reading

log = logging.getLogger(__name__)


class ReadAhead:
    def __init__(self, engine: Engine, mappers: MapperRegistry, mapped: Mapped) -> None:
        self._engine, self._mappers, self._mapped = engine, mappers, mapped
        self._thread: threading.Thread | None = None

    def start(self, count: int) -> None:
        """Map the next `count` raw events waiting, in a thread (after the one before)."""
        self.wait()
        self._thread = threading.Thread(target=self._run, args=(count,), daemon=True,
                                        name="finsync-read-ahead")
        self._thread.start()

    def wait(self) -> None:
        """Return once no read-ahead runs."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self, count: int) -> None:
        try:
            with reading(self._engine) as conn:
                waiting = raw_log.pending(conn, count)
        except Exception as exc:  # the batch reads them itself
            log.debug("read-ahead of raw events failed: %s", describe(exc))
            return
        for raw in waiting:
            if self._mapped.holds(raw.id):
                continue
            try:
                envelopes = self._mappers.map(raw)
            except Exception:  # the batch maps it again, and says why
                continue
            self._mapped.put(raw.id, envelopes)
