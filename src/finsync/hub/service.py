"""The hub's service API: what the CLI, the HTTP API and the demo call.

Rules:
- Status is honest: every exception that is not resolved (open, retrying, awaiting approval)
  is counted with its money at stake per currency; no caller picks one status to show.
- A filter value that names no status or class is refused with the allowed values; it never
  means "nothing matches".
- Waiting for retries is bounded: `run_until_settled` sleeps only until the next retry that
  falls within its budget, and says what is still waiting when it returns.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from finsync.connectors.ports import LedgerPort
from finsync.domain.errors import DomainError, ExceptionClass
from finsync.domain.money import Money
from finsync.domain.status import UNRESOLVED, DeliveryStatus, ExceptionStatus, RawStatus
from finsync.hub.acceptance import Acceptance
from finsync.hub.buffer import BufferPolicy, buffers_for
from finsync.hub.delivery import DeliveryWorker
from finsync.hub.intake import Intake, Mapped
from finsync.hub.mapping import MapperRegistry
from finsync.hub.milestone import BOOKED, SCHEDULED
from finsync.hub.processor import Processor
from finsync.hub.replay import ReplayFilter, ReplayResult, replay
from finsync.hub.settings import HubSettings
from finsync.hub.target import Target
from finsync.storage import (
    event_log,
    exception_log,
    jsonutil,
    measures,
    milestone_log,
    outbox,
    raw_log,
)
from finsync.storage.db import reading, transaction
from finsync.storage.raw_log import RawIn
from finsync.storage.schema import deliveries, exceptions

Progress = Callable[[str, int, int], None]  # (stage, done, total)
# A source that pushes (an embedded system's outbox): called with a sender that returns only
# after the hub committed the raw events; returns how many it sent.
SourcePump = Callable[[Callable[[Sequence[bytes]], object]], int]


@dataclass(frozen=True, slots=True)
class Delivered:
    """A delivery done: the correlation it belongs to, where it went and the id the target
    gave its effect (a ledger's journal entry, a revenue contract)."""

    correlation_id: str
    target: str
    external_id: str


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


class UnknownFilterError(DomainError):
    """A filter value that names no exception status or class; the message lists the
    allowed values (`unknown_status`, `unknown_exception_class`)."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


# What `status=` of an exception listing accepts besides one ExceptionStatus.
UNRESOLVED_FILTER = "unresolved"
ALL_FILTER = "all"
STATUS_FILTERS = (UNRESOLVED_FILTER, *(s.value for s in ExceptionStatus), ALL_FILTER)
LISTING_MAX = 500  # rows of one listing; its count and money at stake cover every match


def parse_status_filter(status: str | None) -> tuple[ExceptionStatus, ...]:
    """The statuses a filter value selects: one status, `unresolved` (open, retrying,
    awaiting approval) or `all` (None too)."""
    if status is None or status == ALL_FILTER:
        return tuple(ExceptionStatus)
    if status == UNRESOLVED_FILTER:
        return UNRESOLVED
    if status in set(ExceptionStatus):
        return (ExceptionStatus(status),)
    raise UnknownFilterError(f"unknown exception status {status!r}; allowed: "
                             f"{', '.join(STATUS_FILTERS)}", code="unknown_status")


def parse_class_filter(name: str | None) -> ExceptionClass | None:
    """The class a filter value names (None: every class)."""
    if name is None:
        return None
    if name in set(ExceptionClass):
        return ExceptionClass(name)
    raise UnknownFilterError(f"unknown exception class {name!r}; allowed: "
                             f"{', '.join(c.value for c in ExceptionClass)}",
                             code="unknown_exception_class")


@dataclass(frozen=True, slots=True)
class AtStake:
    """The exceptions of one status and class: how many, and their money at stake per
    currency (an exception without an amount is counted and adds nothing)."""

    status: ExceptionStatus
    exception_class: str
    count: int
    amounts: Mapping[str, Money] = field(default_factory=dict)


def at_stake_total(groups: Collection[AtStake]) -> dict[str, Money]:
    """Money at stake per currency over `groups`."""
    total: dict[str, Money] = {}
    for group in groups:
        for currency, amount in group.amounts.items():
            total[currency] = total.get(currency, Money.zero(currency)) + amount
    return dict(sorted(total.items()))


def _money_json(amounts: Mapping[str, Money]) -> dict[str, str]:
    return {currency: str(m.amount) for currency, m in sorted(amounts.items())}


def _totals_json(groups: Sequence[AtStake], key: Callable[[AtStake], str]
                 ) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = {}
    for name in sorted({key(g) for g in groups}):
        chosen = [g for g in groups if key(g) == name]
        result[name] = {"count": sum(g.count for g in chosen),
                        "at_stake": _money_json(at_stake_total(chosen))}
    return result


@dataclass(frozen=True, slots=True)
class Waiting:
    """Deliveries not settled yet: `retrying` wait for a later attempt (the first at
    `next_retry_at`); `due` are due now but not delivered (no run since, an earlier delivery
    of their aggregate that failed, or a target's call budget); `in_flight` are leased."""

    retrying: int = 0
    next_retry_at: datetime | None = None
    due: int = 0
    in_flight: int = 0

    @property
    def nothing(self) -> bool:
        return not (self.retrying or self.due or self.in_flight)

    def as_json(self) -> dict[str, Any]:
        return {"retrying": self.retrying, "next_retry_at": _iso(self.next_retry_at),
                "due": self.due, "in_flight": self.in_flight}


@dataclass(frozen=True, slots=True)
class HubStatus:
    """Counts of every record, the unresolved exceptions with their money at stake, and
    what is still waiting to be delivered."""

    raw_events: Mapping[str, int]
    events: Mapping[str, int]
    deliveries: Mapping[str, int]
    duplicates_ignored: int
    exceptions: Mapping[str, Mapping[str, int]]  # status -> class -> count, every status
    unresolved: tuple[AtStake, ...]  # one per (status, class) not resolved
    waiting: Waiting

    @property
    def unresolved_count(self) -> int:
        return sum(g.count for g in self.unresolved)

    @property
    def at_stake(self) -> dict[str, Money]:
        return at_stake_total(self.unresolved)

    def as_json(self) -> dict[str, Any]:
        unresolved = {
            "count": self.unresolved_count,
            "at_stake": _money_json(self.at_stake),
            "by_status": _totals_json(self.unresolved, lambda g: g.status.value),
            "by_class": _totals_json(self.unresolved, lambda g: g.exception_class),
            "items": [{"status": g.status.value, "class": g.exception_class,
                       "count": g.count, "at_stake": _money_json(g.amounts)}
                      for g in self.unresolved],
        }
        return {"raw_events": dict(self.raw_events), "events": dict(self.events),
                "deliveries": dict(self.deliveries),
                "duplicates_ignored": self.duplicates_ignored,
                "exceptions": {k: dict(v) for k, v in self.exceptions.items()},
                "unresolved_exceptions": unresolved,
                "waiting": self.waiting.as_json(),
                "next_retry_at": _iso(self.waiting.next_retry_at)}


@dataclass(frozen=True, slots=True)
class ExceptionListing:
    """Exceptions chosen by status and class, oldest first (at most `LISTING_MAX` rows);
    `count` and `at_stake` (unresolved ones only, per currency) cover every match."""

    rows: list[dict[str, Any]]
    count: int
    at_stake: Mapping[str, Money]

    def as_json(self) -> dict[str, Any]:
        return {"exceptions": self.rows, "count": self.count,
                "at_stake": _money_json(self.at_stake)}


class Hub:
    def __init__(self, engine: Engine, settings: HubSettings, mappers: MapperRegistry,
                 targets: Mapping[str, Target], clock: Callable[[], datetime],
                 worker_id: str, pumps: Mapping[str, SourcePump] | None = None,
                 ledgers: Mapping[str, tuple[LedgerPort, BufferPolicy]] | None = None) -> None:
        self.engine, self.settings, self.clock = engine, settings, clock
        self.mappers = mappers
        mapped = Mapped()  # what intake mapped, handed to the processor
        self.intake = Intake(engine, mappers, clock, mapped)
        self.processor = Processor(engine, mappers, Acceptance(settings), clock,
                                   settings.intake_batch_size, mapped)
        self.worker = DeliveryWorker(engine, targets, settings.delivery, clock, worker_id,
                                     skip_targets=set(ledgers or {}))
        self.buffers = buffers_for(engine, targets, ledgers or {}, self.worker,
                                   settings.delivery.lease_s, clock, worker_id)  # ERPs
        self.pumps = dict(pumps or {})
        self._targets = frozenset(targets) | frozenset(ledgers or {})

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
        return self.intake.store([RawIn(source, body, headers) for body in bodies])

    def run_until_idle(self, progress: Progress | None = None) -> RunSummary:
        """Process every stored raw event and deliver everything that is due now."""
        outcomes: Counter[str] = Counter()
        self.pump()
        while batch := self.processor.process_batch():
            outcomes.update(batch)
            if progress:
                progress("intake", outcomes["raw"], outcomes["raw"] + self._raw_waiting())
        overdue = self.processor.flag_overdue()
        attempted = 0
        while sent := self.worker.run_once() + sum(b.run_once() for b in self.buffers):
            attempted += sent
            if progress:
                progress("delivery", attempted, attempted + self._deliveries_waiting())
        return RunSummary(outcomes.pop("raw", 0), dict(outcomes), attempted, overdue)

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
            return _waiting(conn, self.clock())

    def _raw_waiting(self) -> int:
        with reading(self.engine) as conn:
            return raw_log.counts(conn).get(RawStatus.RECEIVED, 0)

    def _deliveries_waiting(self) -> int:
        with reading(self.engine) as conn:
            return outbox.outstanding(conn)

    def replay(self, selection: ReplayFilter) -> ReplayResult:
        with transaction(self.engine) as conn:
            return replay(conn, self.settings, selection, self.clock())

    def delivered(self, targets: Collection[str]) -> list[Delivered]:
        """Every delivery done to one of `targets`, in delivery order."""
        with reading(self.engine) as conn:
            rows = outbox.done_results(conn, targets)
        return [Delivered(c, t, str(jsonutil.loads(result)["external_id"]))
                for c, t, result in rows]

    def status_report(self) -> HubStatus:
        """Counts of every record, every unresolved exception with its money at stake, and
        what still waits to be delivered."""
        with reading(self.engine) as conn:
            return HubStatus(
                raw_events=raw_log.counts(conn),
                events=event_log.counts(conn),
                duplicates_ignored=event_log.duplicate_count(conn),
                deliveries=outbox.counts(conn),
                exceptions=exception_log.counts(conn),
                unresolved=_exception_groups(conn, UNRESOLVED, None),
                waiting=_waiting(conn, self.clock()),
            )

    def status(self) -> dict[str, Any]:
        """`status_report` as JSON values."""
        return self.status_report().as_json()

    def exceptions(self, status: str | None = UNRESOLVED_FILTER,
                   exception_class: str | None = None) -> list[dict[str, Any]]:
        """The rows of `exception_listing` (default: every unresolved exception)."""
        return self.exception_listing(status, exception_class).rows

    def exception_listing(self, status: str | None = UNRESOLVED_FILTER,
                          exception_class: str | None = None) -> ExceptionListing:
        """Exceptions by status (one status, `unresolved` or `all`) and class; an unknown
        value is refused (`UnknownFilterError`) with the allowed ones."""
        statuses = parse_status_filter(status)
        klass = parse_class_filter(exception_class)
        every = len(statuses) == len(ExceptionStatus)
        with reading(self.engine) as conn:
            rows = [row for chosen in ((None,) if every else statuses)
                    for row in exception_log.listing(conn, status=chosen, exception_class=klass,
                                                     limit=LISTING_MAX)]
            groups = _exception_groups(conn, statuses, klass)
        rows.sort(key=lambda row: int(row["id"]))
        unresolved = [g for g in groups if g.status in UNRESOLVED]
        return ExceptionListing(rows[:LISTING_MAX], sum(g.count for g in groups),
                                at_stake_total(unresolved))

    def timeline(self, correlation_id: str) -> list[dict[str, Any]]:
        with reading(self.engine) as conn:
            return milestone_log.timeline(conn, correlation_id)

    def transaction_status(self, correlation_id: str) -> dict[str, Any]:
        """Where one correlation id stands, technically (are its deliveries done?) and
        financially (did its effects reach the books, and what is still at stake?)."""
        with reading(self.engine) as conn:
            deliveries = measures.correlation_deliveries(conn, correlation_id)
            raised = measures.correlation_exceptions(conn, correlation_id)
            milestones = {m["name"] for m in milestone_log.timeline(conn, correlation_id)}
        return {"technical": _technical(deliveries), "deliveries": deliveries,
                "financial": _financial(milestones, raised),
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

# The two reads below would sit in storage/exception_log.py and storage/outbox.py; they are
# here while those modules change under other work of the same issue.


def _exception_groups(conn: Connection, statuses: Collection[ExceptionStatus],
                      klass: ExceptionClass | None) -> tuple[AtStake, ...]:
    """Exceptions of `statuses` (and `klass`), counted per status and class, with their
    money at stake summed per currency in the database (no listing limit applies)."""
    query = (select(exceptions.c.status, exceptions.c["class"], exceptions.c.currency,
                    func.count(), func.sum(exceptions.c.amount_minor))
             .where(exceptions.c.status.in_([s.value for s in statuses]))
             .group_by(exceptions.c.status, exceptions.c["class"], exceptions.c.currency))
    if klass is not None:
        query = query.where(exceptions.c["class"] == klass.value)
    counts: Counter[tuple[ExceptionStatus, str]] = Counter()
    amounts: dict[tuple[ExceptionStatus, str], dict[str, Money]] = {}
    for status, name, currency, n, minor in conn.execute(query):
        key = (ExceptionStatus(status), str(name))
        counts[key] += int(n)
        if currency is not None and minor is not None:
            amounts.setdefault(key, {})[str(currency)] = Money.from_minor(int(minor),
                                                                         str(currency))
    order = list(ExceptionStatus)
    keys = sorted(counts, key=lambda k: (order.index(k[0]), k[1]))
    return tuple(AtStake(s, k, counts[(s, k)], amounts.get((s, k), {})) for s, k in keys)


def _waiting(conn: Connection, now: datetime) -> Waiting:
    pending = deliveries.c.status == DeliveryStatus.PENDING
    retrying, next_at = conn.execute(
        select(func.count(), func.min(deliveries.c.next_attempt_at))
        .where(pending, deliveries.c.next_attempt_at > now)).one()
    due = conn.execute(select(func.count()).select_from(deliveries)
                       .where(pending, deliveries.c.next_attempt_at <= now)).scalar_one()
    in_flight = conn.execute(select(func.count()).select_from(deliveries)
                             .where(deliveries.c.status == DeliveryStatus.IN_FLIGHT)
                             ).scalar_one()
    return Waiting(int(retrying), next_at, int(due), int(in_flight))


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
