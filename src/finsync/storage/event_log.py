"""The canonical event log, the per-aggregate version cursors and the duplicate record.

The statements on the acceptance path are built once, with bind parameters: building a
statement with literal values per call costs more than running it (see bench/).

An event is superseded only by finance's choice (a `duplicate_event` resolved with the
received body): the stored event is kept, rejected, and the one that replaces it takes its
business key and its unfinished deliveries (`supersede`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Select, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from finsync.domain import codec
from finsync.domain.aggregate import AggregateRef
from finsync.domain.envelope import Envelope
from finsync.domain.errors import DomainError
from finsync.domain.ids import delivery_key
from finsync.domain.status import DeliveryStatus, EventStatus
from finsync.storage import arrays, jsonutil
from finsync.storage.schema import aggregate_cursors, deliveries, duplicates, events


@dataclass(frozen=True, slots=True)
class UnreadableEvent:
    """A stored event whose payload no longer reads (a shape no upcaster lifts): kept as it
    is, and each of its deliveries fails alone with `error` instead of stopping the rest."""

    event_id: str
    type: str
    correlation_id: str
    aggregate: AggregateRef
    error: str


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """What acceptance compares a repeated event with, without reading its payload."""

    event_id: str
    payload_hash: str
    status: EventStatus
    raw_event_id: int | None


def payload_hash(payload: codec.JsonObject) -> str:
    return jsonutil.digest(payload)


def event_hash(envelope: Envelope) -> str:
    """The hash `insert_event` stores for this envelope's payload."""
    return payload_hash(codec.encode_event(envelope.event))


_INSERT_EVENT = insert(events)
_STORED = (events.c.event_id, events.c.payload_hash, events.c.status, events.c.raw_event_id)
_BY_SOURCE_ID = select(*_STORED).where(
    events.c.source == bindparam("b_source"),
    events.c.source_event_id == bindparam("b_source_event_id"))
_BY_KEY = select(*_STORED).where(events.c.business_key == bindparam("b_key"))
_BY_ID = select(*_STORED).where(events.c.event_id == bindparam("b_event_id"))
_BY_VERSION = select(events.c.event_id, events.c.payload_hash).where(
    events.c.aggregate_type == bindparam("b_type"), events.c.aggregate_id == bindparam("b_id"),
    events.c.aggregate_version == bindparam("b_version"),
    events.c.status != EventStatus.REJECTED)
_INSERT_DUPLICATE = insert(duplicates)
_CURSOR = select(aggregate_cursors.c.applied_version).where(
    aggregate_cursors.c.aggregate_type == bindparam("b_type"),
    aggregate_cursors.c.aggregate_id == bindparam("b_id"))
_MOVE_CURSOR = update(aggregate_cursors).where(
    aggregate_cursors.c.aggregate_type == bindparam("b_type"),
    aggregate_cursors.c.aggregate_id == bindparam("b_id")).values(
    applied_version=bindparam("b_version"))
_INSERT_CURSOR = insert(aggregate_cursors)


def insert_event(conn: Connection, envelope: Envelope, raw_id: int | None,
                 status: EventStatus, at: datetime, *, keep_business_key: bool = True) -> None:
    """Store an event in its current schema version (the payload is its encoding)."""
    conn.execute(_INSERT_EVENT, event_row(envelope, raw_id, status, at,
                                          keep_business_key=keep_business_key))


