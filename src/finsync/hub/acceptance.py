"""Acceptance: de-duplicate, sequence and route each canonical event, in one transaction
with its outbox rows.

Rules:
- A duplicate is the same `(source, source_event_id)`, the same business key (from the
  domain's owner), or the same aggregate version with the same payload. It is
  counted, never applied.
- The same aggregate version with a *different* payload is a `sequencing_error`.
- Only the system that owns an event's domain may change it; otherwise `ownership_violation`.
- Events of one aggregate apply in version order. A gap parks the later versions; once the
  wait is over (`gap_wait_s`) each parked event opens a `sequencing_error` and keeps waiting,
  and the exception closes by itself when the gap fills.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import Connection

from finsync.domain.aggregate import AggregateRef
from finsync.domain.envelope import Envelope
from finsync.domain.errors import ExceptionClass
from finsync.domain.events import (
    ContractAmended,
    ContractCancelled,
    ContractCreated,
    ContractRenewed,
)
from finsync.domain.status import EventStatus
from finsync.hub.milestone import Milestone
from finsync.hub.settings import HubSettings
from finsync.storage import event_log, exception_log, milestone_log, outbox
from finsync.storage.exception_log import NewException

_CONTRACT_EVENTS = (ContractCreated, ContractAmended, ContractRenewed, ContractCancelled)


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    PARKED = "parked"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Acceptance:
    settings: HubSettings

    def accept(self, conn: Connection, env: Envelope, raw_id: int | None,
               at: datetime) -> Outcome:
        # Order matters: a redelivered event is a duplicate whoever sent it; a non-owner
        # reusing an owner's business key is a violation, not a duplicate.
        if (same := event_log.find_by_source_id(conn, env)) is not None:
            event_log.record_duplicate(conn, env, raw_id, same, "source_event_id", at)
            return Outcome.DUPLICATE
        if (owner := self.owner_of(env)) != env.source:
            self._reject(conn, env, raw_id, at, ExceptionClass.OWNERSHIP_VIOLATION,
                         f"{env.source} sent {env.type}, but {owner} owns that domain")
            return Outcome.REJECTED
        if (same := event_log.find_by_business_key(conn, env)) is not None:
            event_log.record_duplicate(conn, env, raw_id, same, "business_key", at)
            return Outcome.DUPLICATE
        if env.aggregate.version is None:
            self._apply(conn, env, raw_id, at)
            return Outcome.ACCEPTED
        return self._sequence(conn, env, raw_id, at)

    def owner_of(self, env: Envelope) -> str | None:
        return self.settings.ownership.get(env.event.domain)

    def _sequence(self, conn: Connection, env: Envelope, raw_id: int | None,
                  at: datetime) -> Outcome:
        version = env.aggregate.version
        assert version is not None
        held = event_log.find_version(conn, env)
        if held is not None:
            if held[1] == event_log.event_hash(env):
                event_log.record_duplicate(conn, env, raw_id, held[0], "aggregate_version", at)
                return Outcome.DUPLICATE
            self._reject(conn, env, raw_id, at, ExceptionClass.SEQUENCING_ERROR,
                         f"version {version} of {env.aggregate.id} already holds another payload")
            return Outcome.REJECTED
        applied = event_log.applied_version(conn, env.aggregate.type, env.aggregate.id)
        if version <= applied:
            self._reject(conn, env, raw_id, at, ExceptionClass.SEQUENCING_ERROR,
                         f"version {version} of {env.aggregate.id} is older than applied "
                         f"version {applied}")
            return Outcome.REJECTED
        if version > applied + 1:
            event_log.insert_event(conn, env, raw_id, EventStatus.PARKED, at)
            return Outcome.PARKED
        self._apply(conn, env, raw_id, at)
        self._release_parked(conn, env, at)
        return Outcome.ACCEPTED

    def _apply(self, conn: Connection, env: Envelope, raw_id: int | None, at: datetime,
               *, stored: bool = False) -> None:
        if stored:
            event_log.set_status(conn, env.event_id, EventStatus.ACCEPTED, at)
        else:
            event_log.insert_event(conn, env, raw_id, EventStatus.ACCEPTED, at)
        if env.aggregate.version is not None:
            event_log.advance(conn, env.aggregate.type, env.aggregate.id, env.aggregate.version)
        outbox.enqueue(conn, env.event_id, self.settings.routes.get(env.type, ()),
                       partition_key(env.aggregate), env.correlation_id, at)
        if isinstance(env.event, _CONTRACT_EVENTS):
            milestone_log.record(conn, env.correlation_id, Milestone.CONTRACT_ACCEPTED,
                                 env.event_id, "hub", at)

    def _release_parked(self, conn: Connection, env: Envelope, at: datetime) -> None:
        version = env.aggregate.version
        assert version is not None
        while (nxt := event_log.parked_next(conn, env.aggregate.type, env.aggregate.id,
                                            version + 1)) is not None:
            self._apply(conn, nxt, None, at, stored=True)
            exception_log.resolve_by_fingerprint(
                conn, _gap_fingerprint(nxt), "gap filled: applied in version order", at)
            version += 1

    def _reject(self, conn: Connection, env: Envelope, raw_id: int | None, at: datetime,
                exception_class: ExceptionClass, summary: str) -> None:
        # Kept for the record, but without the business key it has no right to hold.
        event_log.insert_event(conn, env, raw_id, EventStatus.REJECTED, at,
                               keep_business_key=False)
        exception_log.open_exception(conn, NewException(
            exception_class, f"{exception_class.value}:{env.event_id}", summary,
            correlation_id=env.correlation_id,
            objects=(f"{env.aggregate.type}:{env.aggregate.id}", f"event:{env.event_id}"),
            event_id=env.event_id, raw_event_id=raw_id), at)

    def flag_overdue(self, conn: Connection, now: datetime) -> int:
        """Open a `sequencing_error` for each event parked longer than the bounded wait."""
        cutoff = now - timedelta(seconds=self.settings.gap_wait_s)
        late = event_log.parked_before(conn, cutoff)
        for env in late:
            applied = event_log.applied_version(conn, env.aggregate.type, env.aggregate.id)
            event_log.set_status(conn, env.event_id, EventStatus.OVERDUE, now)
            exception_log.open_exception(conn, NewException(
                ExceptionClass.SEQUENCING_ERROR, _gap_fingerprint(env),
                f"{env.aggregate.type} {env.aggregate.id} v{env.aggregate.version} waits for "
                f"v{applied + 1}, which has not arrived",
                correlation_id=env.correlation_id,
                objects=(f"{env.aggregate.type}:{env.aggregate.id}", f"event:{env.event_id}"),
                event_id=env.event_id), now)
        return len(late)


def partition_key(aggregate: AggregateRef) -> str:
    """Deliveries of one aggregate go out in order, per target (`storage.outbox`)."""
    return f"{aggregate.type}:{aggregate.id}"


def _gap_fingerprint(env: Envelope) -> str:
    return f"gap:{env.event_id}"
