"""Performance obligations as the engine keeps them: segments, components, revisions.

Rules:
- One obligation per contract line (id = line id); goods added by a modification accounted
  for as a separate contract get their own obligation (id = `<line id>+v<version>`, see
  `obligation_id`; states stored earlier keep `<line id>@v<version>`).
- The obligation's main allocation is a chain of segments. The segment in force at instant
  t is the last one applied whose `effective` instant is before t (inception: always).
  - A catch-up segment (no anchor): cumulative = total x progress(t).
  - A prospective segment (anchor d, base R = revenue recognised at d):
    cumulative = R + (total - R) x (progress(t) - progress(d)) / (1 - progress(d)).
  A price change or cumulative catch-up copies the segment in force with a new total (or
  measure), so what is already satisfied is caught up on its effective date.
- Period components are amounts allocated wholly to a distinct period of the obligation
  (606-10-32-40): variable consideration, SLA credits, usage. Each is recognised evenly over
  its own span from its effective instant on, added to the main allocation. A concession on
  what was already delivered, and uninstalled materials recognised at cost, are components
  of one day (`concession`, `measure`).
- Cost reports keep the inputs of a measure of progress from costs (`measure`).
- The allocated price of an obligation is the total of its last segment plus its components.
- A price concession (credit memo, refund, SLA credit) is tracked inside the amount it
  changes (`Segment.concession`, `PeriodComponent.concession`), so the revenue it reduces
  can be reported apart (`contra`).
- Every change appends a revision (version = the last revision's number plus one), naming
  the event and paragraph that caused it: that is how a revenue line traces back to its
  amendment. Numbers only grow: a rebuild numbers what it changed after every version
  already given out.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal

from finsync.domain.clock import Period
from finsync.domain.fingerprint import ADDED_LATER
from finsync.domain.money import Money, total
from finsync.systems.revrec.consideration import PriceBook, Step
from finsync.systems.revrec.pattern import RecognitionPattern


@dataclass(frozen=True, slots=True)
class ObligationBasis:
    """What the measure of progress runs on: the pattern and the units over time."""

    pattern: RecognitionPattern
    steps: tuple[Step, ...]
    book: PriceBook | None = None  # how billing prices the steps (None: stored before it)

    @property
    def start(self) -> date:
        return self.steps[0].span.start

    @property
    def end(self) -> date:
        return self.steps[-1].span.end

    @property
    def span(self) -> Period:
        return Period(self.start, self.end)

    @property
    def units_total(self) -> int:
        return self.steps[0].quantity


@dataclass(frozen=True, slots=True)
class Segment:
    total: Money
    basis: ObligationBasis
    effective: datetime | None = None
    anchor: datetime | None = None
    base: Money | None = None
    # The part of `total` (and of `base`) that is price concessions (`contra`); None: none
    # of its own (see `contra.concession_parts`).
    concession: Money | None = field(default=None, metadata=ADDED_LATER)
    concession_base: Money | None = field(default=None, metadata=ADDED_LATER)


@dataclass(frozen=True, slots=True)
class PeriodComponent:
    component_id: str
    amount: Money
    span: Period
    effective: datetime | None = None
    concession: bool = field(default=False, metadata=ADDED_LATER)  # a contra-revenue amount


@dataclass(frozen=True, slots=True)
class CostReport:
    """The inputs of one measure of progress from costs, and the measure they gave."""

    event_id: str
    as_of: date
    costs_incurred: Money
    total_expected_costs: Money
    uninstalled_materials: Money
    measure: Decimal


@dataclass(frozen=True, slots=True)
class Revision:
    version: int
    event_id: str
    cause: str
    effective: datetime | None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ObligationState:
    obligation_id: str
    line_id: str
    product_id: str
    group: str
    standalone_selling_price: Money
    stated_price: Money
    segments: tuple[Segment, ...]
    components: tuple[PeriodComponent, ...] = ()
    deliveries: tuple[tuple[date, int], ...] = ()
    progress_reports: tuple[tuple[date, Decimal], ...] = ()
    revisions: tuple[Revision, ...] = ()
    cost_reports: tuple[CostReport, ...] = ()

    @property
    def current(self) -> Segment:
        return self.segments[-1]

    @property
    def pattern(self) -> RecognitionPattern:
        return self.current.basis.pattern

    @property
    def currency(self) -> str:
        return self.stated_price.currency

    @property
    def allocated_price(self) -> Money:
        return self.current.total + total([c.amount for c in self.components], self.currency)

    @property
    def version(self) -> int:
        """The last revision's number: the count of revisions, unless a rebuild numbered
        its revisions after versions already given out (`order.carry_versions`)."""
        return self.revisions[-1].version if self.revisions else 0

    @property
    def last_day(self) -> date:
        """The last day anything of this obligation can be recognised (before events)."""
        ends = [self.current.basis.end, *(c.span.end for c in self.components)]
        return max(ends)

    def revised(self, event_id: str, cause: str, effective: datetime | None,
                detail: str = "") -> ObligationState:
        revision = Revision(self.version + 1, event_id, cause, effective, detail)
        return replace(self, revisions=(*self.revisions, revision))

    def with_segment(self, segment: Segment) -> ObligationState:
        return replace(self, segments=(*self.segments, segment))

    def with_component(self, component: PeriodComponent) -> ObligationState:
        return replace(self, components=(*self.components, component))
