"""The ERP posting buffer: between the outbox and a ledger, it spends the ERP's call budget
well and never loses or reorders a posting.

Rules:
- Per ERP target, each round claims due deliveries (only the head of each aggregate's
  partition is ever due, see `storage.outbox`), groups them by legal entity into calls of
  up to `batch_size` documents, and makes those calls in parallel, at most `concurrency`
  at a time. A round never holds two deliveries of one aggregate: a later one is given
  back untried, so parallel calls cannot reorder an aggregate.
- The budget (calls per minute, `hub.budget`) is checked before claiming: while it is
  spent, the buffer waits and the deliveries wait in the outbox, unleased. Calls a round
  planned beyond the budget are given back untried (their tries do not count).
- The ERP's own refusal with retry-after pauses the budget until then; the deliveries of
  that call are retried with backoff like any transient error.
- An event this ERP's target takes that is no posting (a customer's party for an ERP that
  keeps parties: `customer.upserted`) is delivered alone, one call of the budget each,
  after the round's postings; what the budget has no room for is given back untried.
- An event this ERP does not take (no route for it) is refused as a mapping error without
  a call.
- Outcomes are recorded by the delivery worker's code (`DeliveryWorker.record_all`):
  receipts, cross-references, milestones and exceptions look the same either way. One
  refused document in a batch fails alone.
- A call of several documents that fails with anything but a transient error (a value the
  ERP's database refuses in one of them, say) is made again document by document, so only
  the bad one fails; those calls are taken from the budget afterwards (later rounds wait).
- Claims go through the delivery worker (`DeliveryWorker.claim`): a delivery whose lease
  keeps running out is left to the worker, which makes it `dead`.
- `daily_summary` posting: see `hub.summary_posting`.
- Each ERP call is made for the deliveries it carries (`connectors.calls.delivering`): their
  correlation ids and delivery keys (a daily summary's members', not the summary's own key),
  so that the external-call log lists the call under each of them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, cast

from sqlalchemy import Engine

from finsync.connectors.calls import Subject, delivering
from finsync.connectors.ports import (
    LEDGER_EVENTS,
    BatchLedgerPort,
    LedgerPort,
    Posting,
    Receipt,
)
from finsync.domain.envelope import Envelope
from finsync.domain.errors import ExceptionClass, PermanentError, TransientError
from finsync.hub.budget import CallBudget
from finsync.hub.delivery import Attempt, DeliveryWorker, context, unreadable
from finsync.hub.pipeline import describe
from finsync.hub.summary_posting import Item, Planned, SummaryPlanner
from finsync.hub.target import Target
from finsync.storage import outbox
from finsync.storage.db import reading, transaction
from finsync.storage.event_log import UnreadableEvent

log = logging.getLogger(__name__)

PostingMode = Literal["detail", "daily_summary"]
_ENTITY_ROOM = 4


@dataclass(frozen=True, slots=True)
class BufferPolicy:
    calls_per_minute: int | None = None
    concurrency: int = 1
    batch_size: int | None = None  # documents per call; the port's `max_batch` if unset
    posting: PostingMode = "detail"
    claim_max: int = 1000  # deliveries per round at most
    wait_max_s: float = 60.0  # longest wait for the budget in one round


@dataclass(slots=True)
class _Call:
    entity: str
    planned: list[Planned] = field(default_factory=list)
    made: int = 1  # ERP calls it took: more when a failed call was made again one by one


class PostingBuffer:
    def __init__(self, engine: Engine, target: Target, port: LedgerPort,
                 worker: DeliveryWorker, policy: BufferPolicy, clock: Callable[[], datetime],
                 owner: str, lease_s: float, sleep: Callable[[float], None] = time.sleep) -> None:
        if policy.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.system = target.system
        self._engine, self._target, self._port, self._worker = engine, target, port, worker
        self._policy, self._clock, self._owner, self._lease_s = policy, clock, owner, lease_s
        self._sleep = sleep
        self._budget = CallBudget(policy.calls_per_minute, lambda: clock().timestamp())
        # Decided once: a Protocol check tests every member, too dear for each call.
        self._batched = isinstance(port, BatchLedgerPort)
        self._batch = self._batch_size()
        self._planner: SummaryPlanner | None = None
        if policy.posting == "daily_summary":
            self._planner = SummaryPlanner(engine, port, worker, clock, lease_s)

    def _batch_size(self) -> int:
        if not self._batched:
            return 1
        most = cast(BatchLedgerPort, self._port).max_batch
        return max(1, min(self._policy.batch_size or most, most))

    def run_once(self) -> int:
        """One round; returns how many deliveries it settled (0: nothing due, or the budget
        is spent for longer than `wait_max_s`)."""
        calls_max = self._ready()
        if calls_max == 0:
            return 0
        # Room for a few entities: a round's calls hold one entity each, and what does not
        # fit the budget is given back untried.
        limit = self._policy.claim_max
        if self._planner is None:
            limit = min(limit, calls_max * self._batch * _ENTITY_ROOM)
        with transaction(self._engine) as conn:
            claimed = self._worker.claim(conn, self._lease_s, limit, only=(self.system,))
        if not claimed:
            return 0
        items, alone, settled, held = self._items(claimed)
        planned, more = self._plan(items)
        calls = self._calls(planned)
        sent = calls[:self._budget.available(len(calls))]
        self._budget.take(len(sent))
        settled += more + self._send(sent)
        held += [i.delivery.id for call in calls[len(sent):] for p in call.planned
                 for i in p.members]
        made = alone[:self._budget.available(len(alone))]
        self._budget.take(len(made))
        settled += [self._worker.attempt(delivery, env) for delivery, env in made]
        held += [delivery.id for delivery, _ in alone[len(made):]]
        self._worker.record_all(settled)
        if held:
            with transaction(self._engine) as conn:
                outbox.release(conn, held, self._owner)
        return len(settled)

    def _plan(self, items: Sequence[Item]) -> tuple[list[Planned], list[Attempt]]:
        """What to post for the round's items, and the attempts settled without a call."""
        if self._planner is not None:
            return self._planner.plan(items)
        return [Planned(self._posting(i), (i,)) for i in items], []

    def _ready(self) -> int:
        """How many calls this round may make; waits while the budget is spent and
        something is due (nothing is leased while waiting)."""
        wanted = self._policy.concurrency
        if calls := self._budget.available(wanted):
            return calls
        with reading(self._engine) as conn:
            if not outbox.any_due(conn, self._clock(), (self.system,),
                                  self._worker.partitions()):
                return 0
        waited = 0.0
        while (calls := self._budget.available(wanted)) == 0 and waited < self._policy.wait_max_s:
            pause = min(max(self._budget.wait_s(), 0.001), self._policy.wait_max_s - waited)
            self._sleep(pause)
            waited += pause
        return calls

    def _items(self, claimed: Sequence[outbox.Delivery]
               ) -> tuple[list[Item], list[tuple[outbox.Delivery, Envelope]], list[Attempt],
                          list[int]]:
        """Postings to send; other events the target takes, sent alone; attempts already
        settled (events this ERP does not take); deliveries given back (a second one of
        an aggregate in this round)."""
        envelopes = self._worker.envelopes([d.event_id for d in claimed])
        items: list[Item] = []
        alone: list[tuple[outbox.Delivery, Envelope]] = []
        settled: list[Attempt] = []
        held: list[int] = []
        partitions: set[str] = set()
        for delivery in claimed:
            if delivery.partition_key in partitions:
                held.append(delivery.id)
                continue
            partitions.add(delivery.partition_key)
            env = envelopes[delivery.event_id]
            if isinstance(env, UnreadableEvent):
                settled.append(unreadable(delivery, env))
            elif not self._target.handles(env.type):
                settled.append(self._refused(delivery, env))
            elif isinstance(env.event, LEDGER_EVENTS):
                items.append(Item(delivery, env, env.event))
            else:
                alone.append((delivery, env))
        return items, alone, settled, held

    def _refused(self, delivery: outbox.Delivery, env: Envelope) -> Attempt:
        error = PermanentError(f"{self.system} does not take {env.type} events",
                               exception_class=ExceptionClass.MAPPING_ERROR)
        return Attempt(delivery, env, env.event, self._worker.outcome_of(delivery, error))

    @staticmethod
    def _posting(item: Item) -> Posting:
        return Posting(item.event, context(item.delivery, item.env))

    def _calls(self, planned: Sequence[Planned]) -> list[_Call]:
        """Calls of one legal entity each, up to the batch size, in delivery order."""
        open_calls: dict[str, _Call] = {}
        calls: list[_Call] = []
        for p in sorted(planned, key=lambda p: p.members[0].delivery.id):
            entity = p.posting.event.document.legal_entity
            call = open_calls.get(entity)
            if call is None or len(call.planned) >= self._batch:
                call = open_calls[entity] = _Call(entity)
                calls.append(call)
            call.planned.append(p)
        return calls

    def _send(self, calls: Sequence[_Call]) -> list[Attempt]:
        if len(calls) <= 1:
            answers = [self._answer(call) for call in calls]
        else:
            with ThreadPoolExecutor(min(self._policy.concurrency, len(calls)),
                                    thread_name_prefix=f"post-{self.system}") as pool:
                answers = list(pool.map(self._answer, calls))
        self._budget.take(sum(call.made - 1 for call in calls))  # the next rounds wait
        attempts: list[Attempt] = []
        for call, outcomes in zip(calls, answers, strict=True):
            for planned, outcome in zip(call.planned, outcomes, strict=True):
                if isinstance(outcome, TransientError) and outcome.retry_after_s:
                    self._budget.pause(outcome.retry_after_s)
                attempts += [self._attempt(item, planned, outcome) for item in planned.members]
        return attempts

    def _answer(self, call: _Call) -> list[Receipt | Exception]:
        """One ERP call. A transient error of the call itself is every posting's outcome;
        any other error of a call of several postings may come from one of them (a value
        the ERP's database refuses), so each is posted again alone and gets its own."""
        postings = [p.posting for p in call.planned]
        try:
            with delivering(_subjects(call.planned)):
                outcomes = self._post(postings)
        except TransientError as exc:
            return [exc] * len(postings)
        except Exception as exc:
            if len(postings) == 1:
                return [exc]
            log.warning("%s: a call of %d postings failed (%s); posting them one by one",
                        self.system, len(postings), describe(exc))
            call.made += len(postings)
            return [self._post_alone(p) for p in call.planned]
        if len(outcomes) != len(postings):
            error = PermanentError(f"{self.system} answered {len(outcomes)} outcomes for "
                                   f"{len(postings)} postings",
                                   exception_class=ExceptionClass.INTERNAL_ERROR)
            return [error] * len(postings)
        return outcomes

    def _post(self, postings: Sequence[Posting]) -> list[Receipt | Exception]:
        if self._batched:
            return list(cast(BatchLedgerPort, self._port).post_batch(postings))
        return [self._target.deliver(p.event, p.ctx) for p in postings]

    def _post_alone(self, planned: Planned) -> Receipt | Exception:
        try:
            with delivering(_subjects((planned,))):
                (outcome,) = self._post([planned.posting])
        except Exception as exc:
            return exc
        return outcome

    def _attempt(self, item: Item, planned: Planned, outcome: Receipt | Exception) -> Attempt:
        if isinstance(outcome, Receipt):
            return Attempt(item.delivery, item.env, item.event, planned.receipt_for(outcome))
        return Attempt(item.delivery, item.env, item.event,
                       self._worker.outcome_of(item.delivery, outcome))


def _subjects(planned: Sequence[Planned]) -> list[Subject]:
    """The deliveries a call carries: each member of each planned posting."""
    return [Subject(item.env.correlation_id, item.delivery.delivery_key)
            for p in planned for item in p.members]


def buffers_for(engine: Engine, targets: Mapping[str, Target],
                ledgers: Mapping[str, tuple[LedgerPort, BufferPolicy]], worker: DeliveryWorker,
                lease_s: float, clock: Callable[[], datetime],
                owner: str) -> list[PostingBuffer]:
    """One buffer per ERP target (the worker must skip those targets)."""
    return [PostingBuffer(engine, targets[name], port, worker, policy, clock, owner, lease_s)
            for name, (port, policy) in ledgers.items()]
