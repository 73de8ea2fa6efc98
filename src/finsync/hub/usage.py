"""Usage at volume: meter events in, one usage record per subscription item and billing
period out.

Rules:
- Intake (`receive`, `load`): a batch of meter events (`domain.meter`) is checked item by
  item within its source's limits, and its good items are stored durably in one transaction
  before the call returns; events sent again (same source and event id) are counted as
  duplicates, never stored twice (the unique key, `storage.usage_log`); one sent again with
  other values (quantity, product, subscription, time) is refused as `duplicate_event`,
  naming both: the first stands, and the difference is never dropped unseen. Refused items
  are answered with their index and code, and recorded as refusals aggregated per source
  and code (one exception each, counted; their items kept once as a JSON array).
- Only configured usage sources are taken (`unknown_source` otherwise).
- A source with a translator (Stripe's meter events: `connectors/stripe/meters.py`) has
  each item translated to finsync's shape first; an item it cannot translate is refused
  alone, with its code. A translator that cannot reach what it reads (`TransientError`)
  refuses the batch as a whole, nothing stored (the sender sends it again).
- Aggregation (`aggregate`): meter events are totalled in SQL per source, subscription,
  product and billing period: the periods usage is rated in, read from billing through the
  usage port (`UsagePort.usage_periods`) for the days of the events waiting. A period is
  totalled once it ended by `through` (`step`, the `serve` worker: the periods that ended
  at least `settle_s` ago, so that stragglers usually join its first total): one total per
  item and period, never one per day or per meter event. A day no period holds (a
  subscription billing does not know, a day before the term or after its end, or no
  billing configured) is a period of its own, so billing answers for it (and refuses it,
  with its code). A billing that cannot be read leaves every event waiting.
- Late events: an event whose period was already totalled joins the next run's total, a
  delta total of its own with its own record id; billing adds it to the period. If billing
  has rated that period already it refuses the delta (`usage_period_closed`): the total is
  `refused` and a `closed_period` exception asks finance for a memo. Nothing is re-rated
  silently.
- Hand-over (`hand_over`): each pending total is ONE billing usage record, idempotent by
  its record id (`usage_log.record_id`), dated the period's first day, marked `recorded`
  after billing committed it. A refusal marks it `refused` and opens an exception of
  billing's class, with the quantity and the code; a transient failure leaves it pending
  for the next round. Billing rates the period at its end (one `UsageRated` per line and
  period), which is what revenue receives.
- Intake reads a batch with the cyclic garbage collector paused (`finsync.collector`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Engine

from finsync import collector
from finsync.connectors.ports import DeliveryContext, UsagePort
from finsync.domain import json_limits, meter
from finsync.domain.clock import Period
from finsync.domain.errors import (
    ConnectorError,
    DomainError,
    ExceptionClass,
    MappingError,
    TransientError,
)
from finsync.domain.invoice import UsageRecord
from finsync.domain.limits import InputLimits
from finsync.domain.meter import MeterBatch, MeterEvent, RefusedItem, Translate
from finsync.hub.intake import Refusal, record_refusal
from finsync.storage import exception_log, usage_log
from finsync.storage.db import reading, serialize, transaction

LOAD_CHUNK = 10_000  # meter events per transaction when a file is loaded
HAND_OVER_BATCH = 200  # totals read per round of the hand-over
REFUSED_KEPT_MAX = 1_000  # refused items kept per request and code
DUPLICATE_EVENT = "duplicate_event"  # an id sent again with other values
# A source's translator for one batch (or one file): made afresh for each, so that what it
# reads (a Stripe account's meters and subscriptions) is read again at most once a batch.
Translators = Callable[[], Translate]


@dataclass(frozen=True, slots=True)
class UsageReceipt:
    """What happened to a batch: stored (new), duplicates (sent before), refused items."""

    stored: int
    duplicates: int
    refused: tuple[RefusedItem, ...]

    def plus(self, other: UsageReceipt) -> UsageReceipt:
        return UsageReceipt(self.stored + other.stored, self.duplicates + other.duplicates,
                            self.refused + other.refused)

    def as_json(self) -> dict[str, object]:
        return {"stored": self.stored, "duplicates": self.duplicates,
                "refused": [r.as_json() for r in self.refused]}


@dataclass(frozen=True, slots=True)
class AggregationRun:
    run_id: int
    through_day: date
    events: int
    totals: int


@dataclass(frozen=True, slots=True)
class HandOver:
    recorded: int
    refused: int
    waiting: int  # left pending after a transient failure


class UsageIntake:
    def __init__(self, engine: Engine, clock: Callable[[], datetime],
                 port: UsagePort | None, sources: Iterable[str],
                 limits_for: Callable[[str], InputLimits], *, settle_s: float = 3600.0,
                 translators: Mapping[str, Translators] | None = None) -> None:
        self.engine, self._clock, self._port = engine, clock, port
        self.sources = frozenset(sources)
        self._limits_for, self.settle_s = limits_for, settle_s
        self._translators = dict(translators or {})
        # (through day, newest event id) when `step` last aggregated: nothing more can be
        # totalled until the day moves or an event arrives for a day before it.
        self._stepped: tuple[date, int] | None = None

    def knows(self, source: str) -> bool:
        return source in self.sources

    def limits(self, source: str) -> InputLimits:
        return self._limits_for(source)

    def receive(self, source: str, body: bytes) -> UsageReceipt:
        """One HTTP batch (a JSON array or JSON lines); raises `MappingError` when the body
        as a whole cannot be read (the refusal recorded first)."""
        limits = self._limits_for(source)
        at = self._clock()
        try:
            self._require_source(source)
            json_limits.check_body(body, limits)
            with collector.paused():
                batch = meter.parse_batch(_text(body), limits, at.date(),
                                          self._translate(source))
        except MappingError as exc:
            record_refusal(self.engine, Refusal(source, exc, ExceptionClass.MAPPING_ERROR,
                                                 body), at)
            raise
        return self._store(source, batch, at)

    def load(self, source: str, lines: Iterable[str]) -> UsageReceipt:
        """Meter events as JSON lines (a file), stored `LOAD_CHUNK` at a time; each line is
        checked within the source's limits on its own."""
        self._require_source(source)
        limits = self._limits_for(source)
        translate = self._translate(source)
        receipt = UsageReceipt(0, 0, ())
        chunk: list[str] = []
        first = 0
        for line in lines:
            chunk.append(line)
            if len(chunk) == LOAD_CHUNK:
                receipt = receipt.plus(self._load_chunk(source, chunk, limits, first,
                                                        translate))
                first += len(chunk)
                chunk = []
        if chunk:
            receipt = receipt.plus(self._load_chunk(source, chunk, limits, first, translate))
        return receipt

    def _translate(self, source: str) -> Translate | None:
        make = self._translators.get(source)
        return None if make is None else make()

    def _load_chunk(self, source: str, lines: list[str], limits: InputLimits,
                    first: int, translate: Translate | None) -> UsageReceipt:
        at = self._clock()
        checked: list[str] = []
        too_big: list[RefusedItem] = []
        for offset, line in enumerate(lines):
            try:
                json_limits.check(line, limits)
            except MappingError as exc:
                too_big.append(RefusedItem(first + offset, None, exc.code, str(exc)))
                checked.append("")  # refused: read nothing of it
                continue
            checked.append(line)
        with collector.paused():
            batch = meter.read_lines(checked, limits, at.date(), first, translate)
        refused = tuple(sorted((*batch.refused, *too_big), key=lambda r: r.index))
        return self._store(source, MeterBatch(batch.events, refused, batch.indexes), at)

    def _require_source(self, source: str) -> None:
        if source not in self.sources:
            raise MappingError(f"no usage source named {source[:64]!r}", code="unknown_source")

    def _store(self, source: str, batch: MeterBatch, at: datetime) -> UsageReceipt:
        with transaction(self.engine) as conn:
            stored = usage_log.append(conn, source, batch.events, at)
            differing = []
            if stored < len(batch.events):  # some were sent before: with the same values?
                differing = usage_log.differing(conn, source, batch.events)
        changed = tuple(_changed(batch, position, first) for position, first in differing)
        refused = tuple(sorted((*batch.refused, *changed), key=lambda r: r.index))
        if refused:
            self._record_refused(source, refused, at)
        return UsageReceipt(stored, len(batch.events) - stored - len(changed), refused)

    def _record_refused(self, source: str, refused: tuple[RefusedItem, ...],
                        at: datetime) -> None:
        by_code: dict[str, list[RefusedItem]] = defaultdict(list)
        for item in refused:
            by_code[item.code].append(item)
        for code, items in by_code.items():
            kept = json.dumps([i.as_json() for i in items[:REFUSED_KEPT_MAX]]).encode()
            error = MappingError(f"{len(items)} meter event(s) refused, the first: "
                                 f"{items[0].message}", code=code)
            record_refusal(self.engine, Refusal(source, error, ExceptionClass.MAPPING_ERROR,
                                                 kept, {"x-finsync-usage": "refused items"},
                                                 "application/json"), at)

    def aggregate(self, through_day: date | None = None) -> AggregationRun:
        """Total every meter event not yet counted whose billing period ended by
        `through_day` (default: the periods that ended `settle_s` ago)."""
        at = self._clock()
        through = through_day or self._settled(at)
        with reading(self.engine) as conn:
            spans = usage_log.waiting_spans(conn, through)
        periods = (self._port.usage_periods(spans)
                   if self._port is not None and spans else {})
        with transaction(self.engine) as conn:
            serialize(conn, "finsync.usage.aggregate")
            run_id, events, totals = usage_log.aggregate(conn, through, at,
                                                         run_periods(spans, periods))
        return AggregationRun(run_id, through, events, totals)

    def hand_over(self) -> HandOver:
        """Give every pending total to billing, one usage record each."""
        if self._port is None:
            return HandOver(0, 0, self.pending())
        recorded = refused = 0
        while True:
            with reading(self.engine) as conn:
                totals = usage_log.pending_totals(conn, HAND_OVER_BATCH)
            for total in totals:
                outcome = self._record(self._port, total)
                if outcome is None:
                    return HandOver(recorded, refused, self.pending())
                recorded += outcome
                refused += 1 - outcome
            if len(totals) < HAND_OVER_BATCH:
                return HandOver(recorded, refused, 0)

    def _record(self, port: UsagePort, total: usage_log.UsageTotal) -> int | None:
        """1: recorded; 0: refused (exception opened); None: a transient failure."""
        record_id = usage_log.record_id(total)
        record = UsageRecord(record_id, total.subscription_id, total.product_id,
                             total.quantity, total.period.start)
        ctx = DeliveryContext(f"{record_id}:{port.system}", record_id,
                              f"usage:{total.subscription_id}")
        try:
            port.record_usage(record, ctx)
        except TransientError:
            return None
        except (DomainError, ConnectorError) as exc:
            self._refuse(total, record_id, exc)
            return 0
        with transaction(self.engine) as conn:
            usage_log.mark(conn, total.id, usage_log.RECORDED, self._clock())
        return 1

    def _refuse(self, total: usage_log.UsageTotal, record_id: str, exc: Exception) -> None:
        code = str(getattr(exc, "code", "refused"))
        klass = getattr(exc, "exception_class", ExceptionClass.MASTER_DATA_MISMATCH)
        if code == "usage_period_closed":
            klass = ExceptionClass.CLOSED_PERIOD
        at = self._clock()
        with transaction(self.engine) as conn:
            usage_log.mark(conn, total.id, usage_log.REFUSED, at, code, str(exc))
            exception_log.open_exception(conn, exception_log.NewException(
                ExceptionClass(klass), f"usage:total:{total.id}",
                f"usage {record_id} ({total.quantity} of {total.product_id} on "
                f"{total.subscription_id}, {total.period.start} to {total.period.end}, "
                f"{total.events} meter events) "
                f"refused by billing ({code}): {exc}",
                objects=(f"usage_total:{total.id}", f"subscription:{total.subscription_id}"),
                detail=code), at)

    def pending(self) -> int:
        with reading(self.engine) as conn:
            return usage_log.counts(conn).get(f"totals_{usage_log.PENDING}", 0)

    def counts(self) -> dict[str, int]:
        with reading(self.engine) as conn:
            return usage_log.counts(conn)

    def step(self, progressed: Callable[[], None]) -> int:
        """One round of the `serve` usage worker: total the settled periods, hand them over
        (a billing that cannot be read now is read again next round). The waiting events
        are read, and billing asked, only when something can have changed since the last
        round: the day moved, or an event arrived for a day before it (one of a period
        already ended); otherwise the round only hands over."""
        events = self._step_aggregate(progressed)
        handed = self.hand_over()
        return events + handed.recorded + handed.refused

    def _step_aggregate(self, progressed: Callable[[], None]) -> int:
        through = self._settled(self._clock())
        with reading(self.engine) as conn:
            newest = usage_log.newest_event_id(conn)
            last = self._stepped
            if last is not None and last[0] == through and not usage_log.arrived_before(
                    conn, last[1], through):
                return 0
        try:
            run = self.aggregate(through)
        except TransientError:
            return 0
        self._stepped = (through, newest)
        if run.totals:
            progressed()
        return run.events

    def _settled(self, at: datetime) -> date:
        """The default `through`: periods that ended `settle_s` before `at`."""
        return (at - timedelta(seconds=self.settle_s)).date()


