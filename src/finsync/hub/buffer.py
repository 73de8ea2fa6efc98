"""The ERP posting buffer: between the outbox and a ledger, it spends the ERP's call budget
well and never loses or reorders a posting.

Rules:
- Deliveries go out per (target, lane): a lane is the legal entity of the event
  (`storage.outbox`; those without one share a lane). A round claims due deliveries of the
  lanes that have room (only the head of each aggregate's partition is ever due), groups
  them by legal entity into calls of up to `batch_size` documents, and makes each call on
  a thread of its own: a slow call for one entity holds no other entity's deliveries, and
  a closed period in one entity fails (`closed_period`) only that entity's postings.
- Lanes take turns (round-robin) for the threads, and for the claims: every second a claim
  skips the lanes served last, so a backlog in one lane holds no other back for longer
  than that. A lane has one call out at a time, or, with a shared `concurrency` of c, at
  most c - 1 (one is left for the others), so with `concurrency = 1` the lanes post one
  call at a time, in turn. With a limit set, each call is a task of its own (no grant is
  held idle); without, a lane's task makes up to four calls in a row, as a round did
  before lanes. Calls that find no thread or no grant are given back untried.
- A round never holds two deliveries of one aggregate: a later one is given back untried,
  and the outbox claims no delivery while an earlier one of its partition is in flight, so
  parallel calls cannot reorder an aggregate.
- A round returns once one of the tasks out (a lane's calls) has ended and its outcomes
  are recorded (or none is out, or `lane_wait_s` of real time passed: the calls go on and
  a later round counts them); while it waits, it claims for the lanes that have room. A
  round whose caller has raw events to accept returns as soon as its calls are started, so
  that acceptance runs while they are out (unless the ERP's calls are budgeted: then its
  calls wait for acceptance, so that each carries a full batch).
- The budget (calls per minute, concurrency, daily cap: `hub.budget`) is one budget for
  every process, kept in the database; a round takes each call's grant as it starts it, in
  the lanes' turn, so a budget too small for every lane goes round them (a batch call is
  one call). While the minute's budget or the day's cap is spent, the
  buffer waits (at most `wait_max_s`) and the deliveries wait in the outbox, unleased;
  calls without a grant are given back untried (their tries do not count).
- The ERP's own refusal with retry-after pauses the budget until then; the deliveries of
  that call are retried with backoff like any transient error.
- An event this ERP's target takes that is no posting (a customer's party for an ERP that
  keeps parties: `customer.upserted`) is delivered alone, one call of the budget each.
- An event this ERP does not take (no route for it) is refused as a mapping error without
  a call.
- Outcomes are recorded by the delivery worker's code (`DeliveryWorker.record_all`), one
  task's at a time (the calls a lane's thread makes in a row, after the last of them; a
  single call whenever the ERP sets a limit, so a grant is given back as soon as its call's
  outcomes are recorded): receipts, cross-references, milestones and exceptions look the
  same either way. One refused document in a batch fails alone.
- A call of several documents that fails with anything but a transient error is made again
  document by document (`hub.ledger_call`), so only the bad one fails; those calls are
  counted against the budget afterwards (later calls wait).
- Claims go through the delivery worker (`DeliveryWorker.claim`): a delivery whose lease
  keeps running out is left to the worker, which makes it `dead`.
- `daily_summary` posting: see `hub.summary_posting`.
- A task's outcomes are recorded after its last call, so it keeps its deliveries' leases
  and its concurrency slots while its calls go on (`DeliveryWorker.keeper`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Engine

from finsync.connectors.ports import LEDGER_EVENTS, LedgerPort, Posting
from finsync.domain.envelope import Envelope
from finsync.domain.errors import ExceptionClass, PermanentError, TransientError
from finsync.hub.budget import Grant, Limits, PostingBudget, Wait
from finsync.hub.delivery import Attempt, DeliveryWorker, context, unreadable
from finsync.hub.ledger_call import Lane, LedgerCall, LedgerCaller, calls_of
from finsync.hub.summary_posting import Item, Planned, SummaryPlanner
from finsync.hub.target import Target
from finsync.storage import outbox
from finsync.storage.db import reading, transaction
from finsync.storage.event_log import UnreadableEvent

log = logging.getLogger(__name__)

PostingMode = Literal["detail", "daily_summary"]
# A claim's rows per call it may make: slack for what a round gives back (a second
# delivery of an aggregate); the claim is trimmed per lane before any event is read.
_CLAIM_SLACK = 2
_CALLS_PER_TASK = 4  # calls a task makes in a row, when the ERP sets no limit
_LANES_MAX = 4  # lanes posting at once when the ERP sets no concurrency
# While calls are out, a round claims for the other lanes this often (real seconds): often
# enough that a slow lane holds no other for long, seldom enough that claims do not crowd
# the writes of an ERP that shares the database (the embedded ledger on SQLite).
_CLAIM_EVERY_S = 1.0
_ROTATE_EVERY_S = 1.0  # real seconds a lane waits at most behind another's backlog


@dataclass(frozen=True, slots=True)
class BufferPolicy:
    calls_per_minute: int | None = None
    concurrency: int | None = None  # calls in flight, all processes; None: one per lane
    batch_size: int | None = None  # documents per call; the port's `max_batch` if unset
    posting: PostingMode = "detail"
    claim_max: int = 1000  # deliveries per round at most
    wait_max_s: float = 60.0  # longest wait for the budget in one round
    daily_cap: int | None = None  # calls per UTC day, all processes
    lane_wait_s: float = 5.0  # real seconds a round waits for a call to end


class PostingBuffer:
    def __init__(self, engine: Engine, target: Target, port: LedgerPort,
                 worker: DeliveryWorker, policy: BufferPolicy, clock: Callable[[], datetime],
                 owner: str, lease_s: float, sleep: Callable[[float], None] = time.sleep) -> None:
        self.system = target.system
        self._engine, self._target, self._worker = engine, target, worker
        self._caller = LedgerCaller(target, port, worker)
        self._policy, self._clock, self._owner, self._lease_s = policy, clock, owner, lease_s
        self._sleep = sleep
        self._budget = PostingBudget(
            engine, target.system,
            Limits(policy.calls_per_minute, policy.concurrency, policy.daily_cap),
            clock, owner, lease_s)
        self.waiting_for: Wait | None = None  # what the last round waited for, if anything
        most = self._caller.max_batch
        self._batch = max(1, min(policy.batch_size or most, most))
        self._planner: SummaryPlanner | None = None
        if policy.posting == "daily_summary":
            self._planner = SummaryPlanner(engine, port, worker, clock, lease_s)
        concurrency = policy.concurrency
        self._threads = concurrency or _LANES_MAX
        # One call is left to the other lanes when the ERP's concurrency allows it.
        self._lane_cap = 1 if concurrency is None else max(1, concurrency - 1)
        # Without any limit a task makes a few calls of its lane in a row (no grant to hold
        # idle, and a round's claim is not given back three times in four); with one, a
        # call is a task of its own, so no slot waits held.
        self._budgeted = policy.calls_per_minute is not None or policy.daily_cap is not None
        unlimited = not self._budgeted and concurrency is None
        self._per_task = _CALLS_PER_TASK if unlimited else 1
        self._pool: ThreadPoolExecutor | None = None
        self._running: dict[Future[int], Lane] = {}
        self._turn = 0  # which lane goes first in the next round
        self._lanes_seen = 0  # lanes in the last claim
        self._served: set[Lane] = set()  # lanes of the last calls started
        self._rotated_at = time.monotonic()
        self._claimed_at = 0.0  # when a round last claimed (monotonic)

    def run_once(self, wait_for_calls: bool = True) -> int:
        """One round; returns how many deliveries it settled (0: nothing due, the budget is
        spent for longer than `wait_max_s`, or the lanes' calls run past `lane_wait_s`).
        `wait_for_calls=False`: the calls are started and the round returns at once (the
        caller has other work, acceptance, to do meanwhile; a later round counts them);
        for an ERP whose calls are budgeted (per minute, per day) none is started then,
        only what ended is counted: a call started mid-acceptance would carry part of a
        batch and spend a whole call of the budget on it."""
        if not wait_for_calls:
            if self._budgeted:
                return self._reap()
            return self._start_between()
        settled = self._reap() + self._start()
        began = claimed_at = time.monotonic()
        while settled == 0 and self._running:
            now = time.monotonic()
            if now - began >= self._policy.lane_wait_s:
                break
            wait(list(self._running), return_when=FIRST_COMPLETED,
                 timeout=min(_CLAIM_EVERY_S, self._policy.lane_wait_s - (now - began)))
            settled += self._reap()
            if settled == 0 and time.monotonic() - claimed_at >= _CLAIM_EVERY_S:
                settled += self._start()  # lanes with room: new deliveries, or idle lanes
                claimed_at = time.monotonic()
        return settled

    def _start_between(self) -> int:
        """A round that does not wait: what ended is counted, and calls are started when
        a call ended, none is out, or `_CLAIM_EVERY_S` passed since the last claim (for the
        lanes with room while others' calls are out, as often as a waiting round would:
        a claim that skips the busy lanes reads past their backlog)."""
        out = len(self._running)
        settled = self._reap()
        quiet = time.monotonic() - self._claimed_at < _CLAIM_EVERY_S
        if self._running and len(self._running) == out and quiet:
            return settled
        return settled + self._start()

    def busy(self) -> bool:
        """Whether calls are still out (a later round records their outcomes)."""
        return bool(self._running)

    def _reap(self) -> int:
        """What the calls that ended settled (an error of one is a defect: re-raised)."""
        ended = [f for f in self._running if f.done()]
        for future in ended:
            del self._running[future]
        return sum(f.result() for f in ended)

    def _start(self) -> int:
        """Claim for the lanes with room and start their calls; returns how many
        deliveries were settled without a call."""
        room = self._threads - len(self._running)
        busy = Counter(self._running.values())
        full = [lane for lane, n in busy.items() if n >= self._lane_cap]
        if room <= 0 or not self._ready(full):
            return 0
        limit = self._policy.claim_max
        lane_max: int | None = None
        if self._planner is None:
            if not self._budgeted:  # room for the lanes seen last, and one more
                wanted = min(room, (self._lanes_seen + 1) * self._lane_cap)
                limit = min(limit, wanted * self._batch * max(self._per_task, _CLAIM_SLACK))
            # A budgeted ERP's claim looks as far as `claim_max`, so that a lane's call is full
            # whenever its lane has that many due: in a narrower look-ahead, a lane behind
            # another's backlog found one or two of its deliveries and spent a whole call of
            # the budget on them (its calls are few, so a longer look-ahead costs little).
            # What the calls of one idle lane can carry (`_trimmed`): no more is leased.
            lane_max = min(room, self._lane_cap) * self._per_task * self._batch
        self._claimed_at = time.monotonic()
        claimed = self._claim(limit, full, lane_max)
        if not claimed:
            return 0
        self._lanes_seen = len({d.lane for d in claimed})
        back: list[int] = []
        if self._planner is None:
            claimed, back = self._trimmed(claimed, room, busy)
        items, alone, settled, held = self._items(claimed)
        held += back
        planned, more = self._plan(items)
        calls = calls_of(planned, self._batch) + [LedgerCall(d.lane, "", alone=(d, env))
                                                  for d, env in alone]
        chosen = self._granted(self._chosen(calls, room, busy))
        given = {i for task in chosen for call, _ in task for i in call.delivery_ids()}
        held += [i for call in calls for i in call.delivery_ids() if i not in given]
        if settled or more:
            self._worker.record_all(settled + more)
        if held:
            with transaction(self._engine) as conn:
                outbox.release(conn, held, self._owner)
        for task in chosen:
            self._running[self._executor().submit(self._run, task)] = task[0][0].lane
        if chosen:
            self._served = {task[0][0].lane for task in chosen}
        return len(settled) + len(more)

    def _claim(self, limit: int, full: Sequence[Lane],
               lane_max: int | None) -> list[outbox.Delivery]:
        """Due deliveries of the lanes with room, at most `lane_max` of each. Claims go in
        delivery order, so a lane with a backlog would fill every claim while its calls are
        quick; every `_ROTATE_EVERY_S` a claim skips the lanes served last (claiming again
        without, if that finds nothing), so a lane behind another's backlog waits that long
        at most."""
        now = time.monotonic()
        rotate = bool(self._served) and now - self._rotated_at >= _ROTATE_EVERY_S
        with transaction(self._engine) as conn:
            if rotate:
                self._rotated_at = now
                claimed = self._worker.claim(conn, self._lease_s, limit, only=(self.system,),
                                             skip_lanes=[*full, *self._served],
                                             lane_max=lane_max)
                if claimed:
                    return claimed
            return self._worker.claim(conn, self._lease_s, limit, only=(self.system,),
                                      skip_lanes=full, lane_max=lane_max)

    def _trimmed(self, claimed: Sequence[outbox.Delivery], room: int, busy: Mapping[Lane, int]
                 ) -> tuple[list[outbox.Delivery], list[int]]:
        """What the calls that can start now may carry, per lane, and the rest, to give back
        (before its events are read: a round reads only what it may send)."""
        per_lane: Counter[Lane] = Counter()
        kept: list[outbox.Delivery] = []
        back: list[int] = []
        for delivery in claimed:
            lane = delivery.lane
            calls = min(room, max(0, self._lane_cap - busy.get(lane, 0))) * self._per_task
            if per_lane[lane] < calls * self._batch:
                per_lane[lane] += 1
                kept.append(delivery)
            else:
                back.append(delivery.id)
        return kept, back

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads,
                                            thread_name_prefix=f"post-{self.system}")
        return self._pool

    def _chosen(self, calls: Sequence[LedgerCall], room: int,
                busy: Mapping[Lane, int]) -> list[list[LedgerCall]]:
        """The tasks to start now, one thread each, of one lane each: lanes take turns for
        the `room` threads (the first lane changes every round), a lane has at most
        `_lane_cap` tasks out, a task makes up to `_per_task` calls one after the other.
        The other calls are given back."""
        by_lane: dict[Lane, list[list[LedgerCall]]] = {}
        for call in calls:
            tasks = by_lane.setdefault(call.lane, [])
            if not tasks or len(tasks[-1]) >= self._per_task:
                tasks.append([])
            tasks[-1].append(call)
        lanes = list(by_lane)
        if lanes:
            self._turn = (self._turn + 1) % len(lanes)
            lanes = lanes[self._turn:] + lanes[:self._turn]
        for lane in lanes:
            by_lane[lane] = by_lane[lane][:max(0, self._lane_cap - busy.get(lane, 0))]
        chosen: list[list[LedgerCall]] = []
        for depth in range(max((len(t) for t in by_lane.values()), default=0)):
            chosen += [by_lane[lane][depth] for lane in lanes if depth < len(by_lane[lane])]
        return chosen[:room]

    def _granted(self, tasks: Sequence[Sequence[LedgerCall]]
                 ) -> list[list[tuple[LedgerCall, Grant]]]:
        """Each task's calls with the grants the budget gives now, taken in the lanes'
        turn (so that a budget too small for every lane goes round them); the calls
        without one are given back."""
        granted: list[list[tuple[LedgerCall, Grant]]] = []
        for task in tasks:
            mine: list[tuple[LedgerCall, Grant]] = []
            for call in task:
                grant = self._budget.take()
                if isinstance(grant, Wait):
                    self.waiting_for = grant
                    log.info("%s: calls wait for the budget (%s, %.0f s)", self.system,
                             grant.limit, grant.seconds)
                    return [*granted, mine] if mine else granted
                mine.append((call, grant))
            granted.append(mine)
        return granted

    def _run(self, task: Sequence[tuple[LedgerCall, Grant]]) -> int:
        """A task's calls one after the other, then their outcomes, recorded together (one
        transaction for the task, not one per call), then the grants given back. A defect
        in a call still records what the calls before it answered."""
        attempts: list[Attempt] = []
        # Outcomes are recorded after the last call: a slow ERP's calls must not outlast
        # the task's leases.
        grants = [grant for _, grant in task]
        keep = self._worker.keeper([i for call, _ in task for i in call.delivery_ids()],
                                   self._lease_s, lambda until: self._budget.extend(
                                       grants, until))
        try:
            with keep.during():
                for call, _ in task:
                    keep.tick()
                    attempts += self._make(call)
        finally:
            try:
                if attempts:
                    self._worker.record_all(attempts)
            finally:
                for _, grant in task:
                    self._budget.release(grant)
        return len(attempts)

    def _make(self, call: LedgerCall) -> list[Attempt]:
        """One call's attempts (a pause of the budget when the ERP asks for one)."""
        if call.alone is not None:
            delivery, env = call.alone
            return [self._worker.attempt(delivery, env)]
        outcomes = self._caller.answer(call)
        self._budget.spend(call.made - 1)
        attempts: list[Attempt] = []
        for planned, outcome in zip(call.planned, outcomes, strict=True):
            if isinstance(outcome, TransientError) and outcome.retry_after_s:
                self._budget.pause(outcome.retry_after_s)
            attempts += [self._caller.attempt(item, planned, outcome)
                         for item in planned.members]
        return attempts

    def _plan(self, items: Sequence[Item]) -> tuple[list[Planned], list[Attempt]]:
        """What to post for the round's items, and the attempts settled without a call."""
        if self._planner is not None:
            return self._planner.plan(items)
        return [Planned(self._posting(i), (i,)) for i in items], []

    def budget_wait(self) -> Wait | None:
        """What the posting budget holds calls back for now, if anything (a look)."""
        return self._budget.waiting()

    def _ready(self, full: Sequence[Lane]) -> bool:
        """Whether calls may go out now; waits while the minute's budget, the day's cap or
        the ERP's pause holds them and something is due (nothing is leased while waiting)."""
        waiting = self.budget_wait()
        if waiting is None:
            self.waiting_for = None
            return True
        with reading(self._engine) as conn:
            if not outbox.any_due(conn, self._clock(), (self.system,), skip_lanes=full,
                                  partitions=self._worker.partitions()):
                return False
        waited = 0.0
        while waiting is not None and waited < self._policy.wait_max_s:
            pause = min(max(waiting.seconds, 0.001), self._policy.wait_max_s - waited)
            self._sleep(pause)
            waited += pause
            waiting = self._budget.waiting()
        self.waiting_for = waiting
        return waiting is None

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

def buffers_for(engine: Engine, targets: Mapping[str, Target],
                ledgers: Mapping[str, tuple[LedgerPort, BufferPolicy]], worker: DeliveryWorker,
                lease_s: float, clock: Callable[[], datetime],
                owner: str) -> list[PostingBuffer]:
    """One buffer per ERP target (the worker must skip those targets)."""
    return [PostingBuffer(engine, targets[name], port, worker, policy, clock, owner, lease_s)
            for name, (port, policy) in ledgers.items()]
