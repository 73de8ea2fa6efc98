"""The usage log: raw meter events, the aggregation runs that total them, and the totals
handed to billing.

Rules:
- A meter event is stored once per (source, event id): the unique key does the
  de-duplication (`ON CONFLICT DO NOTHING`), in the statement that inserts; the first one
  stored wins, and those sent again are never stored twice (`differing` finds those sent
  again with other values, for intake to refuse).
- An aggregation run is given the periods it totals by (`RunPeriod`: per subscription, a
  partition of the days of its waiting events into billing's periods, and days no period
  holds, each its own). It claims every event not yet counted that lies in one of them and
  whose period ended by its `through` day (`run_id` set), and totals them per (source,
  subscription, product, period) with one `INSERT … SELECT … GROUP BY`, in the same
  transaction: each event is in exactly one total. An event in no period given waits for a
  later run. A meter event that arrives after its period was totalled is claimed by the next
  run and makes a delta total of its own (its own id), added to the first by billing.
- A total is `pending` until billing recorded it (`recorded`) or refused it (`refused`, with
  its code); the id billing knows it by is `record_id(total)`, the same on every attempt.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Connection,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    type_coerce,
    update,
)

from finsync.dbtypes import Serial, UtcDateTime
from finsync.domain.clock import Period
from finsync.domain.meter import MeterEvent
from finsync.storage import arrays
from finsync.storage.db import StorageError
from finsync.storage.schema import metadata
from finsync.storage.text import error_text

usage_events = Table(
    "usage_events", metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("subscription_id", String(255), nullable=False),
    Column("product_id", String(255), nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("usage_day", Date, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("run_id", BigInteger),  # the aggregation run that counted it (None: not yet)
    UniqueConstraint("source", "event_id"),
    # A run's events by subscription and day: what joins them to their periods, whichever
    # side the planner loops on (by day alone, each period scanned every subscription's).
    Index("ix_usage_events_run_id_subscription_id_usage_day", "run_id", "subscription_id",
          "usage_day"),
)

usage_runs = Table(
    "usage_runs", metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("run_at", UtcDateTime, nullable=False),
    Column("through_day", Date, nullable=False),  # days before it were totalled
    Column("events", Integer, nullable=False),
    Column("totals", Integer, nullable=False),
)

usage_totals = Table(
    "usage_totals", metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("run_id", BigInteger, ForeignKey("usage_runs.id"), nullable=False),
    Column("source", String(64), nullable=False),
    Column("subscription_id", String(255), nullable=False),
    Column("product_id", String(255), nullable=False),
    Column("period_start", Date, nullable=False),
    Column("period_end", Date, nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("events", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # UsageTotalStatus
    Column("error_code", String(64)),
    Column("error_detail", Text),
    Column("recorded_at", UtcDateTime),
    UniqueConstraint("run_id", "source", "subscription_id", "product_id", "period_start",
                     name="uq_usage_totals_key"),  # the convention's name is too long
    Index("ix_usage_totals_status_id", "status", "id"),
)

# The periods a run totals by, written and emptied in the run's own transaction.
usage_run_periods = Table(
    "usage_run_periods", metadata,
    Column("run_id", BigInteger, primary_key=True),
    Column("subscription_id", String(255), primary_key=True),
    Column("period_start", Date, primary_key=True),
    Column("period_end", Date, nullable=False),
    Column("daily", Boolean, nullable=False),  # each day of it a period of its own
)

PENDING, RECORDED, REFUSED = "pending", "recorded", "refused"  # usage_totals.status


@dataclass(frozen=True, slots=True)
class RunPeriod:
    """Days `[start, end)` of a subscription's usage that a run totals as one period, or,
    `daily`, as one period a day (no billing period holds them)."""

    subscription_id: str
    start: date
    end: date
    daily: bool


@dataclass(frozen=True, slots=True)
class UsageTotal:
    id: int
    source: str
    subscription_id: str
    product_id: str
    period: Period
    quantity: int
    events: int


def record_id(total: UsageTotal) -> str:
    """The id billing knows a total by: the same on every attempt, unique per total."""
    return f"usage_total_{total.id}"


_COLUMNS = ("source", "event_id", "subscription_id", "product_id", "quantity", "occurred_at",
            "usage_day", "received_at")
_STAGE = "usage_events_in"  # PostgreSQL: the session's staging table for COPY
LOOKUP_CHUNK = 500  # event ids per look-up of stored duplicates (SQLite's bound values)


def append(conn: Connection, source: str, events: Sequence[MeterEvent],
           received_at: datetime) -> int:
    """Store meter events not stored before, in the caller's transaction; returns how many
    were new. The bulk path of each driver (COPY on PostgreSQL, the driver's executemany on
    SQLite), de-duplicated by the unique key in the same statement; values are bound by the
    columns' own SQLAlchemy types, so they read back as any other row."""
    if not events:
        return 0
    try:
        if conn.dialect.name == "postgresql":
            return _copy_postgresql(conn, source, events, received_at)
        return _insert_sqlite(conn, source, events, received_at)
    except (sqlite3.Error, psycopg.Error) as exc:  # the driver's own, below SQLAlchemy
        raise StorageError(f"database error storing meter events: {exc}") from exc


