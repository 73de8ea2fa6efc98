"""Business milestones per correlation id (contract accepted, invoice posted, …)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select

from finsync.storage.schema import milestones

_FIND = select(milestones.c.id).where(
    milestones.c.correlation_id == bindparam("correlation_id"),
    milestones.c.name == bindparam("name"), milestones.c.event_id == bindparam("event_id"),
    milestones.c.target == bindparam("target"))
_INSERT = insert(milestones)


def record(conn: Connection, correlation_id: str, name: str, event_id: str, target: str,
           at: datetime) -> None:
    """Record a milestone once; recording it again (a replay) changes nothing."""
    key = {"correlation_id": correlation_id, "name": name, "event_id": event_id,
           "target": target}
    if conn.execute(_FIND, key).first() is None:
        conn.execute(_INSERT, {**key, "recorded_at": at})


Milestone = tuple[str, str, str, str]  # (correlation id, name, event id, target)


def record_many(conn: Connection, wanted: Sequence[Milestone], at: datetime) -> None:
    """`record` for many: one look-up by correlation id, one executemany of the new ones."""
    if not wanted:
        return
    found = conn.execute(select(milestones.c.correlation_id, milestones.c.name,
                                milestones.c.event_id, milestones.c.target).where(
        milestones.c.correlation_id.in_(sorted({m[0] for m in wanted}))))
    have = {(str(c), str(n), str(e), str(t)) for c, n, e, t in found}
    rows = [{"correlation_id": c, "name": n, "event_id": e, "target": t, "recorded_at": at}
            for c, n, e, t in dict.fromkeys(wanted) if (c, n, e, t) not in have]
    if rows:
        conn.execute(_INSERT, rows)


def timeline(conn: Connection, correlation_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(select(milestones).where(milestones.c.correlation_id == correlation_id)
                        .order_by(milestones.c.recorded_at, milestones.c.id)).mappings()
    return [dict(r) for r in rows]
