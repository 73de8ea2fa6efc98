"""Intake: commit the raw payload first, then say whether it can be mapped.

Nothing is lost: the raw event is stored before anything can fail; a payload that cannot be
mapped is kept, marked rejected and becomes a `mapping_error` exception.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from sqlalchemy import Connection, Engine

from finsync.domain.errors import ExceptionClass, MappingError
from finsync.hub.mapping import MapperRegistry
from finsync.storage import exception_log, raw_log
from finsync.storage.db import transaction
from finsync.storage.raw_log import RawEvent, RawIn


class Intake:
    def __init__(self, engine: Engine, mappers: MapperRegistry,
                 clock: Callable[[], datetime]) -> None:
        self._engine, self._mappers, self._clock = engine, mappers, clock

    def store(self, items: Sequence[RawIn]) -> int:
        """Durably store raw events in one transaction; returns only after commit."""
        with transaction(self._engine) as conn:
            return raw_log.append(conn, items, self._clock())

    def receive(self, source: str, body: bytes, headers: Mapping[str, str],
                content_type: str | None = None) -> int:
        """Store one raw event, then check it maps; raises `MappingError` (still stored)."""
        with transaction(self._engine) as conn:
            raw_id = raw_log.append_one(conn, RawIn(source, body, headers, content_type),
                                        self._clock())
        raw = RawEvent(raw_id, source, self._clock(), headers, body, "received")
        try:
            self._mappers.map(raw)
        except MappingError as exc:
            self.reject(raw, exc)
            raise
        return raw_id

    def reject(self, raw: RawEvent, error: MappingError) -> None:
        with transaction(self._engine) as conn:
            reject_in(conn, raw, error, self._clock())


def reject_in(conn: Connection, raw: RawEvent, error: MappingError, at: datetime) -> None:
    """Mark a raw event rejected and open its `mapping_error`, in the caller's transaction."""
    raw_log.mark(conn, raw.id, "rejected", at, error.code, str(error))
    exception_log.open_exception(conn, exception_log.NewException(
        ExceptionClass.MAPPING_ERROR, f"mapping:raw:{raw.id}",
        f"{raw.source} event #{raw.id} could not be mapped: {error}",
        objects=(f"raw_event:{raw.id}",), raw_event_id=raw.id, detail=error.code), at)
