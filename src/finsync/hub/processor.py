"""The processor moves raw events to canonical events: map, then accept, batch by batch.

Acceptance is serialised across processes (a database lock held for the batch): the
sequencer must see every earlier version of an aggregate before it decides to park or
apply the next one. Delivery, the slow part, scales out across workers.

One transaction per batch; each raw event inside it has a savepoint, so one bad event is
rejected (and kept, with its exception) without holding back the others. A constraint
violation there is a defect, not bad input: the raw event is parked as `internal_error`
instead of jamming every later batch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from finsync.domain.errors import DomainError, ExceptionClass, MappingError
from finsync.domain.status import RawStatus
from finsync.hub.acceptance import Acceptance, Outcome
from finsync.hub.intake import Mapped, reject_in
from finsync.hub.mapping import MapperRegistry
from finsync.storage import exception_log, raw_log
from finsync.storage.db import serialize, transaction
from finsync.storage.exception_log import NewException
from finsync.storage.raw_log import RawEvent


class Processor:
    def __init__(self, engine: Engine, mappers: MapperRegistry, acceptance: Acceptance,
                 clock: Callable[[], datetime], batch_size: int = 500,
                 mapped: Mapped | None = None) -> None:
        self._engine, self._mappers, self._acceptance = engine, mappers, acceptance
        self._clock, self._batch_size = clock, batch_size
        self._mapped = mapped or Mapped()

    def process_batch(self) -> Counter[str]:
        """Process up to one batch of stored raw events; returns outcomes counted."""
        outcomes: Counter[str] = Counter()
        with transaction(self._engine) as conn:
            serialize(conn, "finsync.acceptance")
            now = self._clock()
            for raw in raw_log.pending(conn, self._batch_size):
                outcomes.update(self._process_one(conn, raw, now))
                outcomes["raw"] += 1
        return outcomes

    def _process_one(self, conn: Connection, raw: RawEvent, now: datetime) -> list[str]:
        try:
            envelopes = self._mapped.take(raw.id)
            if envelopes is None:
                envelopes = self._mappers.map(raw)
            with conn.begin_nested():
                results = [self._acceptance.accept(conn, env, raw.id, now) for env in envelopes]
                raw_log.mark(conn, raw.id, RawStatus.MAPPED, now)
            return [r.value for r in results]
        except MappingError as exc:
            reject_in(conn, raw, exc, now)
        except DomainError as exc:
            reject_in(conn, raw, MappingError(str(exc), code=exc.code), now)
        except IntegrityError as exc:
            raw_log.mark(conn, raw.id, RawStatus.REJECTED, now, "internal_error", str(exc.orig))
            exception_log.open_exception(conn, NewException(
                ExceptionClass.INTERNAL_ERROR, f"internal:raw:{raw.id}",
                f"{raw.source} event #{raw.id} broke a storage constraint: {exc.orig}",
                objects=(f"raw_event:{raw.id}",), raw_event_id=raw.id), now)
        return [Outcome.REJECTED.value]

    def flag_overdue(self) -> int:
        with transaction(self._engine) as conn:
            return self._acceptance.flag_overdue(conn, self._clock())
