"""The processor moves raw events to canonical events: map, then accept, batch by batch.

Acceptance is serialised across processes by database locks held for the batch: the
sequencer must see every earlier version of an aggregate before it decides to park or
apply the next one. The in-process hub's batches take the whole acceptance lock; a
partitioned worker's take the locks of their aggregates only (`hub.acceptance.LOCK`), so
the workers of other partitions accept at the same time.

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
from sqlalchemy.exc import IntegrityError, OperationalError

from finsync.domain.envelope import Envelope
from finsync.domain.errors import DomainError, ExceptionClass, MappingError
from finsync.domain.partition import partition_hash
from finsync.domain.status import RawStatus
from finsync.hub.acceptance import LOCK, LOCK_BUCKETS, Acceptance, Outcome, lock_bucket
from finsync.hub.batch_acceptance import BatchAcceptance
from finsync.hub.handover import Handover
from finsync.hub.intake import Mapped, reject_in
from finsync.hub.mapping import MapperRegistry
from finsync.hub.pipeline import describe, trace
from finsync.hub.read_ahead import ReadAhead
from finsync.storage import exception_log, raw_log, tracking
from finsync.storage.db import (
    StorageError,
    StorageUnavailableError,
    conflicted,
    serialize,
    serialize_each,
    transaction,
)
from finsync.storage.exception_log import NewException
from finsync.storage.raw_log import RawEvent
from finsync.storage.text import storable

log = logging.getLogger(__name__)

_REJECTED = Outcome.REJECTED.value
_ACCEPTED = Outcome.ACCEPTED.value
# A raw event stored and mapped elsewhere: its id and its envelopes (None: unreadable).
Stored = tuple[int, Sequence[Envelope] | None]
STORED_TRACKING = "hub.accept_stored"  # consumer_tracking.consumer of `accept_stored`
RACES_MAX = 5  # times a batch of `accept_stored` is done again after losing to another


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
            # Nothing waiting: the whole lock is not taken. A worker of the cluster polls
            # this (its duties), and each take would pause every partition's acceptance.
            if not raw_log.any_pending(conn):
                return Counter()
            serialize(conn, LOCK)
            now = self._clock()
            pending = {raw.id: raw for raw in raw_log.pending(conn, size)}
            mapped = [(raw_id, self._map(raw)) for raw_id, raw in pending.items()]
            outcomes, accepted = self._decide(conn, mapped, now, pending.__getitem__)
        if self._handover is not None:  # committed
            self._handover.put_many(accepted)
        return outcomes

    def _decide(self, conn: Connection, mapped: Sequence[tuple[int, list[Envelope] | None]],
                now: datetime, raw_of: Callable[[int], RawEvent], *,
                racing: bool = False) -> tuple[Counter[str], list[Envelope]]:
        """Plain raw events a set at a time (`BatchAcceptance`); each other one alone, in
        its savepoint, after what came before it is written (`raw_of` reads it, body and
        all, when it needs more than its id). Returns the outcomes and the envelopes
        accepted as plain (for the hand-over, once committed). `racing`: other
        transactions accept at the same time, so a unique key one of them committed first
        fails the whole transaction (done again), never the raw event alone."""
        outcomes: Counter[str] = Counter()
        plain = BatchAcceptance(self._acceptance, conn, now)
        plain.look_up([e for _, envelopes in mapped for e in envelopes or ()])
        for raw_id, envelopes in mapped:
            outcomes["raw"] += 1
            if envelopes is not None and plain.take(raw_id, envelopes):
                outcomes[_ACCEPTED] += len(envelopes)
                continue
            plain.flush()
            outcomes.update(self._process_one(conn, raw_id, raw_of, now, envelopes,
                                              racing=racing))
            plain.decided_alone(envelopes)
        plain.flush()
        return outcomes, plain.accepted

    def accept_stored(self, items: Sequence[Stored]) -> Counter[str]:
        """Accept raw events stored and mapped elsewhere (a partitioned worker's batch,
        `streaming.worker`), exactly as `process_batch` accepts its own: one transaction,
        the same quarantine of a bad item alone. The transaction holds the acceptance
        lock shared and the bucket locks of its aggregates (`hub.acceptance.LOCK`), so
        batches of other partitions are accepted at the same time; one that loses a race
        for a unique key (the same source event id or business key in another aggregate)
        is done again (up to `RACES_MAX` times) and then sees the winner's event.

        Each item is `(raw id, its envelopes)`, the envelopes None when they could not be
        read (mapped again here from the stored body; the bodies of the others are not
        read). Each raw event decided here is tracked (`STORED_TRACKING`, key `raw:<id>`)
        in the same transaction: one decided before (a message delivered again) is
        `skipped`, so doing a batch again changes nothing; an id the database does not
        hold is `missing`. Returns the outcomes counted (`raw`: raw events decided now)."""
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
        """`_stored_once`, done again while it loses to a concurrent transaction."""
        attempt = 1
        while True:
            try:
                return self._stored_once(items)
            except StorageError as exc:
                if attempt >= RACES_MAX or not conflicted(exc):
                    raise
                log.info("a batch of %d stored raw events lost to a concurrent one (%s); "
                         "doing it again", len(items), describe(exc))
            attempt += 1

    def _stored_once(self, items: Sequence[Stored]) -> Counter[str]:
        with transaction(self._engine) as conn:
            bodies = raw_log.get_many(conn, [raw_id for raw_id, envs in items if envs is None])
            known = raw_log.existing(conn, [raw_id for raw_id, envs in items
                                            if envs is not None])
            mapped = [(raw_id, list(envs) if envs is not None else self._map(bodies[raw_id]))
                      for raw_id, envs in items if raw_id in known or raw_id in bodies]
            serialize(conn, LOCK, shared=True)
            serialize_each(conn, LOCK, _buckets(mapped))
            now = self._clock()
            done = tracking.tracked(conn, STORED_TRACKING, [_key(i) for i, _ in mapped])
            fresh = [(raw_id, envs) for raw_id, envs in mapped if _key(raw_id) not in done]
            outcomes, accepted = self._decide(
                conn, fresh, now, lambda raw_id: bodies.get(raw_id) or _raw(conn, raw_id),
                racing=True)
            tracking.track_many(conn, STORED_TRACKING, [
                (_key(raw_id), [e.event_id for e in envs or ()], None)
                for raw_id, envs in fresh], now)
        if self._handover is not None:  # committed
            self._handover.put_many(accepted)
        outcomes["skipped"] = len(done)
        outcomes["missing"] = len(items) - len(mapped)
        return +outcomes

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

    def _process_one(self, conn: Connection, raw_id: int, raw_of: Callable[[int], RawEvent],
                     now: datetime, envelopes: list[Envelope] | None, *,
                     racing: bool) -> list[str]:
        try:
            with conn.begin_nested():
                return self._accept(conn, raw_id, raw_of, now, envelopes)
        except OperationalError:
            raise  # the database, not this event: the batch is done again later
        except DomainError as exc:
            self._reject(conn, raw_of(raw_id), exc, now)
        except IntegrityError as exc:
            if racing and conflicted(exc):
                raise  # another transaction's key, committed meanwhile: done again
            self._quarantine(conn, raw_of(raw_id), exc, now)
        except Exception as exc:
            self._quarantine(conn, raw_of(raw_id), exc, now)
        return [_REJECTED]

    def _accept(self, conn: Connection, raw_id: int, raw_of: Callable[[int], RawEvent],
                now: datetime, envelopes: list[Envelope] | None) -> list[str]:
        if envelopes is None:
            envelopes = self._mapped.take(raw_id)
        if envelopes is None:
            envelopes = self._mappers.map(raw_of(raw_id))
        results = [self._acceptance.accept(conn, env, raw_id, now) for env in envelopes]
        raw_log.mark(conn, raw_id, RawStatus.MAPPED, now)
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


def _raw(conn: Connection, raw_id: int) -> RawEvent:
    """A raw event known to be stored (its id was read in this transaction)."""
    raw = raw_log.get(conn, raw_id)
    assert raw is not None, f"raw event #{raw_id} was read in this transaction"
    return raw


def _buckets(mapped: Sequence[tuple[int, Sequence[Envelope] | None]]) -> set[int]:
    """The bucket locks a batch takes: its aggregates', and for a raw event that did not
    map (whose aggregates are not known) one of its own, so that two workers handed the
    same one decide it one after the other."""
    buckets: set[int] = set()
    for raw_id, envelopes in mapped:
        if not envelopes:
            buckets.add(partition_hash(_key(raw_id)) % LOCK_BUCKETS)
        buckets.update(lock_bucket(env.aggregate) for env in envelopes or ())
    return buckets


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
