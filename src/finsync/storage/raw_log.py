"""The raw event log: every payload a source sent, stored before it is acknowledged."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, insert, select, update

from finsync.storage import jsonutil
from finsync.storage.schema import raw_events


@dataclass(frozen=True, slots=True)
class RawEvent:
    id: int
    source: str
    received_at: datetime
    headers: Mapping[str, str]
    body: bytes
    status: str


@dataclass(frozen=True, slots=True)
class RawIn:
    source: str
    body: bytes
    headers: Mapping[str, str]
    content_type: str | None = None


def append(conn: Connection, items: Sequence[RawIn], received_at: datetime) -> list[int]:
    """Insert raw events in one statement; returns their ids in order."""
    rows = [{"source": i.source, "received_at": received_at, "content_type": i.content_type,
             "headers": jsonutil.dumps(dict(i.headers)), "body": i.body, "status": "received"}
            for i in items]
    statement = insert(raw_events).returning(raw_events.c.id, sort_by_parameter_order=True)
    return [int(row[0]) for row in conn.execute(statement, rows)]


def pending(conn: Connection, limit: int) -> list[RawEvent]:
    rows = conn.execute(
        select(raw_events).where(raw_events.c.status == "received")
        .order_by(raw_events.c.id).limit(limit)
    ).mappings()
    return [RawEvent(r["id"], r["source"], r["received_at"], jsonutil.loads(r["headers"]),
                     r["body"], r["status"]) for r in rows]


def mark(conn: Connection, raw_id: int, status: str, at: datetime,
         error_code: str | None = None, error_detail: str | None = None) -> None:
    conn.execute(update(raw_events).where(raw_events.c.id == raw_id).values(
        status=status, processed_at=at, error_code=error_code, error_detail=error_detail))


def get(conn: Connection, raw_id: int) -> RawEvent | None:
    r = conn.execute(select(raw_events).where(raw_events.c.id == raw_id)).mappings().first()
    if r is None:
        return None
    return RawEvent(r["id"], r["source"], r["received_at"], jsonutil.loads(r["headers"]),
                    r["body"], r["status"])


def counts(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(raw_events.c.status, func.count()).group_by(raw_events.c.status))
    return {str(status): int(n) for status, n in rows}