def differing(conn: Connection, source: str,
              events: Sequence[MeterEvent]) -> list[tuple[int, MeterEvent]]:
    """The positions of `events` whose id is stored with other values (subscription,
    product, quantity or time), each with the stored event: the first one stored stands.
    (Read after `append`, in its transaction: an event stored just now equals itself.)"""
    positions: dict[str, list[int]] = {}
    for position, event in enumerate(events):
        positions.setdefault(event.id, []).append(position)
    found: list[tuple[int, MeterEvent]] = []
    ids = list(positions)
    t = usage_events
    chunk = len(ids) if conn.dialect.name == "postgresql" else LOOKUP_CHUNK
    for start in range(0, len(ids), chunk):
        rows = conn.execute(select(t.c.event_id, t.c.subscription_id, t.c.product_id,
                                   t.c.quantity, t.c.occurred_at).where(
            t.c.source == source, arrays.one_of(conn, t.c.event_id, ids[start:start + chunk])))
        for row in rows:
            stored = MeterEvent(*row)
            found += [(p, stored) for p in positions[stored.id] if events[p] != stored]
    return sorted(found, key=lambda pair: pair[0])


def _rows(conn: Connection, source: str, events: Sequence[MeterEvent],
          received_at: datetime) -> Iterator[tuple[object, ...]]:
    """The rows to bind. PostgreSQL's driver takes `datetime` and `date` as they are; on
    SQLite the text is what SQLAlchemy's DATETIME and DATE store (UTC, naive, microseconds;
    ISO date), cut from one C `isoformat` of the UTC moment (SQLAlchemy's Python formatting
    per value was the larger part of the cost per event; `test_usage` checks the two
    agree)."""
    if conn.dialect.name != "sqlite":
        for e in events:
            moment = e.occurred_at
            yield (source, e.id, e.subscription_id, e.product_id, e.quantity, moment,
                   moment.date(), received_at)
        return
    received = sqlite_datetime(received_at)
    for event_id, subscription, product, quantity, moment in events:
        if moment.tzinfo is not UTC:
            moment = moment.astimezone(UTC)
        text = moment.isoformat(" ", "microseconds")  # `sqlite_datetime`, inlined
        yield (source, event_id, subscription, product, quantity, text[:26], text[:10],
               received)


def sqlite_datetime(moment: datetime) -> str:
    """A UTC-aware moment as SQLAlchemy's SQLite DATETIME stores it ("2026-03-01
    02:00:00.000000"): the first 26 characters of its UTC `isoformat`."""
    utc = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    return utc.isoformat(" ", "microseconds")[:26]


