"""The hub's service API: what the CLI, the HTTP API and the demo call.

Rules:
- Status is honest (`hub.status`): every unresolved exception is counted with its money at
  stake; an unknown filter value is refused.
- Waiting for retries is bounded: `run_until_settled` sleeps only until the next retry that
  falls within its budget, and says what is still waiting when it returns.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine

from finsync.connectors.ports import LedgerPort
from finsync.domain.errors import ExceptionClass
from finsync.domain.events import CATALOGUE, EventType
from finsync.domain.status import UNRESOLVED, DeliveryStatus, ExceptionStatus, RawStatus
from finsync.hub import exception_view, held_invoice
from finsync.hub.acceptance import Acceptance
from finsync.hub.buffer import BufferPolicy, buffers_for
from finsync.hub.delivery import DeliveryWorker
from finsync.hub.handover import Handover
from finsync.hub.intake import Intake, Mapped
from finsync.hub.mapping import MapperRegistry
from finsync.hub.milestone import BOOKED, SCHEDULED
from finsync.hub.processor import Processor
from finsync.hub.replay import ReplayFilter, ReplayResult, replay
from finsync.hub.settings import HubSettings
from finsync.hub.status import (
    LISTING_MAX,
    UNRESOLVED_FILTER,
    BudgetWait,
    ExceptionListing,
    HeldForTax,
    HubStatus,
    Waiting,
    at_stake_groups,
    at_stake_total,
    held_for_tax,
    parse_class_filter,
    parse_status_filter,
)
from finsync.hub.target import Target
from finsync.hub.wakeup import Wakeup, wakeup_for
from finsync.storage import (
    call_log,
    event_log,
    exception_log,
    jsonutil,
    measures,
    milestone_log,
    outbox,
    raw_log,
    usage_log,
)
from finsync.storage.call_log import LoggedCall
from finsync.storage.db import reading
from finsync.storage.raw_log import RawIn

Progress = Callable[[str, int, int], None]  # (stage, done, total)
# A source that pushes (an embedded system's outbox): called with a sender that returns only
# after the hub committed the raw events; returns how many it sent.
SourcePump = Callable[[Callable[[Sequence[bytes]], object]], int]


@dataclass(frozen=True, slots=True)
class Delivered:
    """A delivery done: the correlation it belongs to, where it went, the id the target
    gave its effect (a ledger's journal entry, an ERP's party, a revenue contract) and the
    type of the event delivered."""

    correlation_id: str
    target: str
    external_id: str
    event_type: EventType

    @property
    def posting(self) -> bool:
        """Whether it booked something (a customer master's party books nothing)."""
        return self.event_type is not EventType.CUSTOMER_UPSERTED


@dataclass(frozen=True, slots=True)
class RunSummary:
    raw_processed: int
    outcomes: Mapping[str, int]
    deliveries_attempted: int
    overdue_flagged: int

    def plus(self, other: RunSummary) -> RunSummary:
        outcomes = Counter(self.outcomes)
        outcomes.update(other.outcomes)
        return RunSummary(self.raw_processed + other.raw_processed, dict(outcomes),
                          self.deliveries_attempted + other.deliveries_attempted,
                          self.overdue_flagged + other.overdue_flagged)


class Hub:
    def __init__(self, engine: Engine, settings: HubSettings, mappers: MapperRegistry,
                 targets: Mapping[str, Target], clock: Callable[[], datetime],
                 worker_id: str, pumps: Mapping[str, SourcePump] | None = None,
                 ledgers: Mapping[str, tuple[LedgerPort, BufferPolicy]] | None = None) -> None:
        self.engine, self.settings, self.clock = engine, settings, clock
        self.mappers = mappers
        mapped = Mapped()  # what intake mapped, handed to the processor
        self.handover = handover = Handover()  # what the processor accepted, to delivery
        self.intake = Intake(engine, mappers, clock, mapped)
        self.processor = Processor(engine, mappers, Acceptance(settings), clock,
                                   settings.intake_batch_size, mapped, handover)
        self.worker = DeliveryWorker(engine, targets, settings.delivery, clock, worker_id,
                                     skip_targets=set(ledgers or {}), handover=handover)
        self.buffers = buffers_for(engine, targets, ledgers or {}, self.worker,
                                   settings.delivery.lease_s, clock, worker_id)  # ERPs
        self.pumps = dict(pumps or {})
        self._targets = frozenset(targets) | frozenset(ledgers or {})
        # Whoever commits raw events calls `wakeup.notify(count)` after the commit; the
        # pipeline worker sleeps on it (`hub.pipeline`, `hub.wakeup`).
        self.wakeup: Wakeup = wakeup_for(engine)

    def pump(self) -> int:
        """Take in what push sources hold (their outbox), stored like any raw event."""
        return sum(pump(self._sender(source)) for source, pump in self.pumps.items())

    def _sender(self, source: str) -> Callable[[Sequence[bytes]], int]:
        def send(bodies: Sequence[bytes]) -> int:
            return self.store(source, bodies, {"x-finsync-pump": source})
        return send

    def store(self, source: str, bodies: Sequence[bytes], headers: Mapping[str, str]) -> int:
        """Store bodies as raw events of `source` in one transaction; returns after the
        commit (files, pollers, pushed outboxes: they are mapped when the pipeline runs)."""
        stored = self.intake.store([RawIn(source, body, headers) for body in bodies])
        if stored:
            self.wakeup.notify(stored)
        return stored

    def run_until_idle(self, progress: Progress | None = None) -> RunSummary:
        """Process every stored raw event and deliver everything that is due now.

        Acceptance and delivery take turns, one bounded batch each: under a backlog of raw
        events, deliveries go out as the events are accepted instead of after all of
        them, so an event's lag does not grow with the backlog behind it. While raw events
        wait, an ERP's calls are started and acceptance goes on while they are out (their
        outcomes are counted by a later round); once none waits, each round waits for them."""
        outcomes: Counter[str] = Counter()
        self.pump()
        attempted = 0
        overdue: int | None = None  # flagged once, when intake first runs dry
        while True:
            batch = self.processor.process_batch()
            if batch:
                outcomes.update(batch)
                if progress:
                    progress("intake", outcomes["raw"], outcomes["raw"] + self._raw_waiting())
            elif overdue is None:
                overdue = self.processor.flag_overdue()
                self.processor.resolve_remapped()
            sent = self.deliver_once(wait_for_calls=not batch)
            if sent:
                attempted += sent
                if progress:
                    progress("delivery", attempted, attempted + self._deliveries_waiting())
            if not batch and not sent:
                return RunSummary(outcomes.pop("raw", 0), dict(outcomes), attempted,
                                  overdue or 0)

    def deliver_once(self, wait_for_calls: bool = True) -> int:
        """One round of every delivery path (the worker, each ERP's buffer); returns how
        many deliveries it settled (`wait_for_calls`: `PostingBuffer.run_once`'s)."""
        return self.worker.run_once() + sum(b.run_once(wait_for_calls) for b in self.buffers)

    def run_until_settled(self, wait_max_s: float, progress: Progress | None = None, *,
                          sleep: Callable[[float], None] = time.sleep,
                          on_wait: Callable[[Waiting, float], None] | None = None
                          ) -> tuple[RunSummary, Waiting]:
        """Run until idle; then, while a retry falls due within `wait_max_s` from now, sleep
        until it (telling `on_wait` what waits and for how long) and run again. Returns the
        work done and what is still waiting."""
        deadline = self.clock() + timedelta(seconds=wait_max_s)
        before: Counter[str] = Counter()  # what earlier rounds did, so the bar adds up

        def cumulative(stage: str, count: int, total: int) -> None:
            if progress:
                progress(stage, before[stage] + count, before[stage] + total)

        summary = self.run_until_idle(cumulative)
        while True:
            waiting = self.waiting()
            wake = self._next_wake(waiting)
            if wake is None or wake > deadline:
                return summary, waiting
            delay_s = max(0.0, (wake - self.clock()).total_seconds())
            if on_wait:
                on_wait(waiting, delay_s)
            sleep(delay_s)
            before = Counter(intake=summary.raw_processed,
                             delivery=summary.deliveries_attempted)
            summary = summary.plus(self.run_until_idle(cumulative))

    def _next_wake(self, waiting: Waiting) -> datetime | None:
        """When to run again: soon, when a delivery is due and could be taken but was held
        back (a target's call budget); else at the next retry."""
        now = self.clock()
        with reading(self.engine) as conn:
            takeable = bool(self._targets) and outbox.any_due(conn, now, self._targets)
        if takeable:
            return now + timedelta(seconds=POLL_S)
        return waiting.next_retry_at

    def waiting(self) -> Waiting:
        """What is not delivered yet: retries to come, due ones not taken, leased ones."""
        with reading(self.engine) as conn:
            return Waiting(*outbox.waiting_counts(conn, self.clock()))

    def _raw_waiting(self) -> int:
        with reading(self.engine) as conn:
            return raw_log.counts(conn).get(RawStatus.RECEIVED, 0)

    def _deliveries_waiting(self) -> int:
        with reading(self.engine) as conn:
            return outbox.outstanding(conn)

    def replay(self, selection: ReplayFilter, progress: Progress | None = None, *,
               actor: str | None = None, reason: str = "") -> ReplayResult:
        """Send the selected events' deliveries again, streaming the log in pages; a
        person's replay (`actor`, a principal id) is audited page by page."""
        return replay(self.engine, self.settings, selection, self.clock(), progress=progress,
                      actor=actor, reason=reason)

    def delivered(self, targets: Collection[str]) -> list[Delivered]:
        """Every delivery done to one of `targets`, in delivery order."""
        with reading(self.engine) as conn:
            rows = outbox.done_results(conn, targets)
        return [Delivered(c, t, str(jsonutil.loads(result)["external_id"]), EventType(e))
                for c, t, result, e in rows]

    def status_report(self) -> HubStatus:
        """Counts of every record, every unresolved exception with its money at stake, and
        what still waits to be delivered."""
        with reading(self.engine) as conn:
            threads, declined = measures.dunning(conn)
            return HubStatus(
                raw_events=raw_log.counts(conn),
                events=event_log.counts(conn),
                duplicates_ignored=event_log.duplicate_count(conn),
                deliveries=outbox.counts(conn),
                exceptions=exception_log.counts(conn),
                unresolved=at_stake_groups(exception_log.at_stake_rows(conn, UNRESOLVED)),
                waiting=Waiting(*outbox.waiting_counts(conn, self.clock())),
                usage=usage_log.counts(conn),
                dunning={"threads": threads, "declined_attempts": declined},
                held_for_tax=_held_for_tax(conn),
                budget_waits=self.budget_waits(),
            )

    def budget_waits(self) -> tuple[BudgetWait, ...]:
        """The ERPs whose posting budget holds their calls back now (a look, nothing
        taken)."""
        return tuple(BudgetWait(b.system, wait.limit.value, wait.seconds)
                     for b in self.buffers if (wait := b.budget_wait()) is not None)

    def held_for_tax(self) -> HeldForTax:
        """Invoices held as drafts because their tax could not be computed."""
        with reading(self.engine) as conn:
            return _held_for_tax(conn)

    def status(self) -> dict[str, Any]:
        """`status_report` as JSON values."""
        return self.status_report().as_json()

    def exceptions(self, status: str | None = UNRESOLVED_FILTER,
                   exception_class: str | None = None) -> list[dict[str, Any]]:
        """The rows of `exception_listing` (default: every unresolved exception)."""
        return self.exception_listing(status, exception_class).rows

    def exception_listing(self, status: str | None = UNRESOLVED_FILTER,
                          exception_class: str | None = None, *,
                          can_read_pii: bool = False) -> ExceptionListing:
        """Exceptions by status (one status, `unresolved` or `all`) and class; an unknown
        value is refused (`UnknownFilterError`) with the allowed ones. Their texts hold
        personal data only for a reader who may see it (`exception_view`)."""
        statuses = parse_status_filter(status)
        klass = parse_class_filter(exception_class)
        every = len(statuses) == len(ExceptionStatus)
        with reading(self.engine) as conn:
            rows = [row for chosen in ((None,) if every else statuses)
                    for row in exception_log.listing(conn, status=chosen, exception_class=klass,
                                                     limit=LISTING_MAX)]
            groups = at_stake_groups(exception_log.at_stake_rows(conn, statuses, klass))
        rows.sort(key=lambda row: int(row["id"]))
        rows = [exception_view.texts(row, can_read_pii) for row in rows]
        unresolved = [g for g in groups if g.status in UNRESOLVED]
        return ExceptionListing(rows[:LISTING_MAX], sum(g.count for g in groups),
                                at_stake_total(unresolved))

    def exception_detail(self, exception_id: int, *,
                         can_read_pii: bool = False) -> dict[str, Any]:
        """One exception and the payload it is about, its personal data only for a reader
        who may see it (`exception_view`); `UnknownExceptionError` for an unknown id."""
        with reading(self.engine) as conn:
            return exception_view.detail(conn, exception_id, can_read_pii)

    def timeline(self, correlation_id: str) -> list[dict[str, Any]]:
        with reading(self.engine) as conn:
            return milestone_log.timeline(conn, correlation_id)

    def calls(self, correlation_id: str) -> list[LoggedCall]:
        """Every external call made for `correlation_id`, to every system, oldest first."""
        with reading(self.engine) as conn:
            return call_log.for_correlation(conn, correlation_id)

    def correlation_exceptions(self, correlation_id: str, *,
                               can_read_pii: bool = False) -> list[dict[str, Any]]:
        """The exceptions raised for one correlation id (resolved ones too), oldest first,
        their texts as this reader may see them."""
        with reading(self.engine) as conn:
            rows = exception_log.for_correlation(conn, correlation_id)
        return [exception_view.texts(row, can_read_pii) for row in rows]

    def correlations_of(self, object_id: str) -> list[dict[str, Any]]:
        """The correlation ids `object_id` names: itself when events carry it, and those of
        the events about an object of that id (an invoice, a contract, a payment, …)."""
        types = sorted({cls.aggregate_type for cls in CATALOGUE.values()})
        with reading(self.engine) as conn:
            itself = event_log.correlation_extent(conn, object_id)
            found = event_log.correlations_of(conn, object_id, types)
        return ([itself] if itself is not None else []) + [
            f for f in found if f["correlation_id"] != object_id]

    def systems_status(self, correlation_id: str) -> list[dict[str, Any]]:
        """Per system the correlation id's deliveries went to: their technical status (as
        `transaction_status` says it for all of them) and counts by status."""
        with reading(self.engine) as conn:
            found = measures.correlation_deliveries_by_target(conn, correlation_id)
        return [{"system": system, "technical": _technical(counts), "deliveries": counts}
                for system, counts in sorted(found.items())]

    def transaction_status(self, correlation_id: str) -> dict[str, Any]:
        """Where one correlation id stands, technically (are its deliveries done?) and
        financially (did its effects reach the books, and what is still at stake?)."""
        with reading(self.engine) as conn:
            deliveries = measures.correlation_deliveries(conn, correlation_id)
            raised = measures.correlation_exceptions(conn, correlation_id)
            milestones = {m["name"] for m in milestone_log.timeline(conn, correlation_id)}
            in_dunning, _ = measures.dunning(conn, correlation_id)
        return {"technical": _technical(deliveries), "deliveries": deliveries,
                "financial": _financial(milestones, raised),
                "dunning": bool(in_dunning),
                "unresolved_exceptions": [e["class"] for e in raised
                                          if e["status"] in UNRESOLVED]}


def _technical(deliveries: Mapping[str, int]) -> str:
    if not deliveries:
        return "no_deliveries"
    if deliveries.get(DeliveryStatus.FAILED) or deliveries.get(DeliveryStatus.DEAD):
        return "failed"
    if deliveries.get(DeliveryStatus.PENDING) or deliveries.get(DeliveryStatus.IN_FLIGHT):
        return "in_progress"
    return "delivered"


def _financial(milestones: set[str], raised: Sequence[Mapping[str, Any]]) -> str:
    """`at_risk` while an exception of it is unresolved; `booked` once the ERP holds its
    postings; `recognised` once the revenue engine has its schedule too."""
    if any(e["status"] in UNRESOLVED for e in raised):
        return "at_risk"
    booked = bool(milestones & BOOKED)
    scheduled = bool(milestones & SCHEDULED)
    if booked and scheduled:
        return "booked_and_recognised"
    return "booked" if booked else "recognised" if scheduled else "pending"


POLL_S = 1.0  # how soon to look again at a delivery held back by a call budget


def _held_for_tax(conn: Connection) -> HeldForTax:
    return held_for_tax(exception_log.unresolved_at_stake_by_prefix(
        conn, ExceptionClass.TAX_FAILURE, held_invoice.FINGERPRINT))
