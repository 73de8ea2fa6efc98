"""The external-call log: one row per call a connector made (`domain.call.Call`), and
one per delivery the call was made for (its correlation id and idempotency key).

Rules:
- Written by `CallLog.record`, in a transaction of its own right after the call: the
  delivery's outcome is recorded later and apart, and a call whose outcome is never
  recorded (a crash) is still in the log.
- A call that cannot be logged leaves the call's outcome as it was (the effect has happened
  or not, whatever the log does): the failure is logged at error level with the call's
  system, method and subjects, for the operator to see the gap in the evidence.
- Every text is cut to its column and made storable; excerpts arrive redacted.
- Looked up by correlation id, oldest first. Purged by age (`retention`), a bounded batch
  of calls per transaction, their subject rows with them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
)

from finsync.dbtypes import Serial, UtcDateTime
from finsync.domain.call import Call
from finsync.storage import arrays
from finsync.storage.db import reading, transaction
from finsync.storage.schema import metadata
from finsync.storage.text import storable, storable_or_none

log = logging.getLogger(__name__)

external_calls = Table(
    "external_calls", metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("started_at", UtcDateTime, nullable=False),
    Column("system", String(64), nullable=False),
    Column("channel", String(16), nullable=False),  # connectors.calls.Channel
    Column("method", String(255), nullable=False),
    Column("endpoint", String(1024), nullable=False),
    Column("status", String(32), nullable=False),
    Column("error", String(128)),
    Column("duration_us", BigInteger, nullable=False),
    Column("request_bytes", Integer),
    Column("response_bytes", Integer),
    Column("request_excerpt", Text),
    Column("response_excerpt", Text),
    Index("ix_external_calls_started_at", "started_at"),
)

external_call_subjects = Table(
    "external_call_subjects", metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("call_id", BigInteger, ForeignKey("external_calls.id"), nullable=False),
    Column("correlation_id", String(255), nullable=False),
    Column("idempotency_key", String(255)),
    Index("ix_external_call_subjects_correlation_id_call_id", "correlation_id", "call_id"),
    Index("ix_external_call_subjects_call_id", "call_id"),
)

PURGE_BATCH = 5000


@dataclass(frozen=True, slots=True)
class LoggedCall:
    """A call as the log holds it, with the idempotency keys it carried for the correlation
    asked about (a batch call carries several deliveries)."""

    id: int
    started_at: datetime
    system: str
    channel: str
    method: str
    endpoint: str
    status: str
    error: str | None
    duration_us: int
    request_bytes: int | None
    response_bytes: int | None
    request_excerpt: str | None
    response_excerpt: str | None
    correlation_id: str
    idempotency_keys: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "started_at": self.started_at.isoformat(),
                "system": self.system, "channel": self.channel, "method": self.method,
                "endpoint": self.endpoint, "status": self.status, "error": self.error,
                "duration_ms": self.duration_us / 1000,
                "correlation_id": self.correlation_id,
                "idempotency_keys": list(self.idempotency_keys),
                "request_bytes": self.request_bytes, "response_bytes": self.response_bytes,
                "request_excerpt": self.request_excerpt,
                "response_excerpt": self.response_excerpt}


def _cut(text: str, size: int) -> str:
    return storable(text)[:size]


def append(conn: Connection, call: Call) -> int:
    """Store one call and its subjects; returns its id."""
    row = {"started_at": call.started_at, "system": _cut(call.system, 64),
           "channel": call.channel.value, "method": _cut(call.method, 255),
           "endpoint": _cut(call.endpoint, 1024), "status": _cut(call.status, 32),
           "error": None if call.error is None else _cut(call.error, 128),
           "duration_us": call.duration_us, "request_bytes": call.request_bytes,
           "response_bytes": call.response_bytes,
           "request_excerpt": storable_or_none(call.request_excerpt),
           "response_excerpt": storable_or_none(call.response_excerpt)}
    call_id = int(conn.execute(insert(external_calls).returning(external_calls.c.id)
                               .values(row)).scalar_one())
    # One statement however many deliveries the call was made for (a batch's look-up names
    # hundreds): on PostgreSQL an executemany was 26 us a row.
    subjects = [(_cut(s.correlation_id, 255),
                 None if s.idempotency_key is None else _cut(s.idempotency_key, 255))
                for s in dict.fromkeys(call.subjects)]
    arrays.insert_rows(conn, external_call_subjects, ("correlation_id", "idempotency_key"),
                       subjects, {"call_id": call_id})
    return call_id


def for_correlation(conn: Connection, correlation_id: str) -> list[LoggedCall]:
    """Every call made for `correlation_id`, oldest first."""
    c, s = external_calls.c, external_call_subjects.c
    rows = conn.execute(
        select(external_calls, s.idempotency_key)
        .join(external_call_subjects, s.call_id == c.id)
        .where(s.correlation_id == correlation_id)
        .order_by(c.started_at, c.id, s.id)).mappings()
    found: dict[int, LoggedCall] = {}
    keys: dict[int, list[str]] = {}
    for row in rows:
        call_id = int(row["id"])
        keys.setdefault(call_id, [])
        if row["idempotency_key"] is not None and row["idempotency_key"] not in keys[call_id]:
            keys[call_id].append(str(row["idempotency_key"]))
        if call_id not in found:
            found[call_id] = _logged(row, correlation_id)
    return [replace(call, idempotency_keys=tuple(keys[call.id])) for call in found.values()]


def _logged(row: Any, correlation_id: str) -> LoggedCall:
    return LoggedCall(
        int(row["id"]), row["started_at"], row["system"], row["channel"], row["method"],
        row["endpoint"], row["status"], row["error"], int(row["duration_us"]),
        row["request_bytes"], row["response_bytes"], row["request_excerpt"],
        row["response_excerpt"], correlation_id, ())


def purge_before(conn: Connection, before: datetime, limit: int = PURGE_BATCH) -> int:
    """Delete up to `limit` calls started before `before`, with their subjects; returns
    how many calls."""
    ids = [int(i) for i in conn.execute(
        select(external_calls.c.id).where(external_calls.c.started_at < before)
        .order_by(external_calls.c.id).limit(limit)).scalars()]
    if not ids:
        return 0
    conn.execute(delete(external_call_subjects)
                 .where(external_call_subjects.c.call_id.in_(ids)))
    conn.execute(delete(external_calls).where(external_calls.c.id.in_(ids)))
    return len(ids)


class CallLog:
    """The hub's call log: the recorder connectors are given (it keeps the `CallRecorder`
    protocol of `connectors.calls`), its look-up and its purge."""

    def __init__(self, engine: Engine, retention: timedelta,
                 clock: Callable[[], datetime]) -> None:
        if retention <= timedelta(0):
            raise ValueError("the call log's retention must be positive")
        self._engine, self.retention, self._clock = engine, retention, clock

    def record(self, call: Call) -> None:
        try:
            with transaction(self._engine) as conn:
                append(conn, call)
        except Exception:
            log.exception("the call log could not record %s %s %s for %s: this call is "
                          "missing from the evidence", call.system, call.method, call.status,
                          _subjects(call))

    def for_correlation(self, correlation_id: str) -> list[LoggedCall]:
        with reading(self._engine) as conn:
            return for_correlation(conn, correlation_id)

    def purge(self) -> int:
        """Delete the calls older than the retention; returns how many."""
        before = self._clock() - self.retention
        purged = 0
        while True:
            with transaction(self._engine) as conn:
                done = purge_before(conn, before)
            purged += done
            if done < PURGE_BATCH:
                return purged


def _subjects(call: Call) -> str:
    correlations: Iterable[str] = dict.fromkeys(s.correlation_id for s in call.subjects)
    return ", ".join(correlations) or "no correlation"
