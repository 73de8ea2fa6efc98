"""The outbox: one delivery per (event, target), written in the acceptance transaction.

Claiming is a lease: a worker takes a due delivery by a conditional UPDATE (portable to
SQLite and PostgreSQL); a worker that dies leaves a lease that expires, and another worker
takes the delivery again. Per target, deliveries of one partition (one aggregate) go out in
order: a delivery is due only when no earlier delivery of its partition is unfinished.

An expired lease is taken back when nothing else is due or in flight, alone, and counted
(`lease_expiries`). A delivery whose lease runs out for the `lease_expiries_max`-th time is
not claimed again: `bury_expired` makes it `dead` (a worker that dies on it every time must
not hold its aggregate, nor stay `in_flight`, for ever). A person's retry or a replay starts
the count again.

Each delivery has a lane: the legal entity of its event (`domain.legal_entity`), so that an
ERP's deliveries can be claimed per (target, lane) and a slow or closed entity holds back
no other. Deliveries without one (written before lanes, or of an event with no entity)
share one lane, NULL.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Select,
    and_,
    any_,
    bindparam,
    case,
    exists,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.sql.dml import Update
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.sql.selectable import ScalarSelect

from finsync.domain.ids import delivery_key
from finsync.domain.partition import partition_hash
from finsync.domain.status import UNFINISHED, DeliveryStatus
from finsync.storage import jsonutil
from finsync.storage.schema import deliveries, events
from finsync.storage.text import error_text

T = TypeVar("T")

# The partitions a worker owns: (the number of partitions, the ones it owns).
Owned = tuple[int, Collection[int]]
# A time in a test: a value, or the claim statements' bound `b_now`.
At = datetime | BindParameter[Any]

_KNOWN_KEYS = select(deliveries.c.delivery_key).where(
    deliveries.c.delivery_key.in_(bindparam("b_keys", expanding=True)))


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    event_id: str
    target: str
    delivery_key: str
    partition_key: str
    correlation_id: str
    status: DeliveryStatus
    attempts: int
    override: Mapping[str, str] = field(default_factory=dict)
    lease_expiries: int = 0
    lane: str | None = None  # the legal entity of the event (None: the lane of those without)


_LANE_MAX = 64  # the column's width; a longer entity id shares a lane with its namesakes


def _lane(entity: str | None) -> str | None:
    return None if entity is None else entity[:_LANE_MAX]


def enqueue(conn: Connection, event_id: str, targets: Iterable[str], partition_key: str,
            correlation_id: str, at: datetime, lane: str | None = None) -> int:
    """Add the deliveries not already there; returns how many were added."""
    wanted = {delivery_key(event_id, t): t for t in targets}
    if not wanted:
        return 0
    have = set(conn.execute(_KNOWN_KEYS, {"b_keys": list(wanted)}).scalars())
    rows = [{"event_id": event_id, "target": t, "delivery_key": k,
             "partition_key": partition_key, "correlation_id": correlation_id,
             "status": DeliveryStatus.PENDING, "attempts": 0, "next_attempt_at": at,
             "created_at": at, "lane": _lane(lane)}
            for k, t in wanted.items() if k not in have]
    if rows:
        conn.execute(insert(deliveries), _hashed(rows))
    return len(rows)


@dataclass(frozen=True, slots=True)
class NewDeliveries:
    """What `enqueue` takes for one event, for `enqueue_many`."""

    event_id: str
    targets: tuple[str, ...]
    partition_key: str
    correlation_id: str
    lane: str | None = None


def enqueue_many(conn: Connection, wanted: Sequence[NewDeliveries], at: datetime) -> int:
    """`enqueue` for many events: one look-up of the keys already there, one executemany
    of the others, in the order given (delivery ids keep each partition's order)."""
    rows = [{"event_id": w.event_id, "target": t, "delivery_key": delivery_key(w.event_id, t),
             "partition_key": w.partition_key, "correlation_id": w.correlation_id,
             "status": DeliveryStatus.PENDING, "attempts": 0, "next_attempt_at": at,
             "created_at": at, "lane": _lane(w.lane)}
            for w in wanted for t in dict.fromkeys(w.targets)]
    if not rows:
        return 0
    have = set(conn.execute(_KNOWN_KEYS, {"b_keys": [r["delivery_key"] for r in rows]})
               .scalars())
    rows = [r for r in rows if r["delivery_key"] not in have]
    if rows:
        conn.execute(insert(deliveries), _hashed(rows))
    return len(rows)


def _hashed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """New delivery rows with the hash of their partition key (`partition_hash`)."""
    for row in rows:
        row["partition_hash"] = partition_hash(row["partition_key"])
    return rows


def known_keys(conn: Connection, keys: Collection[str]) -> set[str]:
    """Which of these delivery keys the outbox holds already (one statement)."""
    if not keys:
        return set()
    return set(conn.execute(_KNOWN_KEYS, {"b_keys": list(keys)}).scalars())


def _expired(now: At) -> ColumnElement[bool]:
    return and_(deliveries.c.status == DeliveryStatus.IN_FLIGHT,
                deliveries.c.lease_expires_at < now)


# The outbox again, as the earlier deliveries of a partition and as the live leases: made
# once, as making an alias makes a proxy of every column (most of a claim's own cost).
_EARLIER = deliveries.alias("earlier")
_LIVE = deliveries.alias("live")


_PENDING = literal(DeliveryStatus.PENDING.value, literal_execute=True)


def _waiting(now: At) -> ColumnElement[bool]:
    """Pending and due: the claim's path is `ix_deliveries_pending`, in id order.

    The status is written into the statement, not bound: a partial index serves only a
    statement that names its value (SQLite plans before binding, and PostgreSQL's generic
    plans do not look either). The time is tested through an expression no index serves,
    or SQLite, without statistics, prefers `ix_deliveries_due` (status, next attempt),
    reads every pending delivery and sorts them."""
    return and_(deliveries.c.status == _PENDING,
                _unindexed(deliveries.c.next_attempt_at) <= now)


def _unindexed(column: ColumnElement[T]) -> ColumnElement[T]:
    """`column` through an expression that no index serves (`coalesce(c, c)`, the value
    itself): a test that must not steer a planner without statistics to an index."""
    return func.coalesce(column, column)


def _first_unfinished() -> ColumnElement[bool]:
    """No earlier delivery of the same target and partition key is unfinished: a
    partition's deliveries go in order."""
    earlier = _EARLIER
    # The target is matched through an expression (`target || ''`): matched plainly,
    # PostgreSQL carries a claim's `target = 'x'` over to the earlier deliveries too and,
    # on young statistics, looks them up by target alone, reading every delivery of the
    # target for each candidate (a claim of 2,000 pending deliveries took minutes).
    return ~exists().where(
        earlier.c.target == deliveries.c.target + "",
        earlier.c.partition_key == deliveries.c.partition_key,
        earlier.c.id < deliveries.c.id,
        earlier.c.status.in_(UNFINISHED),
    )


def _due(now: datetime) -> ColumnElement[bool]:
    return and_(or_(_waiting(now), _expired(now)), _first_unfinished())


def _in_lanes(lanes: Collection[str | None]) -> ColumnElement[bool]:
    """The deliveries of these lanes (None: the lane of those without one)."""
    named = [lane for lane in lanes if lane is not None]
    chosen = [deliveries.c.lane.in_(named)] if named else []
    if None in lanes:
        chosen.append(deliveries.c.lane.is_(None))
    return or_(false(), *chosen)


def _out_of_lanes(lanes: Collection[str | None]) -> ColumnElement[bool]:
    """The deliveries of no lane of these (spelt out: `NOT lane IN (…)` is NULL, not true,
    for a delivery without a lane)."""
    named = [lane for lane in lanes if lane is not None]
    kept = [or_(deliveries.c.lane.is_(None), deliveries.c.lane.not_in(named))] if named else []
    if None in lanes:
        kept.append(deliveries.c.lane.is_not(None))
    return and_(true(), *kept)


def in_partitions(table: Any, owned: Owned) -> ColumnElement[bool]:
    """The rows of `table` (the outbox or an alias of it) in the partitions `owned`.

    Each delivery holds `partition_hash`, the stable hash of its partition key
    (`domain.partition`), written with it; a worker that owns some partitions claims only
    `partition_hash % count IN owned` (a BIGINT modulo, the same on SQLite and PostgreSQL),
    so the count can change without rewriting a row. A delivery enqueued before the column
    existed (NULL hash) is in partition 0: whoever owns partition 0 sends that backlog, and
    the later deliveries of its aggregate wait behind it (the per-partition-key order)
    whichever worker owns them."""
    count, chosen = owned
    if count < 1:
        raise ValueError(f"the number of partitions must be at least 1, not {count}")
    bucket = func.coalesce(table.c.partition_hash, 0) % count
    return bucket.in_(sorted(set(chosen)))


def claim(conn: Connection, owner: str, now: datetime, lease_s: float, limit: int,
          only: Collection[str] | None = None, skip: Collection[str] = (),
          lease_expiries_max: int | None = None, *,
          lanes: Collection[str | None] | None = None,
          skip_lanes: Collection[str | None] = (),
          partitions: Owned | None = None,
          lane_max: int | None = None) -> list[Delivery]:
    """Lease up to `limit` due deliveries to `owner` (the caller commits); `only` and `skip`
    choose targets (the posting buffer claims its ERP's deliveries), `lanes` and
    `skip_lanes` choose lanes (the buffer skips the lanes whose calls are all out),
    `partitions` the partitions the worker owns (`(count, owned)`; None: every one).
    `lane_max`: of the first `limit` due deliveries (in delivery order), at most that many
    of each lane, the earliest (the buffer's calls can carry no more per lane in a round:
    the others stay pending, unleased, instead of being leased and given back).

    A delivery whose lease ran out is a suspect: it is taken back only when nothing else is
    due nor in flight (under a live lease), alone, and counted in `lease_expiries`. A worker
    that died on one delivery of its batch must not take the others down with it again, nor
    die on it first thing in every round while the rest waits; and if a worker dies while a
    suspect is the only delivery out, the suspect is the one to blame. One that would reach
    `lease_expiries_max` is left to `bury_expired` (None: no limit).
    """
    if partitions is not None and not partitions[1]:
        return []
    owned = None if partitions is None else (partitions[0], tuple(sorted(set(partitions[1]))))
    shape = _Shape(conn.dialect.name, _names(only), _names(skip) or (), _lanes(lanes),
                   _lanes(skip_lanes) or (), owned, limit, lane_max, lease_expiries_max)
    due, suspect = _claim_statements(shape)
    params = {"b_now": now, "b_owner": owner, "b_until": now + timedelta(seconds=lease_s)}
    return _taken(conn, due, params) or _taken(conn, suspect, params)


@dataclass(frozen=True, slots=True)
class _Shape:
    """What makes one claim statement differ from another; the times and the owner are
    bound at each claim."""
    dialect: str
    only: tuple[str, ...] | None
    skip: tuple[str, ...]
    lanes: tuple[str | None, ...] | None
    skip_lanes: tuple[str | None, ...]
    partitions: tuple[int, tuple[int, ...]] | None
    limit: int
    lane_max: int | None
    lease_expiries_max: int | None


def _names(names: Collection[str] | None) -> tuple[str, ...] | None:
    return None if names is None else tuple(sorted(set(names)))


def _lanes(lanes: Collection[str | None] | None) -> tuple[str | None, ...] | None:
    return None if lanes is None else tuple(sorted(set(lanes), key=lambda x: (x is not None, x)))


_NOW = bindparam("b_now", type_=deliveries.c.next_attempt_at.type)
# What a claim returns of each delivery it takes: what `Delivery` holds (`_row`), not the
# times nor the last result (a replay takes deliveries back with their first receipt).
_DELIVERY_COLUMNS = (deliveries.c.id, deliveries.c.event_id, deliveries.c.target,
                     deliveries.c.delivery_key, deliveries.c.partition_key,
                     deliveries.c.correlation_id, deliveries.c.status, deliveries.c.attempts,
                     deliveries.c.override, deliveries.c.lease_expiries, deliveries.c.lane)


# A worker claims in every round, mostly with the same few shapes, and building the
# statements (SQLAlchemy's clause objects, then their cache key) cost five times what the
# database did with them: 1.6 ms of an empty claim's 1.9 ms on SQLite. Each shape's
# statements are built once.
@functools.lru_cache(maxsize=256)
def _claim_statements(shape: _Shape) -> tuple[Update, Update]:
    """The two UPDATEs of a claim of this shape: the due deliveries, then one suspect."""
    # Each status test is stated once and the targets compared plainly, so that the
    # databases walk the pending deliveries of a target in id order (`ix_deliveries_pending`)
    # and stop at `limit`: with the status tests spelt twice (waiting, or else leased out;
    # and then waiting) and the target as an expression, PostgreSQL estimated a handful of
    # rows, read every pending delivery, tested each against its partition and sorted: a
    # claim's cost grew with the backlog.
    chosen = select(deliveries.c.id).where(_first_unfinished())
    if shape.only is not None:
        chosen = chosen.where(deliveries.c.target.in_(list(shape.only)))
    if shape.skip:
        chosen = chosen.where(deliveries.c.target.not_in(list(shape.skip)))
    if shape.lanes is not None:
        chosen = chosen.where(_in_lanes(shape.lanes))
    if shape.skip_lanes:
        chosen = chosen.where(_out_of_lanes(shape.skip_lanes))
    if shape.partitions is not None:
        chosen = chosen.where(in_partitions(deliveries, shape.partitions))
    postgresql = shape.dialect == "postgresql"
    # The rows chosen are re-tested as they are taken, through expressions no index
    # serves, so that they are taken by id (not by a walk of the pending deliveries).
    still_waiting = and_(_unindexed(deliveries.c.status) == DeliveryStatus.PENDING,
                         _unindexed(deliveries.c.next_attempt_at) <= _NOW)
    due = _lease(postgresql, _chosen(chosen.where(_waiting(_NOW)), shape.limit, shape.lane_max),
                 still_waiting)
    expired = _expired(_NOW)
    if shape.lease_expiries_max is not None:
        expired = and_(expired, deliveries.c.lease_expiries + 1 < shape.lease_expiries_max)
    live = _LIVE
    live_lease = and_(live.c.status == DeliveryStatus.IN_FLIGHT, live.c.lease_expires_at >= _NOW)
    if shape.partitions is not None:  # another worker's partitions never hold back this one's
        live_lease = and_(live_lease, in_partitions(live, shape.partitions))
    quiet = ~exists().where(live_lease)
    suspect = _lease(postgresql, _chosen(chosen.where(expired, quiet), 1, None), expired,
                     lease_expiries=deliveries.c.lease_expiries + 1)
    return due, suspect


def _lease(postgresql: bool, chosen: ScalarSelect[int], still_due: ColumnElement[bool],
           **values: Any) -> Update:
    """One conditional UPDATE. PostgreSQL re-checks `still_due` on the locked row, so two
    workers racing for the same row cannot both take it; SQLite has a single writer.

    The ids are chosen once, then the rows taken by id. On PostgreSQL the choice is an
    array (`ARRAY(SELECT …)`, computed once before the update): as `id IN (SELECT …)`,
    young statistics (a table that has grown since it was last analysed) could plan it as
    a semi-join that runs the look-ahead again for every pending delivery. SQLite computes
    an `IN (SELECT …)` once."""
    taken = (deliveries.c.id == any_(func.array(chosen)) if postgresql
             else deliveries.c.id.in_(chosen))
    return (update(deliveries).where(taken, still_due)
            .values(status=DeliveryStatus.IN_FLIGHT, lease_owner=bindparam("b_owner"),
                    lease_expires_at=bindparam("b_until",
                                               type_=deliveries.c.lease_expires_at.type),
                    **values)
            .returning(*_DELIVERY_COLUMNS))


def _taken(conn: Connection, statement: Update, params: Mapping[str, Any]) -> list[Delivery]:
    rows = conn.execute(statement, params).mappings().all()
    return sorted((_row(r) for r in rows), key=lambda d: d.id)


def _chosen(due_ids: Select[tuple[int]], limit: int,
            lane_max: int | None) -> ScalarSelect[int]:
    """The ids to lease: the first `limit` due, and of those at most `lane_max` per lane
    (numbered in each lane by a window over those `limit` rows only, so the look-ahead
    stays an index scan that stops at `limit`; NULL lanes number together, as one lane)."""
    first = due_ids.order_by(deliveries.c.id).limit(limit)
    if lane_max is None or lane_max >= limit:
        return first.scalar_subquery()
    window = first.add_columns(deliveries.c.lane).subquery("first_due")
    numbered = select(window.c.id, func.row_number().over(
        partition_by=window.c.lane, order_by=window.c.id).label("n")).subquery("numbered")
    return select(numbered.c.id).where(numbered.c.n <= lane_max).scalar_subquery()


def bury_expired(conn: Connection, now: datetime, lease_expiries_max: int,
                 error: str) -> list[Delivery]:
    """Make `dead` every delivery whose lease ran out for the `lease_expiries_max`-th time,
    with `error`; returns them (the caller opens their exceptions)."""
    return _taken(conn, _BURY, {"b_now": now, "b_max": lease_expiries_max,
                                "b_error": error_text(error)})


# Built once: every round of every worker runs it.
_BURY = (update(deliveries)
         .where(_expired(_NOW), deliveries.c.lease_expiries + 1 >= bindparam("b_max"))
         .values(status=DeliveryStatus.DEAD, lease_expiries=deliveries.c.lease_expiries + 1,
                 lease_owner=None, lease_expires_at=None, last_error=bindparam("b_error"),
                 completed_at=_NOW)
         .returning(*_DELIVERY_COLUMNS))


def _row(r: Any) -> Delivery:
    return Delivery(r["id"], r["event_id"], r["target"], r["delivery_key"],
                    r["partition_key"], r["correlation_id"], DeliveryStatus(r["status"]),
                    r["attempts"],
                    jsonutil.loads(r["override"]) if r["override"] else {},
                    r["lease_expiries"], r["lane"])


# Settling a leased delivery: only its current lease owner may, and each try counts.
_SETTLE = update(deliveries).where(
    deliveries.c.id == bindparam("b_id"), deliveries.c.lease_owner == bindparam("b_owner"),
    deliveries.c.status == DeliveryStatus.IN_FLIGHT).values(
    status=bindparam("b_status"), last_error=bindparam("b_error"),
    # A delivery posted before keeps its first completion (a replay sends it again): the
    # event-to-posting latency is measured to the first posting.
    result=bindparam("b_result"),
    completed_at=func.coalesce(deliveries.c.completed_at, bindparam("b_completed_at")),
    next_attempt_at=bindparam("b_next_attempt_at"), attempts=deliveries.c.attempts + 1,
    lease_owner=None, lease_expires_at=None)


def _settle(conn: Connection, delivery_id: int, owner: str, **values: Any) -> bool:
    params = {"b_id": delivery_id, "b_owner": owner, "b_error": None, "b_result": None,
              "b_completed_at": None, "b_next_attempt_at": values.pop("next_attempt_at")}
    params.update({f"b_{k}": v for k, v in values.items()})
    params["b_error"] = error_text(params["b_error"])
    return bool(conn.execute(_SETTLE, params).rowcount)


def complete_many(conn: Connection, results: Mapping[int, str], owner: str,
                  at: datetime) -> set[int]:
    """`complete` for many deliveries: the ids still leased to `owner` are settled and come
    back (the others' leases were lost). On PostgreSQL in one statement, joined to the ids
    and results passed as two arrays (an executemany there is a statement per row on the
    server); on SQLite, in-process, a look-up and an executemany."""
    if not results:
        return set()
    if conn.dialect.name == "postgresql":
        ordered = sorted(results.items())
        return {int(i) for i in conn.execute(_COMPLETE_ARRAYS, {
            "b_ids": [i for i, _ in ordered], "b_results": [r for _, r in ordered],
            "b_owner": owner, "b_at": at}).scalars()}
    held = select(deliveries.c.id).where(
        deliveries.c.id.in_(list(results)), deliveries.c.lease_owner == owner,
        deliveries.c.status == DeliveryStatus.IN_FLIGHT)
    ours = {int(i) for i in conn.execute(held).scalars()}
    if ours:
        conn.execute(_SETTLE, [
            {"b_id": i, "b_owner": owner, "b_status": DeliveryStatus.DONE, "b_error": None,
             "b_result": results[i], "b_completed_at": at, "b_next_attempt_at": at}
            for i in sorted(ours)])
    return ours


# `complete_many` on PostgreSQL: what `_SETTLE` does to a done delivery, for every id of
# `b_ids` still leased to `b_owner`, with the result at the same place of `b_results`.
_COMPLETE_ARRAYS = text(
    "UPDATE deliveries SET status = :b_status, last_error = NULL, result = done.result, "
    "completed_at = coalesce(deliveries.completed_at, :b_at), next_attempt_at = :b_at, "
    "attempts = deliveries.attempts + 1, lease_owner = NULL, lease_expires_at = NULL "
    "FROM unnest(CAST(:b_ids AS BIGINT[]), CAST(:b_results AS TEXT[])) AS done (id, result) "
    "WHERE deliveries.id = done.id AND deliveries.lease_owner = :b_owner "
    "AND deliveries.status = :b_in_flight RETURNING deliveries.id").bindparams(
    bindparam("b_at", type_=deliveries.c.completed_at.type),
    b_status=DeliveryStatus.DONE.value, b_in_flight=DeliveryStatus.IN_FLIGHT.value)


def complete(conn: Connection, delivery_id: int, owner: str, result: str, at: datetime) -> bool:
    """Mark done; False when the lease was lost (another worker owns the outcome)."""
    return _settle(conn, delivery_id, owner, status=DeliveryStatus.DONE, result=result,
                   completed_at=at,
                   next_attempt_at=at)


def reschedule(conn: Connection, delivery_id: int, owner: str, error: str,
               next_attempt_at: datetime) -> bool:
    return _settle(conn, delivery_id, owner, status=DeliveryStatus.PENDING, error=error,
                   next_attempt_at=next_attempt_at)


def fail(conn: Connection, delivery_id: int, owner: str, status: DeliveryStatus, error: str,
         at: datetime) -> bool:
    """`failed` (permanent) or `dead` (retries exhausted); both wait for a person."""
    return _settle(conn, delivery_id, owner, status=status, error=error, completed_at=at,
                   next_attempt_at=at)


def release(conn: Connection, delivery_ids: Collection[int], owner: str) -> int:
    """Give back leased deliveries that were not sent (back-pressure): due as before, and
    the try does not count."""
    if not delivery_ids:
        return 0
    return int(conn.execute(update(deliveries).where(
        deliveries.c.id.in_(list(delivery_ids)), deliveries.c.lease_owner == owner,
        deliveries.c.status == DeliveryStatus.IN_FLIGHT).values(
        status=DeliveryStatus.PENDING, lease_owner=None, lease_expires_at=None)).rowcount)


def extend_leases(conn: Connection, delivery_ids: Collection[int], owner: str,
                  until: datetime) -> int:
    """Keep leased deliveries `owner`'s until `until` (a posting task whose earlier calls
    took long); how many it still held (one whose lease ran out and another took is not
    taken back)."""
    if not delivery_ids:
        return 0
    return int(conn.execute(update(deliveries).where(
        deliveries.c.id.in_(list(delivery_ids)), deliveries.c.lease_owner == owner,
        deliveries.c.status == DeliveryStatus.IN_FLIGHT).values(
        lease_expires_at=until)).rowcount)


def requeue(conn: Connection, event_ids: Sequence[str], at: datetime,
            targets: Sequence[str] | None = None) -> int:
    """Send deliveries of these events again (replay); keys stay, so targets dedupe."""
    if not event_ids:
        return 0
    query = update(deliveries).where(deliveries.c.event_id.in_(event_ids),
                                     deliveries.c.status != DeliveryStatus.IN_FLIGHT)
    if targets is not None:
        query = query.where(deliveries.c.target.in_(targets))
    done_before = deliveries.c.status == DeliveryStatus.DONE
    return int(conn.execute(query.values(
        status=DeliveryStatus.PENDING, next_attempt_at=at, attempts=0, lease_expiries=0,
        last_error=None,
        completed_at=case((done_before, deliveries.c.completed_at), else_=None))).rowcount)


def retry_now(conn: Connection, delivery_id: int, at: datetime,
              override: Mapping[str, str] | None = None) -> bool:
    """Send a settled (failed, dead or pending) delivery again at once, with fresh attempts
    and, for a re-route, what changes for the target. False when it is in flight or done."""
    values: dict[str, Any] = {"status": DeliveryStatus.PENDING, "next_attempt_at": at,
                              "attempts": 0, "lease_expiries": 0,
                              "last_error": None, "completed_at": None}
    if override is not None:
        values["override"] = jsonutil.dumps(dict(override))
    return bool(conn.execute(update(deliveries).where(
        deliveries.c.id == delivery_id,
        deliveries.c.status.in_((DeliveryStatus.PENDING, DeliveryStatus.FAILED,
                                 DeliveryStatus.DEAD))).values(values)).rowcount)


def get(conn: Connection, delivery_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(deliveries).where(deliveries.c.id == delivery_id)).mappings().first()
    return None if row is None else dict(row)


def event_statuses(conn: Connection, event_ids: Sequence[str]) -> dict[int, DeliveryStatus]:
    """Delivery id → status, for every delivery of these events."""
    rows = conn.execute(select(deliveries.c.id, deliveries.c.status)
                        .where(deliveries.c.event_id.in_(event_ids)))
    return {int(i): DeliveryStatus(status) for i, status in rows}


def any_due(conn: Connection, now: datetime, only: Collection[str] | None = None,
            skip_lanes: Collection[str | None] = (),
            partitions: Owned | None = None) -> bool:
    """Whether a delivery (to one of `only`, if given; in none of `skip_lanes`; in
    `partitions`, if given) could be claimed now."""
    query = select(deliveries.c.id).where(_due(now))
    if only is not None:
        query = query.where(deliveries.c.target.in_(list(only)))
    if skip_lanes:
        query = query.where(_out_of_lanes(skip_lanes))
    if partitions is not None:
        if not partitions[1]:
            return False
        query = query.where(in_partitions(deliveries, partitions))
    return conn.execute(query.limit(1)).first() is not None


def statuses(conn: Connection, delivery_ids: Collection[int]) -> dict[int, DeliveryStatus]:
    if not delivery_ids:
        return {}
    return {int(i): DeliveryStatus(s) for i, s in conn.execute(
        select(deliveries.c.id, deliveries.c.status).where(
            deliveries.c.id.in_(list(delivery_ids))))}


def counts(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(deliveries.c.status, func.count()).group_by(deliveries.c.status))
    return {str(status): int(n) for status, n in rows}


def outstanding(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(deliveries).where(
        deliveries.c.status.in_((DeliveryStatus.PENDING, DeliveryStatus.IN_FLIGHT)))).scalar_one())