def _insert_sqlite(conn: Connection, source: str, events: Sequence[MeterEvent],
                   received_at: datetime) -> int:
    raw = conn.connection.driver_connection
    assert isinstance(raw, sqlite3.Connection)
    before = raw.total_changes
    raw.executemany(f"INSERT INTO usage_events ({', '.join(_COLUMNS)}) "
                    f"VALUES ({', '.join('?' for _ in _COLUMNS)}) "
                    "ON CONFLICT (source, event_id) DO NOTHING",
                    _rows(conn, source, events, received_at))
    return raw.total_changes - before


def _copy_postgresql(conn: Connection, source: str, events: Sequence[MeterEvent],
                     received_at: datetime) -> int:
    """COPY straight into `usage_events` when no event can be stored already (the common
    case: new events), in a savepoint; a unique violation (an id stored before, or twice in
    this batch) rolls the savepoint back and the batch goes through the staging table,
    de-duplicated by `ON CONFLICT DO NOTHING`. A batch whose first or last id is stored
    (a batch sent again) goes to the staging table at once."""
    raw = conn.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    rows = list(_rows(conn, source, events, received_at))
    with raw.cursor() as cursor:
        if not _seen(cursor, source, (events[0].id, events[-1].id)):
            try:
                with conn.begin_nested():
                    _copy(cursor, "usage_events", rows)
                return len(rows)
            except psycopg.errors.UniqueViolation:
                pass  # some were stored before: de-duplicated below
        return _copy_staged(cursor, rows)


def _seen(cursor: psycopg.Cursor[Any], source: str, ids: tuple[str, str]) -> bool:
    cursor.execute("SELECT 1 FROM usage_events WHERE source = %s AND event_id = ANY(%s) "
                   "LIMIT 1", (source, list(ids)))
    return cursor.fetchone() is not None


