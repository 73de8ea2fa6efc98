"""The figures behind the metrics of DESIGN §7, read from the store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Float,
    case,
    cast,
    func,
    select,
    type_coerce,
)

from finsync.domain.events import EventType
from finsync.domain.status import UNRESOLVED, DeliveryStatus, EventStatus
from finsync.storage.schema import deliveries, duplicates, events, exceptions, raw_events


def delivery_counts(conn: Connection) -> list[tuple[str, str, str, int]]:
    """(target, event type, status, count)."""
    rows = conn.execute(
        select(deliveries.c.target, events.c.type, deliveries.c.status, func.count())
        .join(events, events.c.event_id == deliveries.c.event_id)
        .group_by(deliveries.c.target, events.c.type, deliveries.c.status))
    return [(str(t), str(k), str(s), int(n)) for t, k, s, n in rows]


def posting_latencies(conn: Connection, targets: Sequence[str]) -> list[float]:
    """Seconds from an event's occurrence to its posting, per done delivery to `targets`
    (none below 0). Computed by the database, so only one float a delivery is read (a
    timestamp pair would cost its two conversions each, seconds at 100,000 invoices)."""
    seconds = _seconds_between(conn, events.c.occurred_at, deliveries.c.completed_at)
    rows = conn.execute(
        select(seconds)
        .join(events, events.c.event_id == deliveries.c.event_id)
        .where(deliveries.c.status == DeliveryStatus.DONE, deliveries.c.target.in_(targets),
               deliveries.c.completed_at.is_not(None)))
    return [max(0.0, float(value)) for value in rows.scalars().all()]


def _seconds_between(conn: Connection, start: ColumnElement[Any],
                     end: ColumnElement[Any]) -> ColumnElement[float]:
    """`end - start` in seconds, as the backend computes it (SQLite keeps timestamps as
    ISO text in UTC: julian days; PostgreSQL: the interval's epoch)."""
    if conn.dialect.name == "sqlite":
        return type_coerce((func.julianday(end) - func.julianday(start)) * 86400.0, Float)
    return cast(func.extract("epoch", end - start), Float)


def duplicates_and_raw(conn: Connection) -> tuple[int, int]:
    dup = conn.execute(select(func.count()).select_from(duplicates)).scalar_one()
    raw = conn.execute(select(func.count()).select_from(raw_events)).scalar_one()
    return int(dup), int(raw)


def unresolved_exceptions(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(exceptions.c["class"], exceptions.c.opened_at)
                        .where(exceptions.c.status.in_(UNRESOLVED)))
    return [{"class": str(k), "opened_at": at} for k, at in rows]


def at_stake_by_age(conn: Connection, opened_before: Sequence[datetime]
                    ) -> list[tuple[str, int, str | None, int, int | None]]:
    """`(class, age bucket, currency, count, minor units at stake)` of the unresolved
    exceptions, summed in the database. `opened_before` are the buckets' bounds, newest
    first: bucket 0 was opened after `opened_before[0]`, bucket n at or before
    `opened_before[n - 1]` and after `opened_before[n]`, the last at or before the last."""
    opened = exceptions.c.opened_at
    bucket = case(*((opened > bound, n) for n, bound in enumerate(opened_before)),
                  else_=len(opened_before))
    # Grouped over a subquery: the bucket's bound parameters are written once.
    aged = (select(exceptions.c["class"].label("name"), bucket.label("bucket"),
                   exceptions.c.currency, exceptions.c.amount_minor)
            .where(exceptions.c.status.in_(UNRESOLVED)).subquery())
    query = (select(aged.c.name, aged.c.bucket, aged.c.currency, func.count(),
                    func.sum(aged.c.amount_minor))
             .group_by(aged.c.name, aged.c.bucket, aged.c.currency))
    return [(str(name), int(n), None if currency is None else str(currency), int(count),
             None if minor is None else int(minor))
            for name, n, currency, count, minor in conn.execute(query)]


def age_s(opened_at: datetime, now: datetime) -> float:
    return max(0.0, (now - opened_at).total_seconds())


def correlation_deliveries(conn: Connection, correlation_id: str) -> dict[str, int]:
    rows = conn.execute(select(deliveries.c.status, func.count())
                        .where(deliveries.c.correlation_id == correlation_id)
                        .group_by(deliveries.c.status))
    return {str(status): int(n) for status, n in rows}


def correlation_deliveries_by_target(conn: Connection,
                                     correlation_id: str) -> dict[str, dict[str, int]]:
    """Per target system, its deliveries of one correlation id by status."""
    rows = conn.execute(select(deliveries.c.target, deliveries.c.status, func.count())
                        .where(deliveries.c.correlation_id == correlation_id)
                        .group_by(deliveries.c.target, deliveries.c.status))
    found: dict[str, dict[str, int]] = {}
    for target, status, n in rows:
        found.setdefault(str(target), {})[str(status)] = int(n)
    return found


def correlation_exceptions(conn: Connection, correlation_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(select(exceptions.c["class"], exceptions.c.status,
                               exceptions.c.amount_minor, exceptions.c.currency)
                        .where(exceptions.c.correlation_id == correlation_id))
    return [dict(r) for r in rows.mappings()]


def _last_of(kind: EventType, correlation_id: str | None) -> Any:
    """Per correlation id, when its last accepted event of `kind` occurred."""
    query = (select(events.c.correlation_id, func.max(events.c.occurred_at).label("at"))
             .where(events.c.type == kind.value, events.c.status == EventStatus.ACCEPTED)
             .group_by(events.c.correlation_id))
    if correlation_id is not None:
        query = query.where(events.c.correlation_id == correlation_id)
    return query.subquery()


def dunning(conn: Connection, correlation_id: str | None = None) -> tuple[int, int]:
    """`(threads, attempts)`: the correlation ids whose last declined payment attempt came
    after their last payment (in dunning), and every declined attempt accepted (of
    `correlation_id` only, when given). By when they occurred, not when they arrived."""
    declined = _last_of(EventType.PAYMENT_DECLINED, correlation_id)
    paid = _last_of(EventType.PAYMENT_APPLIED, correlation_id)
    threads = conn.execute(
        select(func.count()).select_from(declined.outerjoin(
            paid, paid.c.correlation_id == declined.c.correlation_id))
        .where((paid.c.at.is_(None)) | (paid.c.at < declined.c.at))).scalar_one()
    attempts = select(func.count()).where(
        events.c.type == EventType.PAYMENT_DECLINED.value,
        events.c.status == EventStatus.ACCEPTED)
    if correlation_id is not None:
        attempts = attempts.where(events.c.correlation_id == correlation_id)
    return int(threads), int(conn.execute(attempts).scalar_one())
