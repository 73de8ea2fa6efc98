"""Appending to the audit trail, inside the caller's transaction.

Rules:
- `append` runs in the transaction that makes the change it records: the change and its
  record commit together or not at all.
- Appends are serialised (one writer per database at a time: SQLite's write lock, a
  PostgreSQL advisory lock), so `seq` is dense and each record chains to the one before.
- Nothing updates or deletes a record; `verify` finds any row that was.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from finsync.audit.chain import GENESIS, Entry, canonical, record_hash, timestamp
from finsync.audit.tables import trail
from finsync.storage.db import serialize

LOCK = "audit_trail"
# Built once: the statements compile once and are cached, which is most of an append's cost
# otherwise (see bench/audit.py).
_HEAD = select(trail.c.seq, trail.c.hash).order_by(trail.c.seq.desc()).limit(1)
_INSERT = insert(trail)


def append(conn: Connection, entry: Entry, at: datetime) -> int:
    """Record `entry` at `at`; returns its sequence number."""
    serialize(conn, LOCK)
    head = conn.execute(_HEAD).first()
    seq, prev = (1, GENESIS) if head is None else (int(head.seq) + 1, str(head.hash))
    row: dict[str, Any] = {
        "seq": seq, "at": timestamp(at), "actor": entry.actor, "action": entry.action,
        "object_type": entry.object_type, "object_id": entry.object_id,
        "before": _json(entry.before), "after": _json(entry.after), "reason": entry.reason,
        "correlation_id": entry.correlation_id, "prev_hash": prev}
    conn.execute(_INSERT, {**row, "at": at, "hash": record_hash(row)})
    return seq


def _json(value: Any) -> str | None:
    return None if value is None else canonical(value)
