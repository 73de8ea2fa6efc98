"""The period-end cut-off: what occurred before a moment and is neither settled nor in the
exception queue. A period may close only when this list is empty."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, exists, select

from finsync.domain.status import UNRESOLVED, DeliveryStatus, EventStatus, RawStatus
from finsync.storage.schema import deliveries, events, exceptions, raw_events


def unsettled(conn: Connection, before: datetime, limit: int = 100) -> list[dict[str, Any]]:
    """Raw events not yet processed, events still parked, and deliveries of earlier events
    neither done nor held by an unresolved exception (a retrying one counts as held)."""
    raw = conn.execute(select(raw_events.c.id, raw_events.c.source).where(
        raw_events.c.status == RawStatus.RECEIVED).limit(limit))
    parked = conn.execute(select(events.c.event_id, events.c.type).where(
        events.c.status == EventStatus.PARKED, events.c.occurred_at < before).limit(limit))
    held = exists().where(exceptions.c.delivery_id == deliveries.c.id,
                          exceptions.c.status.in_(UNRESOLVED))
    open_deliveries = conn.execute(
        select(deliveries.c.id, deliveries.c.target, deliveries.c.status, events.c.event_id,
               events.c.type)
        .join(events, events.c.event_id == deliveries.c.event_id)
        .where(and_(events.c.occurred_at < before, deliveries.c.status != DeliveryStatus.DONE,
                    ~held))
        .order_by(deliveries.c.id).limit(limit))
    return ([{"kind": "raw_event_unprocessed", "raw_event_id": r.id, "source": r.source}
             for r in raw]
            + [{"kind": "event_parked", "event_id": r.event_id, "type": r.type} for r in parked]
            + [{"kind": "delivery_outstanding", "delivery_id": r.id, "target": r.target,
                "status": r.status, "event_id": r.event_id, "type": r.type}
               for r in open_deliveries])


def held(conn: Connection, before: datetime, limit: int = 100) -> list[dict[str, Any]]:
    """The unresolved exceptions that hold deliveries of events before a moment: they do
    not stop a close (finance sees them in the queue), but the close's checklist names
    them, with the money each puts at stake."""
    rows = conn.execute(
        select(exceptions.c.id, exceptions.c["class"], exceptions.c.status,
               exceptions.c.amount_minor, exceptions.c.currency, events.c.event_id,
               events.c.type)
        .join(deliveries, deliveries.c.id == exceptions.c.delivery_id)
        .join(events, events.c.event_id == deliveries.c.event_id)
        .where(and_(events.c.occurred_at < before, exceptions.c.status.in_(UNRESOLVED)))
        .order_by(exceptions.c.id).limit(limit)).mappings()
    return [{"kind": "exception_held", "exception_id": int(r["id"]), "class": r["class"],
             "status": r["status"], "amount_minor": r["amount_minor"],
             "currency": r["currency"], "event_id": r["event_id"], "type": r["type"]}
            for r in rows]