def _copy(cursor: psycopg.Cursor[Any], table: str, rows: Sequence[tuple[object, ...]]) -> None:
    with cursor.copy(f"COPY {table} ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _copy_staged(cursor: psycopg.Cursor[Any], rows: Sequence[tuple[object, ...]]) -> int:
    columns = ", ".join(_COLUMNS)
    cursor.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (source varchar(64), "
        "event_id varchar(255), subscription_id varchar(255), product_id varchar(255), "
        "quantity bigint, occurred_at timestamptz, usage_day date, "
        "received_at timestamptz) ON COMMIT DELETE ROWS")
    _copy(cursor, _STAGE, rows)
    cursor.execute(f"INSERT INTO usage_events ({columns}) SELECT {columns} FROM {_STAGE} "
                   "ON CONFLICT (source, event_id) DO NOTHING")
    stored = cursor.rowcount
    cursor.execute(f"DELETE FROM {_STAGE}")  # the transaction may go on
    return int(stored)


def newest_event_id(conn: Connection) -> int:
    """The id of the meter event stored last (0: none); a look-up of the primary key."""
    return int(conn.execute(select(func.max(usage_events.c.id))).scalar_one() or 0)


def arrived_before(conn: Connection, after_id: int, through_day: date) -> bool:
    """Whether an event stored after `after_id` (by id: on PostgreSQL one committed late
    under a smaller id is found when the day moves) lies on a day before `through_day`."""
    e = usage_events.c
    return conn.execute(select(e.id).where(e.id > after_id, e.usage_day < through_day)
                        .limit(1)).first() is not None


def waiting_spans(conn: Connection, through_day: date) -> dict[str, Period]:
    """Per subscription, the days from the first to the last of its events not yet counted
    and before `through_day`: what a run asks billing's periods of."""
    e = usage_events.c
    rows = conn.execute(select(e.subscription_id, func.min(e.usage_day), func.max(e.usage_day))
                        .where(e.run_id.is_(None), e.usage_day < through_day)
                        .group_by(e.subscription_id))
    return {sub: Period(first, last + timedelta(days=1)) for sub, first, last in rows}


def aggregate(conn: Connection, through_day: date, at: datetime,
              periods: Sequence[RunPeriod]) -> tuple[int, int, int]:
    """Claim the events not yet counted that lie in `periods`, in a period ended by
    `through_day`, and total them per source, subscription, product and period; returns
    (run id, events claimed, totals written). The caller serialises runs."""
    run_id = int(conn.execute(insert(usage_runs).returning(usage_runs.c.id),
                              {"run_at": at, "through_day": through_day, "events": 0,
                               "totals": 0}).scalar_one())
    if periods:
        conn.execute(insert(usage_run_periods), [
            {"run_id": run_id, "subscription_id": p.subscription_id, "period_start": p.start,
             "period_end": p.end, "daily": p.daily} for p in periods])
    e, p = usage_events.c, usage_run_periods.c
    holds = and_(p.run_id == run_id, p.subscription_id == e.subscription_id,
                 p.period_start <= e.usage_day, e.usage_day < p.period_end)
    ended = exists().where(holds, or_(p.daily, p.period_end <= through_day))
    claimed = conn.execute(update(usage_events).where(
        e.run_id.is_(None), e.usage_day < through_day, ended).values(run_id=run_id)).rowcount
    start = case((p.daily, e.usage_day), else_=p.period_start)
    end = case((p.daily, _day_after(conn, start)), else_=p.period_end)
    grouped = (select(literal(run_id, BigInteger), e.source, e.subscription_id, e.product_id,
                      start, end, func.sum(e.quantity), func.count(), literal(PENDING))
               .select_from(usage_events.join(usage_run_periods, holds))
               .where(e.run_id == run_id)
               .group_by(e.source, e.subscription_id, e.product_id, p.daily, p.period_end,
                         start))
    written = len(conn.execute(insert(usage_totals).from_select(
        ["run_id", "source", "subscription_id", "product_id", "period_start", "period_end",
         "quantity", "events", "status"], grouped).returning(usage_totals.c.id)).all())
    conn.execute(delete(usage_run_periods).where(p.run_id == run_id))
    conn.execute(update(usage_runs).where(usage_runs.c.id == run_id)
                 .values(events=claimed, totals=written))
    return run_id, int(claimed), int(written)


def _day_after(conn: Connection, day: ColumnElement[date]) -> ColumnElement[date]:
    """The next day, in SQL; literal text, not a bound value, so that the grouped and the
    selected expression read alike."""
    if conn.dialect.name == "sqlite":  # dates are ISO text there
        return type_coerce(func.date(day, literal_column("'+1 day'")), Date)
    return type_coerce(day + literal_column("1"), Date)


def pending_totals(conn: Connection, limit: int) -> list[UsageTotal]:
    t = usage_totals.c
    rows = conn.execute(select(t.id, t.source, t.subscription_id, t.product_id, t.period_start,
                               t.period_end, t.quantity, t.events).where(t.status == PENDING)
                        .order_by(t.id).limit(limit))
    return [UsageTotal(int(r.id), r.source, r.subscription_id, r.product_id,
                       Period(r.period_start, r.period_end), int(r.quantity), int(r.events))
            for r in rows]


def mark(conn: Connection, total_id: int, status: str, at: datetime,
         error_code: str | None = None, error_detail: str | None = None) -> None:
    conn.execute(update(usage_totals).where(usage_totals.c.id == total_id).values(
        status=status, recorded_at=at, error_code=error_code,
        error_detail=error_text(error_detail)))


def counts(conn: Connection) -> dict[str, int]:
    """Meter events stored and waiting to be totalled, and totals by status."""
    events = conn.execute(select(func.count()).select_from(usage_events)).scalar_one()
    waiting = conn.execute(select(func.count()).select_from(usage_events)
                           .where(usage_events.c.run_id.is_(None))).scalar_one()
    by_status = conn.execute(select(usage_totals.c.status, func.count())
                             .group_by(usage_totals.c.status))
    return {"events": int(events), "events_waiting": int(waiting),
            **{f"totals_{status}": int(n) for status, n in by_status}}
