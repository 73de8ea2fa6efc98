"""The event envelope every message travels in (DESIGN §2).

Rules:
- A source builds a `DraftEnvelope`: the typed event, where it comes from and its lineage.
  The hub stamps it into an `Envelope` when the raw event is stored: `received_at` is the
  time of storage and `event_id` derives from `(source, source_event_id)`, so a re-sent
  event keeps its id whatever the sender says.
- `correlation_id` names the commercial change that started it all; `causation_id` the event
  that caused this one.
- `business_key` is the owner's idempotency key for the business fact (two events with the
  same key are one fact); it is not the delivery key (`event_id:target`) that targets see.
- `aggregate.version` orders the events of one aggregate; a document issued once is
  version 1. The aggregate must be the event's own document (`check_aggregate`).
- Timestamps are UTC-aware.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from finsync.domain.aggregate import AggregateRef
from finsync.domain.clock import require_utc
from finsync.domain.events import AnyEvent, EventType
from finsync.domain.ids import event_id_for


@dataclass(frozen=True, slots=True)
class DraftEnvelope:
    """An event as its source tells it, before the hub has stored it."""

    event: AnyEvent
    source: str
    source_event_id: str
    occurred_at: datetime
    correlation_id: str
    causation_id: str | None = None
    business_key: str | None = None
    # Defaults to the event's own aggregate (version 1 for documents issued once).
    aggregate: AggregateRef | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "occurred_at", require_utc(self.occurred_at))
        if self.aggregate is None:
            own = self.event.aggregate()
            object.__setattr__(self, "aggregate",
                               AggregateRef(own.type, own.id, own.version or 1))
        self.event.check_aggregate(self.claimed)

    @property
    def claimed(self) -> AggregateRef:
        assert self.aggregate is not None  # set in __post_init__
        return self.aggregate

    def stamp(self, received_at: datetime) -> Envelope:
        """The envelope the hub keeps: received now, with the id its source gives it."""
        return Envelope(self.event, self.source, self.source_event_id, self.occurred_at,
                        received_at, self.correlation_id, self.claimed, self.causation_id,
                        self.business_key)


@dataclass(frozen=True, slots=True)
class Envelope:
    event: AnyEvent
    source: str
    source_event_id: str
    occurred_at: datetime
    received_at: datetime
    correlation_id: str
    aggregate: AggregateRef
    causation_id: str | None = None
    business_key: str | None = None
    event_id: str = field(default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "occurred_at", require_utc(self.occurred_at))
        object.__setattr__(self, "received_at", require_utc(self.received_at))
        if not self.event_id:
            object.__setattr__(self, "event_id", event_id_for(self.source, self.source_event_id))

    @property
    def type(self) -> EventType:
        return self.event.name

    @property
    def schema_version(self) -> int:
        return self.event.schema_version()
