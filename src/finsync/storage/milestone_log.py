"""Business milestones per correlation id (contract accepted, invoice posted, …)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select

from finsync.storage import arrays
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
    """`record` for many, in one statement: a milestone recorded already (its unique key)
    is left as it is (`storage.arrays`)."""
    arrays.insert_rows(conn, milestones, ("correlation_id", "name", "event_id", "target"),
                       list(dict.fromkeys(wanted)), {"recorded_at": at}, skip_existing=True)


def timeline(conn: Connection, correlation_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(select(milestones).where(milestones.c.correlation_id == correlation_id)
                        .order_by(milestones.c.recorded_at, milestones.c.id)).mappings()
    return [dict(r) for r in rows]
