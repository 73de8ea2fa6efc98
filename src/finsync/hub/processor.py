"""The processor moves raw events to canonical events: map, then accept, batch by batch.

Acceptance is serialised across processes (a database lock held for the batch): the
sequencer must see every earlier version of an aggregate before it decides to park or
apply the next one. Delivery, the slow part, scales out across workers.

Rules:
- One transaction per batch. Plain raw events (new events, in version order, from their
  owner) are written a set at a time (`hub.batch_acceptance`); every other raw event has a
  savepoint of its own, so one bad event is rejected (and kept, with its exception) without
  holding back the others.
- Bad input (a `DomainError`) is a `mapping_error`. Anything else raised while mapping or
  accepting one raw event (a recursion too deep, an overflow, a value the database refuses,
  a broken constraint) is a defect: that raw event alone is quarantined as `internal_error`,
  with a short summary and the traceback in the detail, and the batch goes on.
- The database itself failing (`OperationalError`: connection lost, lock timeout) is not the
  event's fault: the batch fails and is done again later, nothing is rejected for it.
- If the batch's own transaction fails (its commit, or a quarantine that could not be
  written), the batch is done again one raw event per transaction; a raw event whose own
  transaction fails is quarantined in another, with that failure.
- Raw events stored and mapped by another process (`accept_stored`: the archiver of the
  NATS transport published their envelopes, a partitioned worker hands them over) go the
  same way, each with a tracking row (`storage.tracking`) written in the same transaction:
  a batch delivered again decides nothing twice.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

from finsync.domain.envelope import Envelope
from finsync.domain.errors import DomainError, ExceptionClass, MappingError
from finsync.domain.status import RawStatus
from finsync.hub.acceptance import LOCK, Acceptance, Outcome
from finsync.hub.batch_acceptance import BatchAcceptance
from finsync.hub.handover import Handover
from finsync.hub.intake import Mapped, reject_in
from finsync.hub.mapping import MapperRegistry
from finsync.hub.pipeline import describe, trace
from finsync.hub.read_ahead import ReadAhead
from finsync.storage import exception_log, raw_log, tracking
from finsync.storage.db import StorageUnavailableError, serialize, transaction
from finsync.storage.exception_log import NewException
from finsync.storage.raw_log import RawEvent
from finsync.storage.text import storable

log = logging.getLogger(__name__)

_REJECTED = Outcome.REJECTED.value
_ACCEPTED = Outcome.ACCEPTED.value
# A raw event stored and mapped elsewhere: its id and its envelopes (None: unreadable).
Stored = tuple[int, Sequence[Envelope] | None]
STORED_TRACKING = "hub.accept_stored"  # consumer_tracking.consumer of `accept_stored`


def _key(raw_id: int) -> str:
    return f"raw:{raw_id}"


class Processor:
    def __init__(self, engine: Engine, mappers: MapperRegistry, acceptance: Acceptance,
                 clock: Callable[[], datetime], batch_size: int = 500,
                 mapped: Mapped | None = None, handover: Handover | None = None) -> None:
        self._engine, self._mappers, self._acceptance = engine, mappers, acceptance
        self._clock, self._batch_size = clock, batch_size
        self._mapped = mapped or Mapped()
        self._handover = handover  # accepted envelopes, for delivery (`hub.handover`)
        self._read_ahead = ReadAhead(engine, mappers, self._mapped)

    def process_batch(self) -> Counter[str]:
        """Process up to one batch of stored raw events; returns outcomes counted. After a
        full batch, the next one is mapped ahead (`hub.read_ahead`) while the caller goes
        on."""
        self._read_ahead.wait()
        outcomes = self._process(self._batch_size)
        if outcomes["raw"] >= self._batch_size:
            self._read_ahead.start(self._batch_size)
        return outcomes

    def _process(self, size: int) -> Counter[str]:
        try:
            return self._batch(size)
        except StorageUnavailableError:
            raise
        except Exception as exc:
            log.warning("a batch of raw events failed as a whole (%s); processing it one "
                        "raw event at a time", describe(exc))
        return self._one_by_one(size)

    def _batch(self, size: int) -> Counter[str]:
        with transaction(self._engine) as conn:
            serialize(conn, LOCK)
            now = self._clock()
            mapped = [(raw, self._map(raw)) for raw in raw_log.pending(conn, size)]
            outcomes, accepted = self._decide(conn, mapped, now)
        if self._handover is not None:  # committed
            self._handover.put_many(accepted)
        return outcomes

    def _decide(self, conn: Connection, mapped: Sequence[tuple[RawEvent, list[Envelope] | None]],
                now: datetime) -> tuple[Counter[str], list[Envelope]]:
        """Plain raw events a set at a time (`BatchAcceptance`); each other one alone, in
        its savepoint, after what came before it is written. Returns the outcomes and the
        envelopes accepted as plain (for the hand-over, once committed)."""
        outcomes: Counter[str] = Counter()
        plain = BatchAcceptance(self._acceptance, conn, now)
        plain.look_up([e for _, envelopes in mapped for e in envelopes or ()])
        for raw, envelopes in mapped:
            outcomes["raw"] += 1
            if envelopes is not None and plain.take(raw.id, envelopes):
                outcomes[_ACCEPTED] += len(envelopes)
                continue
            plain.flush()
            outcomes.update(self._process_one(conn, raw, now, envelopes))
            plain.decided_alone(envelopes)
        plain.flush()
        return outcomes, plain.accepted

    def accept_stored(self, items: Sequence[Stored]) -> Counter[str]:
        """Accept raw events stored and mapped elsewhere (a partitioned worker's batch,
        `streaming.worker`), exactly as `process_batch` accepts its own: one transaction
        under the acceptance lock, the same quarantine of a bad item alone.

        Each item is `(raw id, its envelopes)`, the envelopes None when they could not be
        read (mapped again here from the stored body). Each raw event decided here is
        tracked (`STORED_TRACKING`, key `raw:<id>`) in the same transaction: one decided
        before (a message delivered again) is `skipped`, so doing a batch again changes
        nothing; an id the database does not hold is `missing`. Returns the outcomes
        counted (`raw`: raw events decided now)."""
        firsts: dict[int, Sequence[Envelope] | None] = {}
        for raw_id, envelopes in items:  # one item per raw id: the first
            firsts.setdefault(raw_id, envelopes)
        chosen = list(firsts.items())
        try:
            return self._stored(chosen)
        except (StorageUnavailableError, OperationalError):
            raise  # the database, not the items: the caller does the batch again later
        except Exception as exc:
            log.warning("a batch of %d stored raw events failed as a whole (%s); accepting "
                        "them one at a time", len(chosen), describe(exc))
        outcomes: Counter[str] = Counter()
        for item in chosen:
            try:
                outcomes.update(self._stored([item]))
            except (StorageUnavailableError, OperationalError):
                raise
            except Exception as exc:
                outcomes.update(self._quarantine_stored(item[0], exc))
        return outcomes

    def _stored(self, items: Sequence[Stored]) -> Counter[str]:
        with transaction(self._engine) as conn:
            serialize(conn, LOCK)
            now = self._clock()
            done = tracking.tracked(conn, STORED_TRACKING, [_key(i) for i, _ in items])
            fresh = [(raw_id, envs) for raw_id, envs in items if _key(raw_id) not in done]
            found = raw_log.get_many(conn, [raw_id for raw_id, _ in fresh])
            mapped = [(found[raw_id], self._read(found[raw_id], envs))
                      for raw_id, envs in fresh if raw_id in found]
            outcomes, accepted = self._decide(conn, mapped, now)
            tracking.track_many(conn, STORED_TRACKING, [
                (_key(raw.id), [e.event_id for e in envs or ()], None)
                for raw, envs in mapped], now)
        if self._handover is not None:  # committed
            self._handover.put_many(accepted)
        outcomes["skipped"] = len(items) - len(fresh)
        outcomes["missing"] = len(fresh) - len(mapped)
        return +outcomes

    def _read(self, raw: RawEvent, envelopes: Sequence[Envelope] | None) -> list[Envelope] | None:
        return list(envelopes) if envelopes is not None else self._map(raw)

    def _quarantine_stored(self, raw_id: int, exc: Exception) -> Counter[str]:
        """A stored raw event failed in a transaction of its own: quarantine it, with that
        failure, in another (unless it was decided meanwhile)."""
        with transaction(self._engine) as conn:
            serialize(conn, LOCK)
            raw = raw_log.get(conn, raw_id)
            if raw is None:
                return Counter(missing=1)
            if tracking.tracked(conn, STORED_TRACKING, [_key(raw_id)]):
                return Counter(skipped=1)
            now = self._clock()
            self._quarantine(conn, raw, exc, now)
            tracking.track_many(conn, STORED_TRACKING, [(_key(raw_id), [], None)], now)
        return Counter({_REJECTED: 1, "raw": 1})

    def _map(self, raw: RawEvent) -> list[Envelope] | None:
        """The raw event's envelopes (as intake mapped them, else mapped now); None when it
        does not map: `_process_one` maps it again, and rejects or quarantines it."""
        envelopes = self._mapped.take(raw.id)
        if envelopes is not None:
            return envelopes
        try:
            return self._mappers.map(raw)
        except Exception:
            return None

    def _one_by_one(self, count: int) -> Counter[str]:
        outcomes: Counter[str] = Counter()
        for _ in range(count):
            try:
                done = self._batch(1)
            except StorageUnavailableError:
                raise
            except Exception as exc:
                done = self._quarantine_next(exc)
            if not done:
                break
            outcomes.update(done)
        return outcomes

    def _quarantine_next(self, exc: Exception) -> Counter[str]:
        """The next raw event failed in a transaction of its own: quarantine it, with that
        failure, in another."""
        with transaction(self._engine) as conn:
            serialize(conn, LOCK)
            pending = raw_log.pending(conn, 1)
            if not pending:
                return Counter()
            self._quarantine(conn, pending[0], exc, self._clock())
        return Counter({_REJECTED: 1, "raw": 1})

    def _process_one(self, conn: Connection, raw: RawEvent, now: datetime,
                     envelopes: list[Envelope] | None = None) -> list[str]:
        try:
            with conn.begin_nested():
                return self._accept(conn, raw, now, envelopes)
        except OperationalError:
            raise  # the database, not this event: the batch is done again later
        except DomainError as exc:
            self._reject(conn, raw, exc, now)
        except Exception as exc:
            self._quarantine(conn, raw, exc, now)
        return [_REJECTED]

    def _accept(self, conn: Connection, raw: RawEvent, now: datetime,
                envelopes: list[Envelope] | None = None) -> list[str]:
        if envelopes is None:
            envelopes = self._mapped.take(raw.id)
        if envelopes is None:
            envelopes = self._mappers.map(raw)
        results = [self._acceptance.accept(conn, env, raw.id, now) for env in envelopes]
        raw_log.mark(conn, raw.id, RawStatus.MAPPED, now)
        return [r.value for r in results]

    def _reject(self, conn: Connection, raw: RawEvent, exc: DomainError,
                now: datetime) -> None:
        reject_mapping(conn, raw, exc, now)

    def _quarantine(self, conn: Connection, raw: RawEvent, exc: Exception,
                    now: datetime) -> None:
        quarantine_in(conn, raw, exc, now)

    def flag_overdue(self) -> int:
        with transaction(self._engine) as conn:
            return self._acceptance.flag_overdue(conn, self._clock())

    def resolve_remapped(self) -> int:
        """Resolve the exceptions of raw events that mapped once sent again."""
        with transaction(self._engine) as conn:
            return exception_log.resolve_remapped(conn, self._clock())


def reject_mapping(conn: Connection, raw: RawEvent, exc: DomainError, now: datetime) -> None:
    """Bad input: a `mapping_error` on the raw event (quarantined if even that cannot be
    written), in the caller's transaction."""
    subject = exc.subject if isinstance(exc, MappingError) else None
    error = MappingError(storable(str(exc)), code=exc.code, subject=subject)
    try:
        with conn.begin_nested():
            reject_in(conn, raw, error, now)
    except OperationalError:
        raise
    except Exception as defect:
        quarantine_in(conn, raw, defect, now)


def quarantine_in(conn: Connection, raw: RawEvent, exc: Exception, now: datetime) -> None:
    """A defect met on one raw event: rejected as `internal_error`, the traceback in the
    exception's detail, in the caller's transaction."""
    brief = describe(exc)
    log.error("raw event #%s quarantined as internal_error: %s", raw.id, brief)
    with conn.begin_nested():
        raw_log.mark(conn, raw.id, RawStatus.REJECTED, now,
                     ExceptionClass.INTERNAL_ERROR.value, brief)
        exception_log.open_exception(conn, NewException(
            ExceptionClass.INTERNAL_ERROR, f"internal:raw:{raw.id}",
            f"{storable(raw.source)} event #{raw.id} could not be processed: {brief}",
            objects=(f"raw_event:{raw.id}",), raw_event_id=raw.id, detail=trace(exc)),
            now)
