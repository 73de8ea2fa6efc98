"""Replay: re-drive deliveries from the event log.

Selected events get their deliveries sent again under their original idempotency keys (and
any delivery a newer route now asks for). Targets answer a known key with their first
receipt, so where an effect already exists nothing changes.

Rules:
- The log streams in pages of `batch_size` log positions (keyset pagination on the
  position: a range, see `event_log.routed_page`), each page one transaction: memory and
  each transaction stay bounded however long the log, and a page costs the same wherever
  it starts.
- A replay takes the events selected when it starts (up to the last log position then);
  events accepted meanwhile are not part of it.
- Per page: one read of the events' routing (no payload), one read of the delivery keys
  they have, the missing deliveries enqueued, one update that sends them all again.
- A replay stopped half-way has re-sent the pages it committed; running it again is
  harmless (keys stay, targets dedupe).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine

from finsync.audit import trail
from finsync.audit.chain import Entry
from finsync.domain.events import EventType
from finsync.domain.ids import delivery_key
from finsync.hub.acceptance import partition_key
from finsync.hub.settings import HubSettings
from finsync.storage import event_log, outbox
from finsync.storage.db import reading, transaction

BATCH_SIZE = 1000  # events per page (and per transaction)
Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True, slots=True)
class ReplayFilter:
    correlation_id: str | None = None
    aggregate: tuple[str, str] | None = None  # (type, id)
    since: datetime | None = None
    until: datetime | None = None
    everything: bool = False
    event_type: EventType | None = None  # narrows the others (alone: every event of it)

    def describe(self) -> str:
        """The selection as the audit trail names it, e.g. `correlation_id=amd_1`."""
        parts = []
        if self.everything:
            parts.append("all")
        if self.correlation_id is not None:
            parts.append(f"correlation_id={self.correlation_id}")
        if self.aggregate is not None:
            parts.append(f"aggregate={self.aggregate[0]}:{self.aggregate[1]}")
        if self.since is not None:
            parts.append(f"since={self.since.isoformat()}")
        if self.until is not None:
            parts.append(f"until={self.until.isoformat()}")
        if self.event_type is not None:
            parts.append(f"type={self.event_type.value}")
        return " ".join(parts)[:255]

    @property
    def is_empty(self) -> bool:
        return not self.everything and self.correlation_id is None and \
            self.aggregate is None and self.since is None and self.until is None and \
            self.event_type is None


@dataclass(frozen=True, slots=True)
class ReplayResult:
    events: int
    requeued: int
    added: int


def replay(engine: Engine, settings: HubSettings, selection: ReplayFilter, at: datetime, *,
           batch_size: int = BATCH_SIZE, progress: Progress | None = None,
           actor: str | None = None, reason: str = "") -> ReplayResult:
    """With `actor` (a person's replay), each page's transaction appends a `replay.run`
    record to the audit trail: the selection, the stretch of the log and what it sent."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, not {batch_size}")
    chosen = event_log.Selection(selection.correlation_id, selection.aggregate,
                                 selection.since, selection.until, selection.event_type)
    with reading(engine) as conn:
        total, first, last = event_log.extent(conn, chosen)
    events = requeued = added = 0
    after = first - 1  # a narrow selection walks only the stretch of the log it spans
    while after < last:
        upto = min(after + batch_size, last)
        with transaction(engine) as conn:
            page = event_log.routed_page(conn, chosen, after, upto)
            page_added = _enqueue_missing(conn, settings, page, at)
            page_sent = outbox.requeue(conn, [e.event_id for e in page], at)
            if actor is not None and page:
                trail.append(conn, Entry(
                    actor, "replay.run", "replay", selection.describe(), reason,
                    after={"positions": [after + 1, upto], "events": len(page),
                           "requeued": page_sent - page_added, "added": page_added}), at)
        after = upto
        if not page:
            continue  # a stretch of the log outside the selection (or rejected since)
        events += len(page)
        added += page_added
        requeued += page_sent - page_added
        if progress:
            progress("replay", events, max(total, events))
    return ReplayResult(events, requeued, added)


def _enqueue_missing(conn: Connection, settings: HubSettings, page: Sequence[event_log.Routed],
                     at: datetime) -> int:
    """Add the deliveries the routes ask for that the page's events do not have yet."""
    wanted = {delivery_key(e.event_id, target): e for e in page
              for target in settings.routes.get(EventType(e.type), ())}
    have = outbox.known_keys(conn, wanted)
    lacking = dict.fromkeys(e for key, e in wanted.items() if key not in have)
    return sum(outbox.enqueue(conn, e.event_id, settings.routes.get(EventType(e.type), ()),
                              partition_key(e.aggregate), e.correlation_id, at)
               for e in lacking)
