"""The usage log: raw meter events, the aggregation runs that total them, and the totals
handed to billing.

Rules:
- A meter event is stored once per (source, event id): the unique key does the
  de-duplication (`ON CONFLICT DO NOTHING`), in the same statement as the insert; the first
  one stored wins, and those sent again are counted as duplicates, never stored twice.
- An aggregation run claims every event not yet counted whose usage day is before its
  `through` day (`run_id` set), and totals them per (source, subscription, product, day) with
  one `INSERT … SELECT … GROUP BY`, in the same transaction: each event is in exactly one
  total. A meter event that arrives after its day was totalled is claimed by the next run and
  makes a delta total of its own (its own id), added to the first by billing.
- A total is `pending` until billing recorded it (`recorded`) or refused it (`refused`, with
  its code); the id billing knows it by is `record_id(total)`, the same on every attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Date,
    ForeignKey,
    Index,
    Insert,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from finsync.dbtypes import Serial, UtcDateTime
from finsync.domain.meter import MeterEvent
from finsync.storage.schema import metadata
from finsync.storage.text import storable_or_none

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
    Index("ix_usage_events_run_id_usage_day", "run_id", "usage_day"),
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
    Column("usage_day", Date, nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("events", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # UsageTotalStatus
    Column("error_code", String(64)),
    Column("error_detail", Text),
    Column("recorded_at", UtcDateTime),
    UniqueConstraint("run_id", "source", "subscription_id", "product_id", "usage_day",
                     name="uq_usage_totals_key"),  # the convention's name is too long
    Index("ix_usage_totals_status_id", "status", "id"),
)

PENDING, RECORDED, REFUSED = "pending", "recorded", "refused"  # usage_totals.status


@dataclass(frozen=True, slots=True)
class UsageTotal:
    id: int
    source: str
    subscription_id: str
    product_id: str
    usage_day: date
    quantity: int
    events: int


def record_id(total: UsageTotal) -> str:
    """The id billing knows a total by: the same on every attempt, unique per total."""
    return f"usage_total_{total.id}"


def _insert_ignoring_duplicates(conn: Connection) -> Insert:
    keys = ["source", "event_id"]
    if conn.dialect.name == "postgresql":
        return postgresql.insert(usage_events).on_conflict_do_nothing(index_elements=keys)
    return sqlite.insert(usage_events).on_conflict_do_nothing(index_elements=keys)


def append(conn: Connection, source: str, events: Sequence[MeterEvent],
           received_at: datetime) -> int:
    """Store meter events not stored before; returns how many were new."""
    if not events:
        return 0
    rows = [{"source": source, "event_id": e.id, "subscription_id": e.subscription_id,
             "product_id": e.product_id, "quantity": e.quantity, "occurred_at": e.occurred_at,
             "usage_day": e.occurred_at.date(), "received_at": received_at} for e in events]
    statement = _insert_ignoring_duplicates(conn).returning(usage_events.c.id)
    return len(conn.execute(statement, rows).all())


def aggregate(conn: Connection, through_day: date, at: datetime) -> tuple[int, int, int]:
    """Claim the events not yet counted with a usage day before `through_day` and total
    them; returns (run id, events claimed, totals written). The caller serialises runs."""
    run_id = int(conn.execute(insert(usage_runs).returning(usage_runs.c.id),
                              {"run_at": at, "through_day": through_day, "events": 0,
                               "totals": 0}).scalar_one())
    claimed = conn.execute(update(usage_events).where(
        usage_events.c.run_id.is_(None), usage_events.c.usage_day < through_day)
        .values(run_id=run_id)).rowcount
    e = usage_events.c
    grouped = select(literal(run_id, BigInteger), e.source, e.subscription_id, e.product_id,
                     e.usage_day, func.sum(e.quantity), func.count(), literal(PENDING)).where(
        e.run_id == run_id).group_by(e.source, e.subscription_id, e.product_id, e.usage_day)
    written = len(conn.execute(insert(usage_totals).from_select(
        ["run_id", "source", "subscription_id", "product_id", "usage_day", "quantity",
         "events", "status"], grouped).returning(usage_totals.c.id)).all())
    conn.execute(update(usage_runs).where(usage_runs.c.id == run_id)
                 .values(events=claimed, totals=written))
    return run_id, int(claimed), int(written)


def pending_totals(conn: Connection, limit: int) -> list[UsageTotal]:
    t = usage_totals.c
    rows = conn.execute(select(t.id, t.source, t.subscription_id, t.product_id, t.usage_day,
                               t.quantity, t.events).where(t.status == PENDING)
                        .order_by(t.id).limit(limit))
    return [UsageTotal(int(r.id), r.source, r.subscription_id, r.product_id, r.usage_day,
                       int(r.quantity), int(r.events)) for r in rows]


def mark(conn: Connection, total_id: int, status: str, at: datetime,
         error_code: str | None = None, error_detail: str | None = None) -> None:
    conn.execute(update(usage_totals).where(usage_totals.c.id == total_id).values(
        status=status, recorded_at=at, error_code=error_code,
        error_detail=storable_or_none(error_detail)))


def counts(conn: Connection) -> dict[str, int]:
    """Meter events stored and waiting to be totalled, and totals by status."""
    events = conn.execute(select(func.count()).select_from(usage_events)).scalar_one()
    waiting = conn.execute(select(func.count()).select_from(usage_events)
                           .where(usage_events.c.run_id.is_(None))).scalar_one()
    by_status = conn.execute(select(usage_totals.c.status, func.count())
                             .group_by(usage_totals.c.status))
    return {"events": int(events), "events_waiting": int(waiting),
            **{f"totals_{status}": int(n) for status, n in by_status}}