def next_due_at(conn: Connection) -> datetime | None:
    value = conn.execute(select(func.min(deliveries.c.next_attempt_at))
                         .where(deliveries.c.status == DeliveryStatus.PENDING)).scalar_one()
    return value  # type: ignore[no-any-return]


def done_results(conn: Connection,
                 targets: Collection[str]) -> list[tuple[str, str, str, str]]:
    """`(correlation id, target, result JSON, event type)` of every delivery done to these
    targets."""
    rows = conn.execute(select(deliveries.c.correlation_id, deliveries.c.target,
                               deliveries.c.result, events.c.type)
                        .join(events, events.c.event_id == deliveries.c.event_id).where(
        deliveries.c.status == DeliveryStatus.DONE, deliveries.c.target.in_(list(targets)))
        .order_by(deliveries.c.id))
    return [(str(c), str(t), str(r), str(e)) for c, t, r, e in rows]


def all_rows(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(
        select(deliveries).order_by(deliveries.c.delivery_key)).mappings()]


def waiting_counts(conn: Connection, now: datetime) -> tuple[int, datetime | None, int, int]:
    """`(retrying, next retry at, due now, in flight)`: pending deliveries whose next
    attempt is later, the earliest of those, pending ones due now, and leased ones."""
    pending = deliveries.c.status == DeliveryStatus.PENDING
    retrying, next_at = conn.execute(
        select(func.count(), func.min(deliveries.c.next_attempt_at))
        .where(pending, deliveries.c.next_attempt_at > now)).one()
    due = conn.execute(select(func.count()).select_from(deliveries)
                       .where(pending, deliveries.c.next_attempt_at <= now)).scalar_one()
    in_flight = conn.execute(select(func.count()).select_from(deliveries)
                             .where(deliveries.c.status == DeliveryStatus.IN_FLIGHT)
                             ).scalar_one()
    return int(retrying), next_at, int(due), int(in_flight)