def run_periods(spans: Mapping[str, Period],
                periods: Mapping[str, tuple[Period, ...]]) -> list[usage_log.RunPeriod]:
    """Per subscription, its span of waiting days cut into billing's periods (whole: a
    total is dated its period's first day, and the period is totalled once it ended) and,
    between them, days no period holds, each a period of its own (`daily`)."""
    cut: list[usage_log.RunPeriod] = []
    for sub, span in spans.items():
        day = span.start
        for period in periods.get(sub, ()):
            if period.end <= day or period.start >= span.end:
                continue  # not in the span (billing gives whole periods)
            if day < period.start:
                cut.append(usage_log.RunPeriod(sub, day, period.start, True))
            cut.append(usage_log.RunPeriod(sub, period.start, period.end, False))
            day = period.end
        if day < span.end:
            cut.append(usage_log.RunPeriod(sub, day, span.end, True))
    return cut


def _changed(batch: MeterBatch, position: int, first: MeterEvent) -> RefusedItem:
    """A meter event sent again under a stored id with other values: refused, never
    counted as a duplicate (the usage it claims would be lost without a word)."""
    sent = batch.events[position]
    return RefusedItem(
        batch.index_of(position), sent.id, DUPLICATE_EVENT,
        f"meter event {sent.id} is stored with quantity {first.quantity} of "
        f"{first.product_id} on {first.subscription_id} at {first.occurred_at.isoformat()}; "
        f"this one says {sent.quantity} of {sent.product_id} on {sent.subscription_id} at "
        f"{sent.occurred_at.isoformat()}: the first stands (send a correction under an id "
        "of its own)")


def _text(body: bytes) -> str:
    try:
        return json_limits.decode(body)
    except UnicodeDecodeError as exc:
        raise MappingError(f"body is not UTF-8 JSON: {exc}", code="invalid_json") from None
