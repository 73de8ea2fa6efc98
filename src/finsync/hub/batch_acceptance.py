"""Acceptance of a batch of raw events, a set at a time where nothing needs a decision.

Rules:
- A raw event is *plain* when each of its envelopes is a new event (no stored event holds
  its `(source, source_event_id)` nor its business key), sent by the owner of its domain,
  and either has no version or is the next version of its aggregate with no later version
  parked, and is no invoice held or released for tax (those open and resolve exceptions:
  `hub.held_invoice`), nor billing's contract event for a quote the hub ordered (checked
  against that order: `hub.version_check`). Plain raw events are accepted exactly as
  `Acceptance` would accept them (event row, cursor, deliveries, milestone, raw event
  `mapped`), but written one statement per table for the whole run of them.
- Every other raw event (a mapping error, a duplicate, a changed body, anything from a
  non-owner: an ownership violation or an echo of the owner's customer, `hub.ownership`;
  a gap, a version that releases parked ones) goes through `Acceptance`, alone in its
  savepoint, as before. What is pending is written first, so that it sees every
  earlier event of the batch; later events that share its source id, business key or
  aggregate go through `Acceptance` too.
- Look-ups are set-based, one statement each, made before any write (validate, then
  write). The batch's own plain events count as stored for the ones after them: a second
  copy of an event in the same batch is a duplicate, a second version is sequenced after
  the first.
- If a batch write still fails (a value the database refuses), the whole transaction fails
  and the processor does the batch again one raw event per transaction: a bad item fails
  alone, never its batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from finsync.domain.envelope import Envelope
from finsync.domain.events import InvoiceHeld, InvoiceReleased
from finsync.domain.status import EventStatus, RawStatus
from finsync.hub import version_check
from finsync.hub.acceptance import Acceptance, accepted_milestone, partition_key
from finsync.storage import cpq_log, event_log, milestone_log, outbox, raw_log
from finsync.storage.event_log import AggregateKey
from finsync.storage.outbox import NewDeliveries


@dataclass(slots=True)
class _Pending:
    """Plain raw events taken but not written yet."""

    raw_ids: list[int] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[NewDeliveries] = field(default_factory=list)
    cursors: dict[AggregateKey, int] = field(default_factory=dict)
    milestones: list[milestone_log.Milestone] = field(default_factory=list)


class BatchAcceptance:
    """One batch's plain raw events, in raw id order, inside the processor's transaction."""

    def __init__(self, acceptance: Acceptance, conn: Connection, at: datetime) -> None:
        self._acceptance, self._conn, self._at = acceptance, conn, at
        self._pending = _Pending()
        self.accepted: list[Envelope] = []  # every envelope taken, for the hand-over
        self._source_ids: set[tuple[str, str]] = set()
        self._keys: set[str] = set()
        self._state = event_log.AggregateState({}, set(), set())
        self._cursor_rows: set[AggregateKey] = set()  # aggregates whose cursor row exists
        self._ordered: set[str] = set()  # quote ids the hub ordered (`hub.version_check`)

    def look_up(self, envelopes: Sequence[Envelope]) -> None:
        """Read what the plain test needs about `envelopes` (the rest of the batch)."""
        conn = self._conn
        self._source_ids = event_log.known_source_ids(
            conn, {(e.source, e.source_event_id) for e in envelopes})
        self._keys = event_log.known_business_keys(
            conn, {e.business_key for e in envelopes if e.business_key is not None})
        self._state = event_log.aggregate_state(
            conn, {(e.aggregate.type, e.aggregate.id) for e in envelopes
                   if e.aggregate.version is not None})
        self._cursor_rows = set(self._state.applied)
        self._ordered = cpq_log.ordered_quotes(
            conn, {e.correlation_id for e in envelopes if version_check.acts_on(e.event)})

    def decided_alone(self, envelopes: Sequence[Envelope] | None) -> None:
        """A raw event went through `Acceptance`: what it may have stored or moved (its
        source ids, business keys and aggregates) is no longer plain for the rest of the
        batch, which `Acceptance` then decides too. Conservative, and no look-up again: a
        batch of many duplicates stays linear."""
        for env in envelopes or ():
            self._source_ids.add((env.source, env.source_event_id))
            if env.business_key is not None:
                self._keys.add(env.business_key)
            self._state.parked.add((env.aggregate.type, env.aggregate.id))

    def take(self, raw_id: int, envelopes: Sequence[Envelope]) -> bool:
        """Take a plain raw event into the pending writes; False (nothing taken) when it
        needs `Acceptance`."""
        versions: dict[AggregateKey, int] = {}
        source_ids: set[tuple[str, str]] = set()
        keys: set[str] = set()
        for env in envelopes:
            source_id = (env.source, env.source_event_id)
            if source_id in self._source_ids or source_id in source_ids:
                return False
            if self._acceptance.owner_of(env) != env.source:
                return False
            if isinstance(env.event, InvoiceHeld | InvoiceReleased):
                return False
            if env.correlation_id in self._ordered and version_check.acts_on(env.event):
                return False
            key = env.business_key
            if key is not None and (key in self._keys or key in keys):
                return False
            if env.aggregate.version is not None and not self._next(env, versions):
                return False
            source_ids.add(source_id)
            if key is not None:
                keys.add(key)
        try:  # an envelope that cannot be encoded is quarantined by `Acceptance`'s path
            rows = [event_log.event_row(env, raw_id, EventStatus.ACCEPTED, self._at)
                    for env in envelopes]
        except Exception:
            return False
        self._source_ids |= source_ids
        self._keys |= keys
        self._state.applied.update(versions)
        self._state.held.update(versions.items())
        for env, row in zip(envelopes, rows, strict=True):
            self._stage(env, row)
        self.accepted.extend(envelopes)
        self._pending.raw_ids.append(raw_id)
        return True

    def _next(self, env: Envelope, versions: dict[AggregateKey, int]) -> bool:
        """Whether `env` is the next version of its aggregate, with nothing parked after
        it; if so its version is noted in `versions`."""
        version = env.aggregate.version
        assert version is not None
        aggregate = (env.aggregate.type, env.aggregate.id)
        applied = versions.get(aggregate, self._state.applied.get(aggregate, 0))
        if version != applied + 1 or (aggregate, version) in self._state.held:
            return False
        if aggregate in self._state.parked:
            return False
        versions[aggregate] = version
        return True

    def _stage(self, env: Envelope, row: dict[str, Any]) -> None:
        """What `Acceptance._apply` writes for an accepted event, kept for `flush`."""
        pending = self._pending
        pending.events.append(row)
        if env.aggregate.version is not None:
            pending.cursors[(env.aggregate.type, env.aggregate.id)] = env.aggregate.version
        pending.deliveries.append(NewDeliveries(
            env.event_id, self._acceptance.settings.routes.get(env.type, ()),
            partition_key(env.aggregate), env.correlation_id))
        if (milestone := accepted_milestone(env.event)) is not None:
            pending.milestones.append((env.correlation_id, milestone, env.event_id, "hub"))

    def flush(self) -> None:
        """Write what is pending: one statement per table (deliveries after their events,
        in the order taken)."""
        pending, conn = self._pending, self._conn
        if not pending.raw_ids:
            return
        event_log.insert_events(conn, pending.events)
        event_log.advance_many(conn, pending.cursors, self._cursor_rows)
        self._cursor_rows |= set(pending.cursors)
        outbox.enqueue_many(conn, pending.deliveries, self._at)
        milestone_log.record_many(conn, pending.milestones, self._at)
        raw_log.mark_many(conn, pending.raw_ids, RawStatus.MAPPED, self._at)
        self._pending = _Pending()
