"""What the events-out relay (`streaming.events_out`) reads and records: its cursors in the
event log and the milestone log, the events it passed before they were accepted, and the
PostgreSQL transactions still writing, which tell a gap that may still fill from one that
never will.

Rules:
- A cursor moves only from where its relay read it (`advance` compares and sets): a relay
  that lost its lease and woke up late cannot move it back, nor past what the new one did.
- An event the relay passed unaccepted waits while it may still be accepted: parked or
  overdue (a missing version may arrive), or rejected as a changed body whose
  `duplicate_event` finance has not settled (choosing it makes it accepted).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, text, update

from finsync.domain.status import UNRESOLVED, EventStatus
from finsync.storage.schema import events, exceptions, milestones, relay_cursors, relay_waiting

MAY_STILL_BE_ACCEPTED = (EventStatus.PARKED, EventStatus.OVERDUE)
# The fingerprint of the `duplicate_event` that holds a changed body (`hub.acceptance`) is
# this prefix and the held event's id; its `event_id` is the stored event's.
_CHOICE = "duplicate_event:"


class Log(StrEnum):
    """The logs a relay follows: the event log by position, the milestone log by id."""

    EVENTS = "events"
    MILESTONES = "milestones"


@dataclass(frozen=True, slots=True)
class EventRow:
    """An event as the relay publishes it: its stored columns, the payload still as text."""

    position: int
    event_id: str
    type: str
    schema_version: int
    source: str
    source_event_id: str
    business_key: str | None
    occurred_at: datetime
    received_at: datetime
    correlation_id: str
    causation_id: str | None
    aggregate_type: str
    aggregate_id: str
    aggregate_version: int | None
    payload: str
    status: EventStatus


@dataclass(frozen=True, slots=True)
class MilestoneRow:
    id: int
    correlation_id: str
    name: str
    event_id: str
    target: str
    recorded_at: datetime


_EVENT_COLUMNS = (events.c.position, events.c.event_id, events.c.type, events.c.schema_version,
                  events.c.source, events.c.source_event_id, events.c.business_key,
                  events.c.occurred_at, events.c.received_at, events.c.correlation_id,
                  events.c.causation_id, events.c.aggregate_type, events.c.aggregate_id,
                  events.c.aggregate_version, events.c.payload, events.c.status)


def _event(row: Any) -> EventRow:
    return EventRow(int(row.position), row.event_id, row.type, int(row.schema_version),
                    row.source, row.source_event_id, row.business_key, row.occurred_at,
                    row.received_at, row.correlation_id, row.causation_id, row.aggregate_type,
                    row.aggregate_id, row.aggregate_version, row.payload,
                    EventStatus(row.status))


def cursor(conn: Connection, relay: str, log: Log) -> int:
    """Where `relay` has got to in `log`; 0 before it started."""
    found = conn.execute(select(relay_cursors.c.position).where(
        relay_cursors.c.relay == relay, relay_cursors.c.log == log)).scalar_one_or_none()
    return 0 if found is None else int(found)


def start(conn: Connection, relay: str, at: datetime) -> None:
    """Give `relay` its cursors at 0 where it has none (run in a transaction of its own: two
    relays starting together may both try; the loser's insert fails and it retries)."""
    have = set(conn.execute(select(relay_cursors.c.log).where(relay_cursors.c.relay == relay))
               .scalars())
    missing = [{"relay": relay, "log": log.value, "position": 0, "updated_at": at}
               for log in Log if log.value not in have]
    if missing:
        conn.execute(insert(relay_cursors), missing)


def advance(conn: Connection, relay: str, log: Log, read: int, to: int, at: datetime) -> bool:
    """Move `relay`'s cursor in `log` from `read` to `to`; False (nothing written) when it is
    no longer at `read`: another relay moved it."""
    moved = conn.execute(update(relay_cursors).where(
        relay_cursors.c.relay == relay, relay_cursors.c.log == log,
        relay_cursors.c.position == read).values(position=to, updated_at=at))
    return bool(moved.rowcount)


def events_after(conn: Connection, position: int, limit: int) -> list[EventRow]:
    rows = conn.execute(select(*_EVENT_COLUMNS).where(events.c.position > position)
                        .order_by(events.c.position).limit(limit))
    return [_event(r) for r in rows]


def events_at(conn: Connection, positions: Collection[int]) -> list[EventRow]:
    if not positions:
        return []
    rows = conn.execute(select(*_EVENT_COLUMNS).where(events.c.position.in_(sorted(positions)))
                        .order_by(events.c.position))
    return [_event(r) for r in rows]


def milestones_after(conn: Connection, last_id: int, limit: int) -> list[MilestoneRow]:
    rows = conn.execute(select(milestones).where(milestones.c.id > last_id)
                        .order_by(milestones.c.id).limit(limit))
    return [MilestoneRow(int(r.id), r.correlation_id, r.name, r.event_id, r.target,
                         r.recorded_at) for r in rows]


def waiting(conn: Connection, relay: str) -> list[int]:
    """The positions of the events `relay` passed unaccepted and still waits for."""
    return [int(p) for p in conn.execute(
        select(relay_waiting.c.position).where(relay_waiting.c.relay == relay)
        .order_by(relay_waiting.c.position)).scalars()]


def wait_for(conn: Connection, relay: str, positions: Sequence[int], at: datetime) -> None:
    if positions:
        conn.execute(insert(relay_waiting),
                     [{"relay": relay, "position": p, "since": at} for p in positions])


def stop_waiting(conn: Connection, relay: str, positions: Collection[int]) -> None:
    if positions:
        conn.execute(relay_waiting.delete().where(relay_waiting.c.relay == relay,
                                                  relay_waiting.c.position.in_(sorted(positions))))


def may_still_be_accepted(conn: Connection, rows: Sequence[EventRow]) -> set[int]:
    """The positions of `rows` (none accepted) that may yet become accepted (module rules)."""
    kept = {r.position for r in rows if r.status in MAY_STILL_BE_ACCEPTED}
    rejected = {f"{_CHOICE}{r.event_id}": r.position for r in rows
                if r.status == EventStatus.REJECTED}
    if rejected:
        open_choices = conn.execute(select(exceptions.c.fingerprint).where(
            exceptions.c.fingerprint.in_(sorted(rejected)),
            exceptions.c.status.in_(UNRESOLVED))).scalars()
        kept.update(rejected[f] for f in open_choices)
    return kept


def replaced(conn: Connection, event_ids: Collection[str]) -> dict[str, str]:
    """For each of `event_ids` that finance chose over a stored event (a `duplicate_event`
    resolved with the received body), the id of the event it replaces."""
    if not event_ids:
        return {}
    names = {f"{_CHOICE}{e}": e for e in event_ids}
    rows = conn.execute(select(exceptions.c.fingerprint, exceptions.c.event_id).where(
        exceptions.c.fingerprint.in_(sorted(names)), exceptions.c.event_id.is_not(None)))
    return {names[f]: str(stored) for f, stored in rows}


def waiting_for_earlier(conn: Connection, rows: Sequence[EventRow], end: int) -> set[int]:
    """The positions of `rows` (accepted) that must wait for an accepted lower version of
    their aggregate lying beyond `end` (not read yet), to keep version order."""
    versioned = [r for r in rows if r.aggregate_version is not None]
    if not versioned:
        return set()
    lowest = {(str(t), str(i)): int(v) for t, i, v in conn.execute(
        select(events.c.aggregate_type, events.c.aggregate_id,
               func.min(events.c.aggregate_version))
        .where(events.c.aggregate_id.in_(sorted({r.aggregate_id for r in versioned})),
               events.c.aggregate_type.in_(sorted({r.aggregate_type for r in versioned})),
               events.c.position > end, events.c.status == EventStatus.ACCEPTED,
               events.c.aggregate_version.is_not(None))
        .group_by(events.c.aggregate_type, events.c.aggregate_id))}
    return {r.position for r in versioned
            if (found := lowest.get((r.aggregate_type, r.aggregate_id))) is not None
            and found < (r.aggregate_version or 0)}


def accepted_behind(conn: Connection, relay: str) -> int:
    """How far `relay` is behind: the accepted events beyond its event cursor and those it
    waits for that are accepted now, plus the milestones beyond its milestone cursor."""
    event_cursor = cursor(conn, relay, Log.EVENTS)
    milestone_cursor = cursor(conn, relay, Log.MILESTONES)
    beyond = conn.execute(select(func.count()).select_from(events).where(and_(
        events.c.position > event_cursor, events.c.status == EventStatus.ACCEPTED))).scalar_one()
    released = conn.execute(select(func.count()).select_from(relay_waiting.join(
        events, events.c.position == relay_waiting.c.position)).where(
        relay_waiting.c.relay == relay, events.c.status == EventStatus.ACCEPTED)).scalar_one()
    marks = conn.execute(select(func.count()).select_from(milestones).where(
        milestones.c.id > milestone_cursor)).scalar_one()
    return int(beyond) + int(released) + int(marks)


def running_writers(conn: Connection) -> frozenset[int] | None:
    """The transaction ids of this database's sessions that have written and not ended
    (PostgreSQL; sessions of the same role, or all with `pg_read_all_stats`). None on
    SQLite, whose writers take turns: a gap a reader sees there never fills."""
    if conn.dialect.name != "postgresql":
        return None
    return frozenset(int(x) for x in conn.execute(text(
        "SELECT backend_xid::text::bigint FROM pg_stat_activity "
        "WHERE datname = current_database() AND backend_xid IS NOT NULL")).scalars())
