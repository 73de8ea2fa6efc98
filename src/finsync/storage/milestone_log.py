"""Business milestones per correlation id (contract accepted, invoice posted, …)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from finsync.storage.schema import milestones


def record(conn: Connection, correlation_id: str, name: str, event_id: str, target: str,
           at: datetime) -> None:
    exists = conn.execute(select(milestones.c.id).where(
        milestones.c.correlation_id == correlation_id, milestones.c.name == name,
        milestones.c.event_id == event_id, milestones.c.target == target)).first()
    if exists is None:
        conn.execute(insert(milestones).values(correlation_id=correlation_id, name=name,
                                               event_id=event_id, target=target, recorded_at=at))


def timeline(conn: Connection, correlation_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(select(milestones).where(milestones.c.correlation_id == correlation_id)
                        .order_by(milestones.c.recorded_at, milestones.c.id)).mappings()
    return [dict(r) for r in rows]
