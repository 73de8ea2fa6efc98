"""The delivery worker: takes due outbox rows and calls their targets.

Rules:
- The call carries the delivery key (`event_id:target`); the outcome is recorded (delivery done,
  cross-references, milestone) in one transaction after the call. If the worker dies in
  between, the lease expires, the delivery goes out again under the same key and the target
  answers with its first receipt: the effect happens once.
- `TransientError`: retry with bounded exponential backoff and jitter; when attempts run out,
  the delivery is `dead` and a `target_unavailable` exception opens.
- `PermanentError`: the delivery is `failed` and an exception of the error's class opens.
- Anything else is a defect: recorded as `internal_error` (a short summary, the traceback in
  the detail), never swallowed.
- Plain receipts (done, nothing to resolve, no cross-reference in question) are recorded a
  set at a time, one statement per table (`hub.receipt_batch`); every other outcome is
  recorded in a savepoint of its own: one that cannot be written
  (an amount too large for the column, a text the database refuses) settles that attempt
  alone as `internal_error`, and the batch's other outcomes stand. If the batch's
  transaction fails as a whole, its outcomes are recorded one transaction each.
- No delivery stays `in_flight` past its lease: an expired lease is taken back and counted,
  and a delivery whose lease runs out `lease_expiries_max` times (a worker that dies or hangs
  on it each time) becomes `dead` with an `internal_error` exception instead of being
  claimed again.
- A batch's calls go one after the other and its outcomes are recorded after the last: once
  a third of the lease has passed, the batch's leases are extended before the next call
  and while a call is out (`keeper`, `hub.lease_keeper`), so a slow target's batch never
  lets its own deliveries' leases run out.
- A failed or dead delivery holds back the later deliveries of its aggregate to that target.
- Targets given to a posting buffer (`skip_targets`) are left to it; it records its outcomes
  through `outcome_of` and `record_all`, so that both record alike.
- Before the calls, each target that can tell in a set answers which of the batch's
  deliveries it applied already (`hub.redelivery`): those are not called again. A round
  calls at most `batch_size` deliveries (the others it claimed and no target answered go
  back untried, due as before); while rounds need no call at all (a replay), claims grow
  to `_ANSWERED_BATCH_MAX`.
- Each call to a target is made for its delivery (`connectors.calls.delivering`): the
  connector files every request it makes under the event's correlation id and the
  delivery key, in the external-call log.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

from finsync.audit import correction
from finsync.connectors.calls import Subject, delivering
from finsync.connectors.ports import DeliveryContext, Receipt
from finsync.domain.envelope import Envelope
from finsync.domain.errors import (
    DomainError,
    ExceptionClass,
    PermanentError,
    TransientError,
)
from finsync.domain.events import AnyEvent
from finsync.domain.fingerprint import plain
from finsync.domain.money import Money
from finsync.domain.refs import ReferenceConflictError
from finsync.domain.status import DeliveryStatus, ExceptionStatus
from finsync.hub.backoff import delay_s
from finsync.hub.handover import Handover
from finsync.hub.lease_keeper import LeaseKeeper
from finsync.hub.milestone import Milestone
from finsync.hub.pipeline import describe, trace
from finsync.hub.receipt_batch import ReceiptBatch, exception_fingerprint
from finsync.hub.redelivery import answered
from finsync.hub.settings import DeliveryPolicy
from finsync.hub.target import Target, amount_at_stake, recorded_stake
from finsync.storage import cross_ref, event_log, exception_log, jsonutil, milestone_log, outbox
from finsync.storage.db import StorageUnavailableError, reading, transaction
from finsync.storage.event_log import UnreadableEvent
from finsync.storage.exception_log import NewException
from finsync.storage.outbox import Delivery
from finsync.storage.text import storable

log = logging.getLogger(__name__)

_MINOR_MAX = 2**63  # amounts are stored as 64-bit integer minor units
# A claim's size at most while rounds need no call (`DeliveryWorker._within_batch`): the
# envelopes of a round are held in memory together.
_ANSWERED_BATCH_MAX = 1000


@dataclass(frozen=True, slots=True)
class Failure:
    status: DeliveryStatus  # FAILED (refused) or DEAD (retries exhausted)
    exception_class: ExceptionClass
    message: str
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Retry:
    message: str
    at: datetime
    # A cause finance should see while the hub retries (e.g. missing_revrec_reference);
    # None for plain unavailability, which only becomes an exception when retries run out.
    exception_class: ExceptionClass | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    delivery: Delivery
    env: Envelope | UnreadableEvent
    event: AnyEvent | None  # None: the stored event no longer reads
    outcome: Receipt | Retry | Failure


def context(delivery: Delivery, env: Envelope) -> DeliveryContext:
    """The context a target gets: the delivery key, the event's lineage and what an approved
    re-route changed (the posting date)."""
    posting_date = delivery.override.get("posting_date")
    return DeliveryContext(delivery.delivery_key, env.event_id, env.correlation_id,
                           env.causation_id,
                           date.fromisoformat(posting_date) if posting_date else None)


class DeliveryWorker:
    def __init__(self, engine: Engine, targets: Mapping[str, Target], policy: DeliveryPolicy,
                 clock: Callable[[], datetime], owner: str,
                 rng: random.Random | None = None, skip_targets: Collection[str] = (),
                 handover: Handover | None = None) -> None:
        self._engine, self._targets, self._policy = engine, dict(targets), policy
        self._clock, self._owner, self._rng = clock, owner, rng or random.Random()
        self._skip = frozenset(skip_targets)
        self._handover = handover or Handover(0)
        self.lease_expiries_max = policy.lease_expiries_max
        self.partitions: Callable[[], outbox.Owned | None] = _every  # `restrict`
        self._claim_size = policy.batch_size  # `_within_batch`

    def restrict(self, partitions: Callable[[], outbox.Owned | None]) -> None:
        """Claim only deliveries of the partitions `partitions()` names at each claim (a
        partitioned worker's, `streaming.worker`); None: every partition."""
        self.partitions = partitions

    def run_once(self) -> int:
        """Deliver one batch of due deliveries; returns how many were attempted.

        Outcomes of the batch are recorded in one transaction after the calls: losing them
        to a crash only means the calls are made again under the same keys.
        """
        since = self._clock()  # at or before the claim's own clock: its leases' start
        with transaction(self._engine) as conn:
            buried = self.bury_expired(conn)
            claimed = self.claim(conn, self._policy.lease_s, self._claim_size,
                                 skip=self._skip)
        if not claimed:
            self._claim_size = self._policy.batch_size
            return buried
        envelopes = self.envelopes([d.event_id for d in claimed])
        known = answered(self._targets, claimed, envelopes, context)  # `hub.redelivery`
        claimed = self._within_batch(claimed, known)
        keep = self.keeper([d.id for d in claimed], self._policy.lease_s, since=since)
        attempts = []
        with keep.during():
            for delivery in claimed:
                keep.tick()
                attempts.append(self.attempt(delivery, envelopes[delivery.event_id],
                                             known.get(delivery.id)))
        self.record_all(attempts)
        return buried + len(claimed)

    def _within_batch(self, claimed: Sequence[Delivery],
                      known: Mapping[int, Receipt]) -> list[Delivery]:
        """What this round settles: every claimed delivery its target answered already, and
        of the others the first `batch_size` (a round makes no more calls than that); the
        rest is given back untried. While rounds need no call (a replay's re-delivery) the
        next claim doubles, up to `_ANSWERED_BATCH_MAX`, so that a round's fixed costs
        (claim, reads, commits) are paid once per many deliveries; a round that needs a
        call brings it back to `batch_size`."""
        size = self._policy.batch_size
        calls = [d for d in claimed if d.id not in known]
        if calls:
            self._claim_size = size
        else:
            self._claim_size = min(self._claim_size * 2, max(size, _ANSWERED_BATCH_MAX))
        if len(calls) <= size:
            return list(claimed)
        back = {d.id for d in calls[size:]}
        with transaction(self._engine) as conn:
            outbox.release(conn, back, self._owner)
        return [d for d in claimed if d.id not in back]

    def keeper(self, delivery_ids: Sequence[int], lease_s: float,
               also: Callable[[datetime], None] | None = None, *,
               since: datetime | None = None) -> LeaseKeeper:
        """What keeps a batch's leases, claimed for `lease_s` at `since` (None: just now),
        while its calls go on (`hub.lease_keeper`); `also(until)`: more leases to extend
        with them."""
        def extend(until: datetime) -> None:
            with transaction(self._engine) as conn:
                kept = outbox.extend_leases(conn, delivery_ids, self._owner, until)
            if kept < len(delivery_ids):
                log.warning("%d delivery lease(s) ran out during a slow batch; another "
                            "worker may send them too (the target answers the key once)",
                            len(delivery_ids) - kept)
            if also is not None:
                also(until)
        return LeaseKeeper(extend, self._clock, lease_s, since)

    def envelopes(self, event_ids: Sequence[str]) -> dict[str, Envelope | UnreadableEvent]:
        """The events to deliver: handed over by acceptance in this process (a first
        attempt), else read from the event log (each typed, or unreadable on its own)."""
        found: dict[str, Envelope | UnreadableEvent] = {}
        found.update(self._handover.take_many(event_ids))
        missing = [i for i in event_ids if i not in found]
        if missing:
            with reading(self._engine) as conn:
                found.update(event_log.get_many(conn, missing))
        return found

    def claim(self, conn: Connection, lease_s: float, limit: int, *,
              only: Collection[str] | None = None, skip: Collection[str] = (),
              lanes: Collection[str | None] | None = None,
              skip_lanes: Collection[str | None] = (),
              lane_max: int | None = None) -> list[Delivery]:
        """Lease due deliveries to this worker (the posting buffer claims through here too,
        per lane, so that both leave a delivery whose leases keep running out to
        `bury_expired`)."""
        return outbox.claim(conn, self._owner, self._clock(), lease_s, limit, only=only,
                            skip=skip, lease_expiries_max=self.lease_expiries_max,
                            lanes=lanes, skip_lanes=skip_lanes,
                            partitions=self.partitions(), lane_max=lane_max)

    def bury_expired(self, conn: Connection) -> int:
        """Make `dead` the deliveries (to any target) whose lease ran out for the
        `lease_expiries_max`-th time, each with an `internal_error` exception; returns how
        many.

        `internal_error`, not `target_unavailable`: connectors time their calls out and
        raise `TransientError`, which is retried as `target_unavailable`. A lease that runs
        out means the worker itself died or hung on this delivery, again and again: a defect
        (a poison delivery) for engineering, not an outage to wait out. The target may have
        applied it; a retry sends it again under the same key, so it happens once."""
        now = self._clock()
        message = (f"its lease ran out {self.lease_expiries_max} times before an outcome was "
                   "recorded: the worker died or hung on it each time; the target may have "
                   "applied it, and a retry sends it again under the same key")
        buried = outbox.bury_expired(conn, now, self.lease_expiries_max, message)
        if not buried:
            return 0
        envelopes = event_log.get_many(conn, [d.event_id for d in buried])
        for delivery in buried:
            log.error("delivery %s is dead: %s", delivery.delivery_key, message)
            env = envelopes[delivery.event_id]
            attempt = Attempt(delivery, env, None if isinstance(env, UnreadableEvent)
                              else env.event,
                              Failure(DeliveryStatus.DEAD, ExceptionClass.INTERNAL_ERROR, message))
            with conn.begin_nested():
                self._open(conn, attempt, ExceptionClass.INTERNAL_ERROR, message)
        return len(buried)

    def record_all(self, attempts: Sequence[Attempt]) -> None:
        """Record outcomes (deliveries, cross-references, milestones, exceptions): in one
        transaction, each attempt in a savepoint; if that transaction fails, one each."""
        try:
            with transaction(self._engine) as conn:
                self._record_many(conn, attempts)
            return
        except StorageUnavailableError:
            raise
        except Exception as exc:
            if len(attempts) == 1:
                self._record_defect(attempts[0], exc)
                return
            log.warning("recording %d outcomes together failed (%s); recording them one by "
                        "one", len(attempts), describe(exc))
        for attempt in attempts:
            try:
                with transaction(self._engine) as conn:
                    self._record_alone(conn, attempt)
            except StorageUnavailableError:
                raise
            except Exception as exc:
                self._record_defect(attempt, exc)

    def _record_many(self, conn: Connection, attempts: Sequence[Attempt]) -> None:
        """Plain receipts a set at a time (`ReceiptBatch`); every other outcome alone, in
        its savepoint, in order, after the plain ones before it are written."""
        receipts = ReceiptBatch(conn, self._owner, self._clock(), self._targets)
        chosen = receipts.look_up(attempts)
        for attempt, is_plain in zip(attempts, chosen, strict=True):
            if is_plain:
                receipts.take(attempt)
                continue
            receipts.flush()
            self._record_alone(conn, attempt)
        receipts.flush()

    def _record_alone(self, conn: Connection, attempt: Attempt) -> None:
        """One attempt's outcome in a savepoint; if it cannot be written, the attempt fails
        as `internal_error` instead (the other outcomes of the batch stand)."""
        try:
            with conn.begin_nested():
                self._record(conn, attempt)
        except OperationalError:
            raise  # the database, not this outcome
        except Exception as exc:
            with conn.begin_nested():
                self._record_unrecordable(conn, attempt, exc)

    def _record_defect(self, attempt: Attempt, exc: Exception) -> None:
        """An outcome whose own transaction failed: settled as `internal_error` in another."""
        with transaction(self._engine) as conn:
            self._record_unrecordable(conn, attempt, exc)

    def _record_unrecordable(self, conn: Connection, attempt: Attempt,
                             exc: Exception) -> None:
        message = f"its outcome could not be recorded: {describe(exc)}"
        log.error("delivery %s: %s", attempt.delivery.delivery_key, message)
        self._record_failure(conn, attempt, Failure(
            DeliveryStatus.FAILED, ExceptionClass.INTERNAL_ERROR, message, trace(exc)))

    def attempt(self, delivery: Delivery, env: Envelope | UnreadableEvent,
                answer: Receipt | None = None) -> Attempt:
        """One call of the delivery's target; its outcome, not yet recorded (`answer`: the
        receipt the target answered already, found in a set, in place of the call)."""
        if isinstance(env, UnreadableEvent):
            return unreadable(delivery, env)
        if answer is not None:
            return Attempt(delivery, env, env.event, answer)
        try:
            outcome: Receipt | Retry | Failure = self._call(delivery, env,
                                                            context(delivery, env))
        except Exception as exc:
            outcome = self.outcome_of(delivery, exc)
        return Attempt(delivery, env, env.event, outcome)

    def outcome_of(self, delivery: Delivery, exc: Exception) -> Retry | Failure:
        """What an error means for a delivery: a retry later, or a failure for a person."""
        try:
            if isinstance(exc, TransientError):
                return self._retry_or_give_up(delivery, exc)
            if isinstance(exc, PermanentError):
                return Failure(DeliveryStatus.FAILED, exc.exception_class, storable(str(exc)))
            if isinstance(exc, DomainError):
                return Failure(DeliveryStatus.FAILED, ExceptionClass.MAPPING_ERROR,
                               storable(str(exc)))
        except Exception as defect:  # e.g. a retry-after too far away for a datetime
            exc = defect
        return Failure(DeliveryStatus.FAILED, ExceptionClass.INTERNAL_ERROR, describe(exc),
                       trace(exc))

    def _call(self, delivery: Delivery, env: Envelope, ctx: DeliveryContext) -> Receipt:
        target = self._targets.get(delivery.target)
        if target is None:
            raise PermanentError(f"no connector is configured for system {delivery.target!r}",
                                 exception_class=ExceptionClass.TARGET_UNAVAILABLE)
        if not target.handles(env.type):
            raise PermanentError(f"{delivery.target} does not take {env.type} events",
                                 exception_class=ExceptionClass.MAPPING_ERROR)
        with delivering((Subject(ctx.correlation_id, ctx.delivery_key),)):
            return target.deliver(env.event, ctx)

    def _retry_or_give_up(self, delivery: Delivery, exc: TransientError) -> Retry | Failure:
        attempt = delivery.attempts + 1
        if attempt >= self._policy.attempts_max:
            return Failure(DeliveryStatus.DEAD, exc.exception_class,
                            f"{delivery.target} still failing after {attempt} attempts: {exc}")
        wait = delay_s(attempt, self._policy.backoff_base_s, self._policy.backoff_cap_s,
                       self._rng, exc.retry_after_s)
        visible = exc.exception_class is not ExceptionClass.TARGET_UNAVAILABLE
        return Retry(str(exc), self._clock() + timedelta(seconds=wait),
                     exc.exception_class if visible else None)

    def _record(self, conn: Connection, attempt: Attempt) -> None:
        outcome = attempt.outcome
        if isinstance(outcome, Receipt):
            assert isinstance(attempt.env, Envelope)  # only an event that reads is ever sent
            self._record_success(conn, attempt.delivery, attempt.env, outcome)
        elif isinstance(outcome, Retry):
            if outbox.reschedule(conn, attempt.delivery.id, self._owner, outcome.message,
                                 outcome.at) and outcome.exception_class is not None:
                self._open(conn, attempt, outcome.exception_class, outcome.message,
                           status=ExceptionStatus.RETRYING)
        else:
            self._record_failure(conn, attempt, outcome)

    def _record_success(self, conn: Connection, delivery: Delivery, env: Envelope,
                        receipt: Receipt) -> None:
        now = self._clock()
        if not outbox.complete(conn, delivery.id, self._owner,
                               jsonutil.dumps(plain(receipt)), now):
            return  # our lease ran out; the worker that took over records the outcome
        for ref in receipt.references:
            try:
                cross_ref.link(conn, ref.canonical_id, ref.object_type, delivery.target,
                               ref.external_id, env.event_id, now)
            except ReferenceConflictError as exc:
                exception_log.open_exception(conn, NewException(
                    ExceptionClass.MASTER_DATA_MISMATCH, f"xref:{delivery.delivery_key}",
                    str(exc), env.correlation_id, (f"event:{env.event_id}",),
                    event_id=env.event_id, delivery_id=delivery.id), now)
        if milestone := self._targets[delivery.target].milestone(env.type):
            milestone_log.record(conn, env.correlation_id, milestone, env.event_id,
                                 delivery.target, now)
        note = f"delivered to {delivery.target} (entry {receipt.external_id})"
        if correction.resolve(conn, "delivery", _fingerprint(delivery), note, now):
            milestone_log.record(conn, env.correlation_id, Milestone.EXCEPTION_RESOLVED,
                                 env.event_id, delivery.target, now)

    def _record_failure(self, conn: Connection, attempt: Attempt, failure: Failure) -> None:
        if outbox.fail(conn, attempt.delivery.id, self._owner, failure.status, failure.message,
                       self._clock()):
            self._open(conn, attempt, failure.exception_class, failure.message,
                       detail=failure.detail)

    def _open(self, conn: Connection, attempt: Attempt, klass: ExceptionClass, message: str,
              *, status: ExceptionStatus = ExceptionStatus.OPEN,
              detail: str | None = None) -> None:
        delivery, env = attempt.delivery, attempt.env
        amount, note = recorded_stake(_amount_at_stake(attempt.event))
        exception_log.open_exception(conn, NewException(
            klass, _fingerprint(delivery), f"{env.type} to {delivery.target}: {message}{note}",
            correlation_id=env.correlation_id,
            objects=(f"{env.aggregate.type}:{env.aggregate.id}", f"event:{env.event_id}"),
            amount=amount, event_id=env.event_id,
            delivery_id=delivery.id, detail=detail, status=status), self._clock())


def _every() -> outbox.Owned | None:
    return None


def unreadable(delivery: Delivery, env: UnreadableEvent) -> Attempt:
    """A delivery of an event that no longer reads fails alone, as a mapping error."""
    return Attempt(delivery, env, None, Failure(
        DeliveryStatus.FAILED, ExceptionClass.MAPPING_ERROR,
        f"stored event {env.event_id} does not read: {env.error}"))


def _amount_at_stake(event: AnyEvent | None) -> tuple[Money, ...]:
    """The money at stake per currency, or none when it cannot be told (an amount past
    what the exception queue stores, say): the exception opens either way."""
    try:
        amounts = amount_at_stake(event)
        for amount in amounts:
            if abs(amount.quantize().to_minor()) >= _MINOR_MAX:
                raise OverflowError(f"{amount} is past the exception queue's column")
    except Exception as exc:
        log.warning("the amount at stake cannot be recorded: %s", describe(exc))
        return ()
    return amounts


def _fingerprint(delivery: Delivery) -> str:
    return exception_fingerprint(delivery.delivery_key)
