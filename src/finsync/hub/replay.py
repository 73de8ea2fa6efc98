"""Replay: re-drive deliveries from the event log.

Selected events get their deliveries sent again under their original idempotency keys (and
any delivery a newer route now asks for). Targets answer a known key with their first
receipt, so where an effect already exists nothing changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from finsync.domain.events import EventType
from finsync.hub.acceptance import partition_key
from finsync.hub.settings import HubSettings
from finsync.storage import event_log, outbox


@dataclass(frozen=True, slots=True)
class ReplayFilter:
    correlation_id: str | None = None
    aggregate: tuple[str, str] | None = None  # (type, id)
    since: datetime | None = None
    until: datetime | None = None
    everything: bool = False

    @property
    def is_empty(self) -> bool:
        return not self.everything and self.correlation_id is None and \
            self.aggregate is None and self.since is None and self.until is None


@dataclass(frozen=True, slots=True)
class ReplayResult:
    events: int
    requeued: int
    added: int


def replay(conn: Connection, settings: HubSettings, selection: ReplayFilter,
           at: datetime) -> ReplayResult:
    ids = event_log.select_ids(conn, correlation_id=selection.correlation_id,
                               aggregate=selection.aggregate, since=selection.since,
                               until=selection.until)
    added = 0
    for event_id in ids:
        found = event_log.routing(conn, event_id)
        assert found is not None  # selected from the log a moment ago, in this transaction
        event_type, correlation_id, aggregate = found
        added += outbox.enqueue(conn, event_id, settings.routes.get(EventType(event_type), ()),
                                partition_key(aggregate), correlation_id, at)
    requeued = outbox.requeue(conn, ids, at)
    return ReplayResult(len(ids), requeued - added, added)