def insert_events(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Store many `event_row`s with one executemany, in order (positions follow it)."""
    if rows:
        conn.execute(_INSERT_EVENT, list(rows))


def event_row(envelope: Envelope, raw_id: int | None, status: EventStatus, at: datetime, *,
              keep_business_key: bool = True) -> dict[str, Any]:
    """The `events` row of an envelope, in its current schema version."""
    payload = jsonutil.dumps(codec.encode_event(envelope.event))
    return {
        "event_id": envelope.event_id, "type": envelope.type.value,
        "schema_version": envelope.schema_version, "source": envelope.source,
        "source_event_id": envelope.source_event_id,
        "business_key": envelope.business_key if keep_business_key else None,
        "occurred_at": envelope.occurred_at,
        "received_at": envelope.received_at, "correlation_id": envelope.correlation_id,
        "causation_id": envelope.causation_id, "aggregate_type": envelope.aggregate.type,
        "aggregate_id": envelope.aggregate.id, "aggregate_version": envelope.aggregate.version,
        "payload": payload, "payload_hash": jsonutil.text_digest(payload),
        "raw_event_id": raw_id, "status": status, "status_changed_at": at,
    }


def find_by_source_id(conn: Connection, envelope: Envelope) -> StoredEvent | None:
    """The event already stored under this `(source, source_event_id)`."""
    return _stored(conn.execute(_BY_SOURCE_ID, {
        "b_source": envelope.source, "b_source_event_id": envelope.source_event_id}).first())


def find_by_business_key(conn: Connection, envelope: Envelope) -> StoredEvent | None:
    if envelope.business_key is None:
        return None
    return _stored(conn.execute(_BY_KEY, {"b_key": envelope.business_key}).first())


def find(conn: Connection, event_id: str) -> StoredEvent | None:
    return _stored(conn.execute(_BY_ID, {"b_event_id": event_id}).first())


def _stored(row: Any) -> StoredEvent | None:
    if row is None:
        return None
    return StoredEvent(str(row[0]), str(row[1]), EventStatus(row[2]),
                       None if row[3] is None else int(row[3]))


def find_version(conn: Connection, envelope: Envelope) -> tuple[str, str] | None:
    """`(event_id, payload_hash)` of the event already holding this aggregate version."""
    row = conn.execute(_BY_VERSION, {"b_type": envelope.aggregate.type,
                                     "b_id": envelope.aggregate.id,
                                     "b_version": envelope.aggregate.version}).first()
    return None if row is None else (str(row[0]), str(row[1]))


def record_duplicate(conn: Connection, envelope: Envelope, raw_id: int | None,
                     duplicate_of: str, reason: str, at: datetime) -> None:
    conn.execute(_INSERT_DUPLICATE, {
        "raw_event_id": raw_id, "source": envelope.source,
        "source_event_id": envelope.source_event_id, "duplicate_of": duplicate_of,
        "reason": reason, "detected_at": at})


# Set-based look-ups for a batch of envelopes (`hub.batch_acceptance`): one statement each.
AggregateKey = tuple[str, str]  # (aggregate type, aggregate id)


def known_source_ids(conn: Connection,
                     pairs: Collection[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which `(source, source_event_id)` pairs an event is stored under already."""
    if not pairs:
        return set()
    rows = conn.execute(select(events.c.source, events.c.source_event_id).where(
        _grouped(events.c.source, events.c.source_event_id, pairs)))
    return {(str(source), str(sid)) for source, sid in rows} & set(pairs)


def _grouped(outer: ColumnElement[Any], inner: ColumnElement[Any],
             pairs: Collection[tuple[str, str]]) -> ColumnElement[bool]:
    """`(outer, inner) IN pairs`, written as `outer = a AND inner IN (…) OR …` per distinct
    `outer`, so that a two-column index (outer, inner) serves it on both databases."""
    groups: dict[str, set[str]] = {}
    for first, second in pairs:
        groups.setdefault(first, set()).add(second)
    return or_(*(and_(outer == first, inner.in_(sorted(seconds)))
                 for first, seconds in sorted(groups.items())))


def known_business_keys(conn: Connection, keys: Collection[str]) -> set[str]:
    """Which business keys an event holds already."""
    if not keys:
        return set()
    rows = conn.execute(select(events.c.business_key).where(
        events.c.business_key.in_(sorted(keys))))
    return {str(key) for (key,) in rows}


@dataclass(frozen=True, slots=True)
class AggregateState:
    """What sequencing needs of a batch's aggregates: applied versions (cursors), the
    versions a live event holds, and which aggregates have parked events."""

    applied: dict[AggregateKey, int]
    held: set[tuple[AggregateKey, int]]
    parked: set[AggregateKey]


def aggregate_state(conn: Connection, aggregates: Collection[AggregateKey]) -> AggregateState:
    if not aggregates:
        return AggregateState({}, set(), set())
    applied = {(str(t), str(i)): int(v) for t, i, v in conn.execute(
        select(aggregate_cursors.c.aggregate_type, aggregate_cursors.c.aggregate_id,
               aggregate_cursors.c.applied_version)
        .where(_grouped(aggregate_cursors.c.aggregate_type, aggregate_cursors.c.aggregate_id,
                        aggregates)))}
    held: set[tuple[AggregateKey, int]] = set()
    parked: set[AggregateKey] = set()
    for t, i, version, status in conn.execute(
            select(events.c.aggregate_type, events.c.aggregate_id, events.c.aggregate_version,
                   events.c.status)
            .where(_grouped(events.c.aggregate_type, events.c.aggregate_id, aggregates),
                   events.c.aggregate_version.is_not(None),
                   events.c.status != EventStatus.REJECTED)):
        key = (str(t), str(i))
        held.add((key, int(version)))
        if status in (EventStatus.PARKED, EventStatus.OVERDUE):
            parked.add(key)
    return AggregateState(applied, held, parked)


def advance_many(conn: Connection, versions: Mapping[AggregateKey, int],
                 existing: Collection[AggregateKey]) -> None:
    """Move the cursors of `versions`: an executemany UPDATE for those in `existing` (a
    cursor row is there), one executemany INSERT for the others."""
    moves = [{"b_type": t, "b_id": i, "b_version": v} for (t, i), v in versions.items()
             if (t, i) in existing]
    new = [{"aggregate_type": t, "aggregate_id": i, "applied_version": v}
           for (t, i), v in versions.items() if (t, i) not in existing]
    if moves:
        conn.execute(_MOVE_CURSOR, moves)
    if new:
        conn.execute(_INSERT_CURSOR, new)


def duplicate_count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(duplicates)).scalar_one())


