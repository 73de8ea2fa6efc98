"""Intake: commit the raw payload first, then say whether it can be mapped.

Rules:
- Nothing is lost: the raw event is stored before anything can fail; a payload that cannot
  be mapped is kept, marked rejected and becomes a `mapping_error` exception.
- A payload is mapped once: what intake mapped to answer the sender is handed to the
  processor (`Mapped`), which maps only what it does not find there (a restart, another
  process). The hand-over is bounded; what falls out is mapped again, never lost.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from sqlalchemy import Connection, Engine

from finsync.domain.envelope import Envelope
from finsync.domain.errors import ExceptionClass, MappingError
from finsync.domain.status import RawStatus
from finsync.hub.mapping import MapperRegistry
from finsync.storage import exception_log, raw_log
from finsync.storage.db import transaction
from finsync.storage.raw_log import RawEvent, RawIn

MAPPED_MAX = 10_000


class Mapped:
    """Envelopes intake mapped, by raw event id, until the processor takes them."""

    def __init__(self, size_max: int = MAPPED_MAX) -> None:
        self._items: OrderedDict[int, list[Envelope]] = OrderedDict()
        self._size_max, self._lock = size_max, threading.Lock()

    def put(self, raw_id: int, envelopes: list[Envelope]) -> None:
        with self._lock:
            self._items[raw_id] = envelopes
            while len(self._items) > self._size_max:
                self._items.popitem(last=False)

    def take(self, raw_id: int) -> list[Envelope] | None:
        with self._lock:
            return self._items.pop(raw_id, None)


class Intake:
    def __init__(self, engine: Engine, mappers: MapperRegistry,
                 clock: Callable[[], datetime], mapped: Mapped | None = None) -> None:
        self._engine, self._mappers, self._clock = engine, mappers, clock
        self.mapped = mapped or Mapped()

    def store(self, items: Sequence[RawIn]) -> int:
        """Durably store raw events in one transaction; returns only after commit."""
        with transaction(self._engine) as conn:
            return raw_log.append(conn, items, self._clock())

    def receive(self, source: str, body: bytes, headers: Mapping[str, str],
                content_type: str | None = None) -> int:
        """Store one raw event, then check it maps; raises `MappingError` (still stored)."""
        at = self._clock()
        with transaction(self._engine) as conn:
            raw_id = raw_log.append_one(conn, RawIn(source, body, headers, content_type), at)
        raw = RawEvent(raw_id, source, at, headers, body, RawStatus.RECEIVED)
        try:
            self.mapped.put(raw_id, self._mappers.map(raw))
        except MappingError as exc:
            self.reject(raw, exc)
            raise
        return raw_id

    def reject(self, raw: RawEvent, error: MappingError) -> None:
        with transaction(self._engine) as conn:
            reject_in(conn, raw, error, self._clock())


def reject_in(conn: Connection, raw: RawEvent, error: MappingError, at: datetime) -> None:
    """Mark a raw event rejected and open its `mapping_error`, in the caller's transaction."""
    raw_log.mark(conn, raw.id, RawStatus.REJECTED, at, error.code, str(error))
    exception_log.open_exception(conn, exception_log.NewException(
        ExceptionClass.MAPPING_ERROR, f"mapping:raw:{raw.id}",
        f"{raw.source} event #{raw.id} could not be mapped: {error}",
        objects=(f"raw_event:{raw.id}",), raw_event_id=raw.id, detail=error.code), at)
