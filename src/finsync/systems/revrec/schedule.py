"""Revenue schedules, the waterfall and remaining performance obligations.

Rules:
- Cumulative rounding: the amount of a period `[a, b)` is round(cumulative(b)) -
  round(cumulative(a)), half-even to minor units. The cumulative of the schedule's first
  boundary is zero and of its last is the allocated price, so every schedule sums exactly
  to its obligation's allocated price, whatever the granularity.
- A schedule's periods are the calendar months from the obligation's first day to the month
  that holds its last change (the end of service, of a component, or an event's date).
- Schedule references are stable and versioned: `schedule_id` is derived from the revenue
  contract and the obligation (never changes), `version` is the number of revisions of the
  obligation; `reference` is `schedule_id@v<version>`.
- Each line carries the revision that last could change it (the last revision whose
  effective instant is before the line's end), so it traces back to its amendment or event.
- The rounded cumulatives come from `series` (the same figures as `progress.recognised`,
  computed once per obligation where it can).
- The waterfall is the amount per obligation per month over one set of months.
- Remaining performance obligations (RPO) at a date: allocated price not yet recognised;
  current = what the schedules recognise in the next 12 months, non-current the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import pairwise

from finsync.domain.clock import Period
from finsync.domain.ids import derive_id
from finsync.domain.money import Money, total
from finsync.domain.revenue import RevenueSchedule, ScheduleLine
from finsync.systems.revrec.obligation import ObligationState, Revision
from finsync.systems.revrec.progress import recognised
from finsync.systems.revrec.series import recognised_series
from finsync.systems.revrec.state import RevenueContractState
from finsync.systems.revrec.timegrid import add_months, at_midnight, month_periods


@dataclass(frozen=True, slots=True)
class TracedLine:
    period: Period
    amount: Money
    version: int
    event_id: str
    cause: str


@dataclass(frozen=True, slots=True)
class ObligationSchedule:
    schedule_id: str
    version: int
    revenue_contract_id: str
    obligation_id: str
    allocated_price: Money
    lines: tuple[TracedLine, ...]

    @property
    def reference(self) -> str:
        return f"{self.schedule_id}@v{self.version}"

    def to_revenue_schedule(self) -> RevenueSchedule:
        """The canonical schedule (it re-checks that the lines sum to the allocated price)."""
        lines = tuple(ScheduleLine(li.period.start, li.period.end, li.amount)
                      for li in self.lines)
        return RevenueSchedule(self.schedule_id, self.version, self.obligation_id,
                               self.allocated_price, lines)


@dataclass(frozen=True, slots=True)
class WaterfallRow:
    obligation_id: str
    amounts: tuple[Money, ...]


@dataclass(frozen=True, slots=True)
class Waterfall:
    months: tuple[Period, ...]
    rows: tuple[WaterfallRow, ...]


@dataclass(frozen=True, slots=True)
class RemainingPerformanceObligations:
    as_of: date
    current: Money
    non_current: Money

    @property
    def total(self) -> Money:
        return self.current + self.non_current


def schedule_id_for(revenue_contract_id: str, obligation_id: str) -> str:
    return derive_id("sch", revenue_contract_id, obligation_id)


def _day(moment: datetime | None, fallback: date) -> date:
    return fallback if moment is None else moment.date() + timedelta(days=1)


def obligation_span(ob: ObligationState) -> Period:
    """First day to the day after the last change of the obligation. A unit delivered or a
    percent reported before the service starts is revenue when it happens (per-unit and
    progress measures count it then), so the span starts early enough to show it in its
    own month rather than in the first month of service."""
    facts = [day for day, _ in ob.deliveries] + [day for day, _ in ob.progress_reports]
    first = min([s.basis.start for s in ob.segments] + [c.span.start for c in ob.components]
                + facts)
    ends = [s.basis.end for s in ob.segments] + [c.span.end for c in ob.components]
    ends += [_day(s.effective, first) for s in ob.segments]
    ends += [_day(c.effective, first) for c in ob.components]
    ends += [_day(r.effective, first) for r in ob.revisions]
    return Period(first, max(ends))


def _traced(revisions: Sequence[Revision], end: date) -> Revision:
    if len(revisions) == 1:  # most obligations: booked and never revised
        return revisions[0]
    at = at_midnight(end)
    found = [r for r in revisions if r.effective is None or r.effective < at]
    return found[-1] if found else revisions[0]


def obligation_schedule(state: RevenueContractState, obligation_id: str) -> ObligationSchedule:
    ob = state.obligation(obligation_id)
    span = obligation_span(ob)
    months = month_periods(span.start, span.end)
    currency = state.currency
    lines: list[TracedLine] = []
    before = Money.zero(currency).amount
    ends = [month.end for month in months]
    for month, upto in zip(months, recognised_series(ob, state.granularity, ends), strict=True):
        if upto != before:
            why = ob.revisions[0] if len(ob.revisions) == 1 else _traced(ob.revisions, month.end)
            lines.append(TracedLine(month, Money(upto - before, currency), why.version,
                                    why.event_id, why.cause))
        before = upto
    sid = schedule_id_for(state.revenue_contract_id, ob.obligation_id)
    return ObligationSchedule(sid, ob.version, state.revenue_contract_id, ob.obligation_id,
                              ob.allocated_price, tuple(lines))


def schedules(state: RevenueContractState) -> tuple[ObligationSchedule, ...]:
    return tuple(obligation_schedule(state, ob.obligation_id) for ob in state.obligations)


def waterfall(state: RevenueContractState, start: date, end: date) -> Waterfall:
    """Revenue per obligation per calendar month from the month of `start` to `end`."""
    months = month_periods(start, end)
    rows = []
    for ob in state.obligations:
        cumulative = [recognised(ob, state.granularity, at_midnight(months[0].start))]
        cumulative += [recognised(ob, state.granularity, at_midnight(m.end)) for m in months]
        amounts = tuple(b - a for a, b in pairwise(cumulative))
        rows.append(WaterfallRow(ob.obligation_id, amounts))
    return Waterfall(months, tuple(rows))


def recognised_to(state: RevenueContractState, day: date) -> Money:
    """Revenue recognised for everything before `day` (00:00 of `day`)."""
    at = at_midnight(day)
    return total([recognised(ob, state.granularity, at) for ob in state.obligations],
                 state.currency)


def remaining_performance_obligations(state: RevenueContractState,
                                      as_of: date) -> RemainingPerformanceObligations:
    now = recognised_to(state, as_of)
    within_year = recognised_to(state, add_months(as_of, 12))
    remaining = state.transaction_price - now
    current = within_year - now
    return RemainingPerformanceObligations(as_of, current, remaining - current)