def applied_version(conn: Connection, aggregate_type: str, aggregate_id: str) -> int:
    version = conn.execute(_CURSOR, {"b_type": aggregate_type, "b_id": aggregate_id}
                           ).scalar_one_or_none()
    return 0 if version is None else int(version)


def advance(conn: Connection, aggregate_type: str, aggregate_id: str, version: int) -> None:
    key = {"b_type": aggregate_type, "b_id": aggregate_id, "b_version": version}
    if conn.execute(_MOVE_CURSOR, key).rowcount:
        return
    conn.execute(_INSERT_CURSOR, {"aggregate_type": aggregate_type,
                                  "aggregate_id": aggregate_id, "applied_version": version})


def latest_accepted(conn: Connection, aggregate_type: str, aggregate_id: str,
                    source: str) -> Envelope | None:
    """The accepted event of highest version that `source` sent for an aggregate (served
    by the aggregate index)."""
    row = conn.execute(select(events).where(
        events.c.aggregate_type == aggregate_type, events.c.aggregate_id == aggregate_id,
        events.c.source == source, events.c.status == EventStatus.ACCEPTED)
        .order_by(events.c.aggregate_version.desc().nulls_last(), events.c.position.desc())
        .limit(1)).mappings().first()
    return None if row is None else row_to_envelope(row)


def parked_next(conn: Connection, aggregate_type: str, aggregate_id: str,
                version: int) -> Envelope | None:
    row = conn.execute(select(events).where(
        events.c.aggregate_type == aggregate_type, events.c.aggregate_id == aggregate_id,
        events.c.aggregate_version == version,
        events.c.status.in_((EventStatus.PARKED, EventStatus.OVERDUE)))).mappings().first()
    return None if row is None else row_to_envelope(row)


def parked_before(conn: Connection, cutoff: datetime) -> list[Envelope]:
    rows = conn.execute(select(events).where(
        events.c.status == EventStatus.PARKED, events.c.status_changed_at < cutoff)
        .order_by(events.c.position)).mappings()
    return [row_to_envelope(r) for r in rows]


def set_status(conn: Connection, event_id: str, status: EventStatus, at: datetime) -> None:
    conn.execute(update(events).where(events.c.event_id == event_id)
                 .values(status=status, status_changed_at=at))


_HANDED_OVER = (DeliveryStatus.PENDING, DeliveryStatus.FAILED, DeliveryStatus.DEAD)


def supersede(conn: Connection, stored: Envelope, replacement: Envelope,
              status: EventStatus, at: datetime) -> list[str] | None:
    """`replacement` (a kept, rejected event) takes `stored`'s place: `stored` becomes
    rejected and gives up its business key; `replacement` takes that key and `status`; each
    delivery of `stored` is handed over, under the replacement's delivery key, due now with
    fresh attempts, keeping its place in its partition's order.

    Only while no delivery of `stored` is done or in flight: the deliveries are locked first,
    and if one was taken or settled meanwhile nothing is written and None comes back.
    Returns the delivery keys handed over (exceptions opened under them are `stored`'s)."""
    rows = conn.execute(select(deliveries.c.id, deliveries.c.target, deliveries.c.delivery_key,
                               deliveries.c.status)
                        .where(deliveries.c.event_id == stored.event_id)
                        .order_by(deliveries.c.id).with_for_update()).all()
    if any(DeliveryStatus(r.status) not in _HANDED_OVER for r in rows):
        return None
    conn.execute(update(events).where(events.c.event_id == stored.event_id).values(
        status=EventStatus.REJECTED, business_key=None, status_changed_at=at))
    conn.execute(update(events).where(events.c.event_id == replacement.event_id).values(
        status=status, business_key=stored.business_key, status_changed_at=at))
    for row in rows:
        conn.execute(update(deliveries).where(deliveries.c.id == row.id).values(
            event_id=replacement.event_id,
            delivery_key=delivery_key(replacement.event_id, row.target),
            correlation_id=replacement.correlation_id, status=DeliveryStatus.PENDING,
            attempts=0, lease_expiries=0, next_attempt_at=at, lease_owner=None,
            lease_expires_at=None, last_error=None, result=None, override=None,
            completed_at=None))
    return [str(row.delivery_key) for row in rows]


