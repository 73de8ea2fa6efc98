"""Billing cycles: the calendar billing runs on.

Rules:
- Cycles are anchored on the contract's billing anchor (its bill-cycle date; by default the
  subscription's first start date) and step by whole months
  (1, 3 or 12). Cycle k starts `anchor + k*months`, the day clamped to the month's end from
  the anchor (Jan 31 -> Feb 28 -> Mar 31), so short months never make the anchor drift.
- A billed span runs from where billing stopped to the next cycle boundary, clipped to the
  term end; a span shorter than its cycle is a stub and is prorated against the full cycle.
  A start before the anchor lies in the cycle laid backwards from it: the first invoice is a
  stub from the start to the anchor, then full cycles on the anchor.
- A change of billing frequency takes effect at the next boundary of what is already billed:
  the new cycles are laid on the same anchor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from finsync.domain.clock import Period
from finsync.domain.proration import add_months as add_months  # one calendar for all


@dataclass(frozen=True, slots=True)
class Cycle:
    """One full billing cycle and its length in months (prices scale by months)."""

    period: Period
    months: int


def months_between(start: date, end: date) -> int | None:
    """Whole months from `start` to `end` on the anchor calendar, or None if not whole."""
    guess = (end.year - start.year) * 12 + end.month - start.month
    return guess if guess > 0 and add_months(start, guess) == end else None


def cycle_containing(anchor: date, months: int, day: date) -> Cycle:
    """The cycle of `months` months, laid from `anchor`, that holds `day`."""
    k = ((day.year - anchor.year) * 12 + day.month - anchor.month) // months
    while add_months(anchor, k * months) > day:
        k -= 1
    while add_months(anchor, (k + 1) * months) <= day:
        k += 1
    start = add_months(anchor, k * months)
    return Cycle(Period(start, add_months(anchor, (k + 1) * months)), months)


def next_span(anchor: date, months: int, start: date, term_end: date) -> tuple[Period, Cycle]:
    """The span billed next from `start`: up to the next boundary or the term end."""
    cycle = cycle_containing(anchor, months, start)
    return Period(start, min(cycle.period.end, term_end)), cycle
