"""Acceptance: de-duplicate, sequence and route each canonical event, in one transaction
with its outbox rows.

Rules:
- A duplicate is the same `(source, source_event_id)`, the same business key (from the
  domain's owner), or the same aggregate version with the same payload. A byte-identical
  resend (the same payload hash) is counted, never applied.
- The same source event id or business key with a *different* payload is a
  `duplicate_event`: the stored event stands unchanged, and the received one is kept beside
  it as a rejected event (under its own id; a reused source event id gets `<id>#<hash>`,
  the hash of its payload), with an exception that holds both raw event ids, the
  field-level diff (`domain.diff`) and the larger of the two amounts at stake. The same
  changed body sent again is counted as a duplicate of the kept one.
- Finance chooses which stands (`triage`): the stored one (the exception closes), or the
  received one, which then takes the stored event's place (`supersede`).
- The same aggregate version with a *different* payload is a `sequencing_error`.
- Only the system that owns an event's domain may change it; otherwise `ownership_violation`,
  except a non-owner's `customer.upserted` that repeats the owner's latest version in the
  master fields: an echo, counted as a duplicate (`hub.ownership`).
- Events of one aggregate apply in version order. A gap parks the later versions; once the
  wait is over (`gap_wait_s`) each parked event opens a `sequencing_error` and keeps waiting,
  and the exception closes by itself when the gap fills.
- An invoice held for tax opens its `tax_failure` exception on acceptance, and its release
  resolves it (`hub.held_invoice`).
- Billing's contract event for a quote the hub ordered is checked against that order
  (`hub.version_check`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import Connection

from finsync.audit import correction
from finsync.domain import codec, diff
from finsync.domain.aggregate import AggregateRef
from finsync.domain.envelope import Envelope
from finsync.domain.errors import ExceptionClass
from finsync.domain.events import (
    AnyEvent,
    ContractAmended,
    ContractCancelled,
    ContractCreated,
    ContractRenewed,
    InvoiceHeld,
    PaymentDeclined,
)
from finsync.domain.ids import derive_id
from finsync.domain.legal_entity import entity_of
from finsync.domain.money import Money
from finsync.domain.partition import partition_hash
from finsync.domain.status import EventStatus
from finsync.hub import held_invoice, version_check
from finsync.hub.milestone import Milestone
from finsync.hub.ownership import ECHO, Echo, judge, told
from finsync.hub.settings import HubSettings
from finsync.hub.target import amount_at_stake, recorded_stake
from finsync.storage import event_log, exception_log, milestone_log, outbox
from finsync.storage.event_log import StoredEvent
from finsync.storage.exception_log import NewException

CONTRACT_EVENTS = (ContractCreated, ContractAmended, ContractRenewed, ContractCancelled)
_SOURCE_EVENT_ID_MAX = 255  # the events table's column
# Held by whoever accepts or supersedes events (`storage.db.serialize`): the sequencer must
# see every earlier version of an aggregate before it parks or applies the next one.
# Exclusive for the in-process hub, triage's supersede and quarantines; partitioned
# acceptance (`Processor.accept_stored`) holds it shared, with the lock of each bucket of
# the aggregates it decides on (`lock_buckets`), so that batches of other aggregates go on
# at the same time. What a lock per aggregate does not serialise, the same source event id
# or business key in two aggregates, the database's unique keys do (`events`): the
# transaction that inserts second waits for the first to commit, fails, and is done again,
# and then finds the event stored (`storage.db.conflicted`).
LOCK = "finsync.acceptance"
# Aggregates share a bucket lock by `partition_hash % LOCK_BUCKETS`: a power of two, so the
# aggregates of one partition (a power-of-two count up to it) meet no other partition's.
LOCK_BUCKETS = 256


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    HELD = "held"  # a changed body, kept for finance to choose (`duplicate_event`)
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
            return self._again(conn, env, raw_id, same, "source_event_id", at)
        if (owner := self.owner_of(env)) != env.source:
            return self._not_owner(conn, env, raw_id, owner, at)
        if (same := event_log.find_by_business_key(conn, env)) is not None:
            return self._again(conn, env, raw_id, same, "business_key", at)
        if env.aggregate.version is None:
            self._apply(conn, env, raw_id, at)
            return Outcome.ACCEPTED
        return self._sequence(conn, env, raw_id, at)

    def owner_of(self, env: Envelope) -> str | None:
        return self.settings.ownership.get(env.event.domain)

    def _not_owner(self, conn: Connection, env: Envelope, raw_id: int | None,
                   owner: str | None, at: datetime) -> Outcome:
        """An echo of the owner's latest version is a duplicate; anything else from a
        non-owner is an `ownership_violation` (`hub.ownership`)."""
        verdict = judge(conn, env, owner)
        if isinstance(verdict, Echo):
            event_log.record_duplicate(conn, env, raw_id, verdict.owner_event_id, ECHO, at)
            return Outcome.DUPLICATE
        self._reject(conn, env, raw_id, at, ExceptionClass.OWNERSHIP_VIOLATION,
                     verdict.summary, verdict.detail)
        return Outcome.REJECTED

    def _again(self, conn: Connection, env: Envelope, raw_id: int | None, same: StoredEvent,
               reason: str, at: datetime) -> Outcome:
        """An event already stored under this id or key: counted when its payload is the
        same; otherwise kept beside it for finance, once per distinct changed body."""
        received_hash = event_log.event_hash(env)
        if received_hash == same.payload_hash:
            event_log.record_duplicate(conn, env, raw_id, same.event_id, reason, at)
            return Outcome.DUPLICATE
        stored = event_log.get(conn, same.event_id)
        assert stored is not None  # found by id or key above, in this transaction
        # Stored in an older schema version: the same body, once upcast, is a duplicate too.
        if event_log.event_hash(stored) == received_hash:
            event_log.record_duplicate(conn, env, raw_id, stored.event_id, reason, at)
            return Outcome.DUPLICATE
        held = _held(env, received_hash) if reason == "source_event_id" else env
        if event_log.find(conn, held.event_id) is not None:  # this changed body came before
            event_log.record_duplicate(conn, env, raw_id, held.event_id, reason, at)
            return Outcome.DUPLICATE
        # Kept for finance's choice, without the business key the stored event holds.
        event_log.insert_event(conn, held, raw_id, EventStatus.REJECTED, at,
                               keep_business_key=False)
        exception_log.open_exception(conn, _duplicate_event(stored, same.raw_event_id, held,
                                                            raw_id, reason), at)
        return Outcome.HELD

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
                       partition_key(env.aggregate), env.correlation_id, at,
                       entity_of(env.event))
        if (milestone := accepted_milestone(env.event)) is not None:
            milestone_log.record(conn, env.correlation_id, milestone, env.event_id, "hub", at)
        held_invoice.accepted(conn, env, at)
        version_check.accepted(conn, env, at)

    def _release_parked(self, conn: Connection, env: Envelope, at: datetime) -> None:
        version = env.aggregate.version
        assert version is not None
        while (nxt := event_log.parked_next(conn, env.aggregate.type, env.aggregate.id,
                                            version + 1)) is not None:
            self._apply(conn, nxt, None, at, stored=True)
            correction.resolve(conn, "sequencing", _gap_fingerprint(nxt),
                               "gap filled: applied in version order", at)
            version += 1

    def _reject(self, conn: Connection, env: Envelope, raw_id: int | None, at: datetime,
                exception_class: ExceptionClass, summary: str,
                detail: str | None = None) -> None:
        # Kept for the record, but without the business key it has no right to hold.
        event_log.insert_event(conn, env, raw_id, EventStatus.REJECTED, at,
                               keep_business_key=False)
        exception_log.open_exception(conn, NewException(
            exception_class, f"{exception_class.value}:{env.event_id}", summary,
            correlation_id=env.correlation_id,
            objects=(f"{env.aggregate.type}:{env.aggregate.id}", f"event:{env.event_id}"),
            event_id=env.event_id, raw_event_id=raw_id, detail=detail), at)

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


def supersede(conn: Connection, stored: Envelope, stored_status: EventStatus,
              received: Envelope, note: str, at: datetime) -> str | None:
    """Finance chose the received body of a `duplicate_event`: it takes the stored event's
    place. The stored event is kept, rejected; the received one stands in its aggregate
    version with its business key, and goes out through the stored event's unfinished
    deliveries (same targets, same order), or waits in its place if the stored one was
    parked. The caller checks that the two are the same document and that nothing of the
    stored one is delivered or in flight; if a delivery was taken or settled since, nothing
    is done and None comes back. Returns what was done."""
    parked = stored_status in (EventStatus.PARKED, EventStatus.OVERDUE)
    status = EventStatus.PARKED if parked else EventStatus.ACCEPTED
    handed = event_log.supersede(conn, stored, received, status, at)
    if handed is None:
        return None
    # The exceptions of the stored event's deliveries (named as hub.delivery names them).
    for key in handed:
        exception_log.resolve_by_fingerprint(conn, f"delivery:{key}", note, at)
    exception_log.resolve_by_fingerprint(conn, _gap_fingerprint(stored), note, at)
    milestone = None if parked else accepted_milestone(received.event)
    if milestone is not None:
        milestone_log.record(conn, received.correlation_id, milestone, received.event_id,
                             "hub", at)
    if not parked:
        held_invoice.accepted(conn, received, at)
        version_check.accepted(conn, received, at)
    where = ("waits in its place for the earlier version" if parked
             else f"{len(handed)} delivery(ies) will send it")
    return f"event {received.event_id} stands in place of {stored.event_id}; {where}"


def duplicate_pair(event_id: str, objects: list[str]) -> tuple[str, str]:
    """`(stored, received)` event ids of a `duplicate_event` exception, from the objects
    `_duplicate_event` wrote."""
    received = [o.removeprefix("event:") for o in objects
                if o.startswith("event:") and o != f"event:{event_id}"]
    if len(received) != 1:
        raise ValueError(f"a duplicate_event names one received event, not {received}")
    return event_id, received[0]


def _duplicate_event(stored: Envelope, stored_raw_id: int | None, held: Envelope,
                     raw_id: int | None, reason: str) -> NewException:
    found = tuple(told(change) for change in diff.changes(codec.encode_event(stored.event),
                                                             codec.encode_event(held.event)))
    named = stored.source_event_id if reason == "source_event_id" else stored.business_key
    amount, note = recorded_stake(_larger(amount_at_stake(stored.event),
                                          amount_at_stake(held.event)))
    return NewException(
        ExceptionClass.DUPLICATE_EVENT, f"duplicate_event:{held.event_id}",
        f"{held.source} sent {reason.replace('_', ' ')} {named} again with a different body "
        f"({len(found)} field(s) changed): {stored.event_id} stands until finance chooses "
        f"which one does{note}",
        correlation_id=stored.correlation_id,
        objects=(f"{stored.aggregate.type}:{stored.aggregate.id}", f"event:{stored.event_id}",
                 f"event:{held.event_id}",
                 *(f"raw_event:{i}" for i in (stored_raw_id, raw_id) if i is not None)),
        amount=amount, event_id=stored.event_id, raw_event_id=raw_id, detail=diff.describe(found))


def _held(env: Envelope, body_hash: str) -> Envelope:
    """The id a changed body under a source event id already taken is kept under."""
    suffix = f"#{body_hash[:12]}"
    source_event_id = env.source_event_id[:_SOURCE_EVENT_ID_MAX - len(suffix)] + suffix
    event_id = derive_id("evt", env.source, env.source_event_id, body_hash)
    return replace(env, source_event_id=source_event_id, event_id=event_id)


def _larger(a: tuple[Money, ...], b: tuple[Money, ...]) -> tuple[Money, ...]:
    """The larger amount at stake; the stored one's unless both are in one and the same
    currency (two currencies are never compared)."""
    if not a or not b:
        return a or b
    if len(a) != 1 or len(b) != 1 or a[0].currency != b[0].currency:
        return a
    return b if abs(a[0]) < abs(b[0]) else a


def accepted_milestone(event: AnyEvent) -> Milestone | None:
    """The milestone the hub itself records when it accepts `event`: a contract accepted,
    a payment declined or an invoice held for tax (no system posts a decline or a hold;
    the hub shows it on its thread)."""
    if isinstance(event, CONTRACT_EVENTS):
        return Milestone.CONTRACT_ACCEPTED
    if isinstance(event, PaymentDeclined):
        return Milestone.PAYMENT_DECLINED
    if isinstance(event, InvoiceHeld):
        return Milestone.INVOICE_HELD
    return None


def partition_key(aggregate: AggregateRef) -> str:
    """Deliveries of one aggregate go out in order, per target (`storage.outbox`)."""
    return f"{aggregate.type}:{aggregate.id}"


def lock_bucket(aggregate: AggregateRef) -> int:
    """The bucket lock (`LOCK`'s, `storage.db.serialize_each`) of an aggregate's acceptance."""
    return partition_hash(partition_key(aggregate)) % LOCK_BUCKETS


def _gap_fingerprint(env: Envelope) -> str:
    return f"gap:{env.event_id}"
