"""The raw event log: every payload a source sent, stored before it is acknowledged."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, func, insert, select, update

from finsync.domain.status import RawStatus
from finsync.storage import jsonutil
from finsync.storage.schema import raw_events


@dataclass(frozen=True, slots=True)
class RawEvent:
    id: int
    source: str
    received_at: datetime
    headers: Mapping[str, str]
    body: bytes
    status: RawStatus


@dataclass(frozen=True, slots=True)
class RawIn:
    source: str
    body: bytes
    headers: Mapping[str, str]
    content_type: str | None = None


def _row(item: RawIn, received_at: datetime) -> dict[str, object]:
    return {"source": item.source, "received_at": received_at, "content_type": item.content_type,
            "headers": jsonutil.dumps(dict(item.headers)), "body": item.body,
            "status": RawStatus.RECEIVED}


def append(conn: Connection, items: Sequence[RawIn], received_at: datetime) -> int:
    """Insert raw events with one executemany; returns how many.

    No ids come back: asking for them in order makes SQLite insert row by row and roughly
    halves PostgreSQL's rate (see bench/). Processing reads them back in id order.
    """
    if items:
        conn.execute(insert(raw_events), [_row(i, received_at) for i in items])
    return len(items)


def append_one(conn: Connection, item: RawIn, received_at: datetime) -> int:
    """Insert one raw event and return its id (the API answers with it)."""
    result = conn.execute(insert(raw_events).returning(raw_events.c.id), _row(item, received_at))
    return int(result.scalar_one())


def pending(conn: Connection, limit: int) -> list[RawEvent]:
    rows = conn.execute(
        select(raw_events).where(raw_events.c.status == RawStatus.RECEIVED)
        .order_by(raw_events.c.id).limit(limit)
    ).mappings()
    return [RawEvent(r["id"], r["source"], r["received_at"], jsonutil.loads(r["headers"]),
                     r["body"], RawStatus(r["status"])) for r in rows]


_MARK = update(raw_events).where(raw_events.c.id == bindparam("b_id")).values(
    status=bindparam("b_status"), processed_at=bindparam("b_at"),
    error_code=bindparam("b_code"), error_detail=bindparam("b_detail"))


def mark(conn: Connection, raw_id: int, status: RawStatus, at: datetime,
         error_code: str | None = None, error_detail: str | None = None) -> None:
    conn.execute(_MARK, {"b_id": raw_id, "b_status": status, "b_at": at, "b_code": error_code,
                         "b_detail": error_detail})


def get(conn: Connection, raw_id: int) -> RawEvent | None:
    r = conn.execute(select(raw_events).where(raw_events.c.id == raw_id)).mappings().first()
    if r is None:
        return None
    return RawEvent(r["id"], r["source"], r["received_at"], jsonutil.loads(r["headers"]),
                    r["body"], RawStatus(r["status"]))


def counts(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(raw_events.c.status, func.count()).group_by(raw_events.c.status))
    return {str(status): int(n) for status, n in rows}