def row_to_envelope(row: Any) -> Envelope:
    """A stored event, typed: its payload upcast from the version it was stored in."""
    event = codec.decode_event(row["type"], row["schema_version"],
                               jsonutil.loads(row["payload"]))
    return Envelope(event, row["source"], row["source_event_id"], row["occurred_at"],
                    row["received_at"], row["correlation_id"], _aggregate(row),
                    row["causation_id"], row["business_key"], row["event_id"])


def get(conn: Connection, event_id: str) -> Envelope | None:
    row = conn.execute(select(events).where(events.c.event_id == event_id)).mappings().first()
    return None if row is None else row_to_envelope(row)


def get_many(conn: Connection,
             event_ids: Sequence[str]) -> dict[str, Envelope | UnreadableEvent]:
    """The stored events, each typed, or unreadable on its own."""
    rows = conn.execute(select(*_ENVELOPE_COLUMNS).where(
        arrays.one_of(conn, events.c.event_id, event_ids))).mappings()
    return {str(r["event_id"]): _read_row(r) for r in rows}


# What `row_to_envelope` reads of a stored event (not its status, hash nor raw event).
_ENVELOPE_COLUMNS = tuple(events.c[name] for name in (
    "event_id", "type", "schema_version", "payload", "source", "source_event_id",
    "occurred_at", "received_at", "correlation_id", "causation_id", "business_key",
    "aggregate_type", "aggregate_id", "aggregate_version"))


def _read_row(row: Any) -> Envelope | UnreadableEvent:
    try:
        return row_to_envelope(row)
    except DomainError as exc:
        return UnreadableEvent(row["event_id"], row["type"], row["correlation_id"],
                               _aggregate(row), f"{exc.code}: {exc}")


def _aggregate(row: Any) -> AggregateRef:
    return AggregateRef(row["aggregate_type"], row["aggregate_id"], row["aggregate_version"])


@dataclass(frozen=True, slots=True)
class Routed:
    """What a replay re-drives of a stored event: where it sits in the log and how it is
    routed, without its payload."""

    position: int
    event_id: str
    type: str
    correlation_id: str
    aggregate: AggregateRef


_Query = TypeVar("_Query", bound=Select[*tuple[Any, ...]])


@dataclass(frozen=True, slots=True)
class Selection:
    """Accepted events, narrowed by correlation, aggregate `(type, id)`, occurrence
    `[since, until)` and event type."""

    correlation_id: str | None = None
    aggregate: tuple[str, str] | None = None
    since: datetime | None = None
    until: datetime | None = None
    event_type: str | None = None

    def narrow(self, query: _Query) -> _Query:
        query = query.where(events.c.status == EventStatus.ACCEPTED)
        if self.event_type is not None:
            query = query.where(events.c.type == self.event_type)
        if self.correlation_id is not None:
            query = query.where(events.c.correlation_id == self.correlation_id)
        if self.aggregate is not None:
            query = query.where(events.c.aggregate_type == self.aggregate[0],
                                events.c.aggregate_id == self.aggregate[1])
        if self.since is not None:
            query = query.where(events.c.occurred_at >= self.since)
        if self.until is not None:
            query = query.where(events.c.occurred_at < self.until)
        return query


def extent(conn: Connection, selection: Selection) -> tuple[int, int, int]:
    """(how many events the selection holds, the first and the last log position among
    them; 0, 0, 0 if none)."""
    count, first, last = conn.execute(selection.narrow(
        select(func.count(), func.min(events.c.position), func.max(events.c.position)))).one()
    return int(count), int(first or 0), int(last or 0)


def routed_page(conn: Connection, selection: Selection, after: int,
                upto: int) -> list[Routed]:
    """The selected events at log positions `(after, upto]`, in log order.

    A page is a range of positions, not `> after … LIMIT n`: the range is an index range
    scan on the primary key whatever the planner believes about the table (PostgreSQL with
    stale statistics turned the LIMIT form into a scan and sort of the rest of the log for
    every page), so each page costs the same wherever it starts."""
    rows = conn.execute(selection.narrow(
        select(events.c.position, events.c.event_id, events.c.type, events.c.correlation_id,
               events.c.aggregate_type, events.c.aggregate_id, events.c.aggregate_version))
        .where(events.c.position > after, events.c.position <= upto)
        .order_by(events.c.position)).mappings()
    return [Routed(int(r["position"]), str(r["event_id"]), str(r["type"]),
                   str(r["correlation_id"]), _aggregate(r)) for r in rows]


