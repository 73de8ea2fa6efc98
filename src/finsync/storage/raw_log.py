"""The raw event log: every payload a source sent, stored before it is acknowledged.

Rules:
- A refused body is stored once per (source, body, refusal code): the same refused request
  again counts one more refusal on that row (`refusals`) instead of adding a copy. Its
  `body_sha256` finds it; only rows still `rejected` are counted on (a body mapped again by
  triage is no longer a refusal).
- Only the allowlisted headers are stored (`domain.headers`), whoever calls: a credential
  in a request header never reaches this table.
- What is not bounded by the HTTP server is bounded here: the content type is cut to its
  column, and a NUL (which PostgreSQL's text cannot hold) in an error detail is escaped.
- A raw event that came through the transport keeps its message id (`transport_id`,
  unique): `append_transported` stores a batch skipping the ids already stored (ON CONFLICT
  DO NOTHING), so a message handed over again stores nothing new. On PostgreSQL the batch
  is COPied into a session's staging table and moved in one `INSERT … SELECT` in the
  batch's order; on SQLite (in process, no round trips) it is one multi-row statement.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    Column,
    Connection,
    Integer,
    MetaData,
    Table,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import sqlite

from finsync import dbbulk
from finsync.domain.headers import stored_headers
from finsync.domain.status import RawStatus
from finsync.storage import jsonutil
from finsync.storage.schema import raw_events
from finsync.storage.text import error_text


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


CONTENT_TYPE_MAX = 128  # raw_events.content_type


def _row(item: RawIn, received_at: datetime) -> dict[str, object]:
    content_type = None if item.content_type is None else item.content_type[:CONTENT_TYPE_MAX]
    return {"source": item.source, "received_at": received_at, "content_type": content_type,
            "headers": jsonutil.dumps(stored_headers(item.headers)), "body": item.body,
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


def append_ids(conn: Connection, items: Sequence[RawIn], received_at: datetime) -> list[int]:
    """Insert raw events in one multi-row statement and return their ids in the order of
    `items` (group commit answers each request with its own id)."""
    if not items:
        return []
    statement = insert(raw_events).returning(raw_events.c.id, sort_by_parameter_order=True)
    result = conn.execute(statement, [_row(i, received_at) for i in items])
    return [int(i) for i in result.scalars()]


@dataclass(frozen=True, slots=True)
class Transported:
    """A raw event that came as a transport message: its id there, and when it was received
    (by the intake node)."""

    transport_id: str
    item: RawIn
    received_at: datetime


def append_transported(conn: Connection, items: Sequence[Transported]) -> dict[str, int]:
    """Insert the raw events whose `transport_id` is not stored yet; the new ones' ids by
    transport id (an id already stored is not there)."""
    if not items:
        return {}
    rows = [_row(t.item, t.received_at) | {"transport_id": t.transport_id} for t in items]
    if conn.dialect.name == "postgresql":
        return _copy_transported(conn, rows)
    statement = (sqlite.insert(raw_events)
                 .on_conflict_do_nothing(index_elements=[raw_events.c.transport_id])
                 .returning(raw_events.c.id, raw_events.c.transport_id))
    return {str(tid): int(i) for i, tid in conn.execute(statement, rows)}


_TRANSPORTED = ("transport_id", "source", "received_at", "content_type", "headers", "body",
                "status")
# PostgreSQL: the session's staging table for COPY, of raw_events' own column types (so
# each value is bound as an insert into raw_events would bind it), and the batch's order.
_STAGE = Table("raw_events_in", MetaData(), Column("ord", Integer),
               *(Column(name, raw_events.c[name].type) for name in _TRANSPORTED))


def _copy_transported(conn: Connection, rows: Sequence[Mapping[str, object]]) -> dict[str, int]:
    columns = ", ".join(_TRANSPORTED)
    conn.exec_driver_sql(
        f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE.name} ON COMMIT DELETE ROWS AS "
        f"SELECT 0 AS ord, {columns} FROM raw_events WITH NO DATA")
    dbbulk.insert_rows(conn, [dbbulk.Rows(_STAGE, ("ord", *_TRANSPORTED), [
        (n, *(row[name] for name in _TRANSPORTED)) for n, row in enumerate(rows)])])
    stored = conn.exec_driver_sql(
        f"INSERT INTO raw_events ({columns}) SELECT {columns} FROM {_STAGE.name} ORDER BY ord "
        "ON CONFLICT (transport_id) DO NOTHING RETURNING id, transport_id")
    ids = {str(tid): int(i) for i, tid in stored}
    conn.exec_driver_sql(f"DELETE FROM {_STAGE.name}")  # the transaction goes on
    return ids


def by_transport_ids(conn: Connection,
                     transport_ids: Sequence[str]) -> dict[str, tuple[int, RawStatus]]:
    """The raw events stored under these transport ids: id and status, by transport id."""
    if not transport_ids:
        return {}
    rows = conn.execute(select(raw_events.c.transport_id, raw_events.c.id, raw_events.c.status)
                        .where(raw_events.c.transport_id.in_(list(transport_ids))))
    return {str(tid): (int(i), RawStatus(status)) for tid, i, status in rows}


def any_pending(conn: Connection) -> bool:
    """Whether a raw event waits to be processed (one index probe, no row read)."""
    return conn.execute(select(raw_events.c.id).where(
        raw_events.c.status == RawStatus.RECEIVED).limit(1)).first() is not None


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
                         "b_detail": error_text(error_detail)})


def mark_many(conn: Connection, raw_ids: Sequence[int], status: RawStatus,
              at: datetime) -> None:
    """Mark raw events processed without error, in one statement."""
    if raw_ids:
        conn.execute(update(raw_events).where(raw_events.c.id.in_(list(raw_ids))).values(
            status=status, processed_at=at, error_code=None, error_detail=None))


def append_refused(conn: Connection, item: RawIn, at: datetime, error_code: str,
                   error_detail: str) -> int:
    """Keep a refused body once per (source, body, code) and count this refusal; returns the
    id of the raw event that holds it. The caller serialises refusals of one source, so two
    identical refusals at once cannot both insert."""
    digest = hashlib.sha256(item.body).hexdigest()
    found = conn.execute(select(raw_events.c.id).where(
        raw_events.c.source == item.source, raw_events.c.body_sha256 == digest,
        raw_events.c.error_code == error_code, raw_events.c.status == RawStatus.REJECTED)
        .order_by(raw_events.c.id).limit(1)).scalar()
    if found is not None:
        conn.execute(update(raw_events).where(raw_events.c.id == found).values(
            refusals=raw_events.c.refusals + 1, processed_at=at,
            error_detail=error_text(error_detail)))
        return int(found)
    row = _row(item, at) | {"status": RawStatus.REJECTED, "body_sha256": digest, "refusals": 1,
                            "error_code": error_code,
                            "error_detail": error_text(error_detail), "processed_at": at}
    return int(conn.execute(insert(raw_events).returning(raw_events.c.id), row).scalar_one())


SCRUB_BATCH = 1000


def scrub_headers(conn: Connection, batch: int = SCRUB_BATCH) -> int:
    """Rewrite the headers of raw events stored before the allowlist (`domain.headers`)
    through it, `batch` rows at a time in id order; returns how many rows changed. For a
    data migration: rows written since hold nothing else."""
    changed = 0
    after = 0
    while True:
        rows = conn.execute(select(raw_events.c.id, raw_events.c.headers)
                            .where(raw_events.c.id > after).order_by(raw_events.c.id)
                            .limit(batch)).all()
        if not rows:
            return changed
        updates = []
        for row_id, text in rows:
            kept = jsonutil.dumps(stored_headers(jsonutil.loads(text)))
            if kept != text:
                updates.append({"b_id": row_id, "b_headers": kept})
        if updates:
            conn.execute(update(raw_events).where(raw_events.c.id == bindparam("b_id"))
                         .values(headers=bindparam("b_headers")), updates)
            changed += len(updates)
        after = rows[-1][0]


def refused_ids(conn: Connection, source: str, error_code: str) -> list[int]:
    """The raw events of `source` still refused with `error_code`, oldest first (what an
    aggregated refusal exception stands for)."""
    rows = conn.execute(select(raw_events.c.id).where(
        raw_events.c.source == source, raw_events.c.error_code == error_code,
        raw_events.c.status == RawStatus.REJECTED, raw_events.c.refusals > 0)
        .order_by(raw_events.c.id))
    return [int(i) for (i,) in rows]


def get(conn: Connection, raw_id: int) -> RawEvent | None:
    r = conn.execute(select(raw_events).where(raw_events.c.id == raw_id)).mappings().first()
    if r is None:
        return None
    return RawEvent(r["id"], r["source"], r["received_at"], jsonutil.loads(r["headers"]),
                    r["body"], RawStatus(r["status"]))


def existing(conn: Connection, raw_ids: Collection[int]) -> set[int]:
    """Which of these raw event ids the log holds (one statement, no bodies read)."""
    if not raw_ids:
        return set()
    return {int(i) for i in conn.execute(select(raw_events.c.id).where(
        raw_events.c.id.in_(sorted(set(raw_ids))))).scalars()}


def get_many(conn: Connection, raw_ids: Collection[int]) -> dict[int, RawEvent]:
    """The raw events of these ids that exist, by id (one statement)."""
    if not raw_ids:
        return {}
    rows = conn.execute(select(raw_events).where(raw_events.c.id.in_(sorted(set(raw_ids)))))
    return {int(r["id"]): RawEvent(r["id"], r["source"], r["received_at"],
                                   jsonutil.loads(r["headers"]), r["body"],
                                   RawStatus(r["status"]))
            for r in rows.mappings()}


def counts(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(raw_events.c.status, func.count()).group_by(raw_events.c.status))
    return {str(status): int(n) for status, n in rows}
