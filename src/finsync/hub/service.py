"""The hub's service API: what the CLI, the HTTP API and the demo call."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from finsync.connectors.ports import LedgerPort
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

    def status(self) -> dict[str, Any]:
        with reading(self.engine) as conn:
            return {
                "raw_events": raw_log.counts(conn),
                "events": event_log.counts(conn),
                "duplicates_ignored": event_log.duplicate_count(conn),
                "deliveries": outbox.counts(conn),
                "exceptions": exception_log.counts(conn),
                "next_retry_at": _iso(outbox.next_due_at(conn)),
            }

    def exceptions(self, status: str | None = ExceptionStatus.OPEN,
                   exception_class: str | None = None) -> list[dict[str, Any]]:
        with reading(self.engine) as conn:
            return exception_log.listing(conn, status=status, exception_class=exception_class)

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


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