def select_ids(conn: Connection, *, correlation_id: str | None = None,
               aggregate: tuple[str, str] | None = None, since: datetime | None = None,
               until: datetime | None = None) -> Sequence[str]:
    query = Selection(correlation_id, aggregate, since, until).narrow(select(events.c.event_id))
    return [str(r[0]) for r in conn.execute(query.order_by(events.c.position))]


def aggregate_ids(conn: Connection, aggregate_type: str, after: str | None,
                  limit: int) -> list[str]:
    """The ids of the aggregates of a type the log holds an event of (any status), in id
    order after `after`: a page of at most `limit` (the aggregate index's range)."""
    query = select(events.c.aggregate_id).where(events.c.aggregate_type == aggregate_type)
    if after is not None:
        query = query.where(events.c.aggregate_id > after)
    rows = conn.execute(query.distinct().order_by(events.c.aggregate_id).limit(limit))
    return [str(r[0]) for r in rows]


def counts(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(events.c.status, func.count()).group_by(events.c.status))
    return {str(status): int(n) for status, n in rows}


CHAIN_MAX = 200  # events of one correlation id shown with an exception


def chain(conn: Connection, correlation_id: str,
          limit: int = CHAIN_MAX) -> list[dict[str, Any]]:
    """The events of one correlation id in the order they were stored (at most `limit`),
    without their payloads: what caused what (`causation_id`) and where each stands."""
    c = events.c
    rows = conn.execute(select(
        c.event_id, c.type, c.source, c.source_event_id, c.occurred_at, c.received_at,
        c.causation_id, c.aggregate_type, c.aggregate_id, c.aggregate_version, c.status,
        c.raw_event_id).where(c.correlation_id == correlation_id)
        .order_by(c.position).limit(limit)).mappings()
    return [dict(r) for r in rows]


def document_entities(conn: Connection, event_ids: Collection[str]) -> dict[str, str]:
    """Event id → the legal entity its document names (events whose document names none,
    or whose payload does not read, are left out)."""
    if not event_ids:
        return {}
    rows = conn.execute(select(events.c.event_id, events.c.payload)
                        .where(events.c.event_id.in_(sorted(event_ids))))
    found: dict[str, str] = {}
    for event_id, payload in rows:
        try:
            data = jsonutil.loads(payload)
        except (DomainError, ValueError):
            continue
        values = data.values() if isinstance(data, dict) else ()
        documents = [v for v in values if isinstance(v, dict)]
        entity = next((d["legal_entity"] for d in documents
                       if isinstance(d.get("legal_entity"), str)), None)
        if entity is not None:
            found[str(event_id)] = entity
    return found


CORRELATIONS_MAX = 50


def correlations_of(conn: Connection, object_id: str, aggregate_types: Collection[str],
                    limit: int = CORRELATIONS_MAX) -> list[dict[str, Any]]:
    """The correlation ids of the events about one object (an invoice, a contract, …: any of
    `aggregate_types` with the id `object_id`), in the order they began, with the object's
    type and the first and last time an event of it occurred. Read through the aggregate
    index: the types are listed, so no scan of the log."""
    rows = conn.execute(
        select(events.c.correlation_id, events.c.aggregate_type,
               func.min(events.c.position).label("first_position"),
               func.min(events.c.occurred_at).label("first_at"),
               func.max(events.c.occurred_at).label("last_at"), func.count().label("events"))
        .where(events.c.aggregate_type.in_(sorted(aggregate_types)),
               events.c.aggregate_id == object_id)
        .group_by(events.c.correlation_id, events.c.aggregate_type)
        .order_by("first_position").limit(limit)).mappings()
    return [{"correlation_id": str(r["correlation_id"]), "object_type": str(r["aggregate_type"]),
             "first_at": r["first_at"], "last_at": r["last_at"], "events": int(r["events"])}
            for r in rows]


def correlation_extent(conn: Connection, correlation_id: str) -> dict[str, Any] | None:
    """How many events one correlation id has, and when the first and last occurred (None:
    it has none)."""
    count, first, last = conn.execute(
        select(func.count(), func.min(events.c.occurred_at), func.max(events.c.occurred_at))
        .where(events.c.correlation_id == correlation_id)).one()
    if not count:
        return None
    return {"correlation_id": correlation_id, "object_type": None, "first_at": first,
            "last_at": last, "events": int(count)}
