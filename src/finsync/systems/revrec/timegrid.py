"""Time arithmetic of the engine: instants, months, billing periods, elapsed units.

Rules:
- Dates are business dates; an instant is a UTC `datetime`. A date D stands for the instant
  D 00:00 UTC, and a fact at instant e counts in the cumulative at t only when e < t, so a
  fact dated D lands in the period `[a, b)` with a <= D < b.
- Periods are half-open `[start, end)` (`finsync.domain.clock.Period`).
- Months add by calendar, clamped to the month's last day (Jan 31 + 1 month = Feb 28).
- Billing periods are laid on the contract's billing anchor (its start unless it names a
  bill-cycle date) and counted from it in both directions (never chained), so they do not
  drift: a start before the anchor falls in the period that ends on it (a stub).
- Elapsed units of a span at an instant: whole days (`DAY`), whole seconds (`SECOND`), or
  the sum over calendar months of (days elapsed in the month / days of the month) (`MONTH`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache

from finsync.domain.clock import Period
from finsync.domain.proration import add_months as add_months  # billing's calendar too
from finsync.domain.proration import month_index
from finsync.systems.revrec.errors import RevenueError
from finsync.systems.revrec.pattern import Granularity

PERIODS_MAX = 12_000  # bound on any generated sequence of periods (1000 years of months)
_SECONDS_PER_DAY = 86_400


@lru_cache(maxsize=8192)
def at_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def just_after(moment: datetime) -> datetime:
    """The first instant after `moment` at which a fact dated `moment` counts."""
    return moment + timedelta(microseconds=1)


def month_start(day: date) -> date:
    return day.replace(day=1)


@lru_cache(maxsize=1024)
def month_periods(start: date, end: date) -> tuple[Period, ...]:
    """Calendar months from the month of `start` to the month that holds `end - 1 day`.
    Cached (an immutable tuple): every schedule of a book asks for the same few spans."""
    months: list[Period] = []
    cursor = month_start(start)
    while cursor < end:
        if len(months) >= PERIODS_MAX:
            raise RevenueError(f"more than {PERIODS_MAX} months from {start} to {end}")
        following = add_months(cursor, 1)
        months.append(Period(cursor, following))
        cursor = following
    return tuple(months)


@lru_cache(maxsize=4096)
def billing_periods(anchor: date, months: int, span: Period) -> tuple[Period, ...]:
    """Billing periods laid on `anchor` that overlap `span` (cached, immutable)."""
    first = month_index(anchor, span.start) // months
    found: list[Period] = []
    for k in range(first, first + PERIODS_MAX):
        period = Period(add_months(anchor, k * months), add_months(anchor, (k + 1) * months))
        if period.start >= span.end:
            return tuple(found)
        if period.overlap(span):
            found.append(period)
    raise RevenueError(f"more than {PERIODS_MAX} billing periods in {span}")


def elapsed(span: Period, at: datetime, granularity: Granularity) -> Decimal:
    """Units of `span` elapsed by instant `at` (see the module rules)."""
    if granularity is Granularity.SECOND:
        delta = at - at_midnight(span.start)
        seconds = delta.days * _SECONDS_PER_DAY + delta.seconds
        return Decimal(min(max(seconds, 0), span.days * _SECONDS_PER_DAY))
    if granularity in (Granularity.DAY, Granularity.INVOICED):  # a component, by day
        return Decimal(_days_elapsed(span, at))
    units = Decimal(0)
    for month in month_periods(span.start, span.end):
        part = Period(max(month.start, span.start), min(month.end, span.end))
        units += Decimal(_days_elapsed(part, at)) / Decimal(month.days)
    return units


@lru_cache(maxsize=4096)
def span_units(span: Period, granularity: Granularity) -> Decimal:
    """All the units of `span`, computed the same way as `elapsed`, so the ratio ends at 1.
    Cached: a schedule asks it for the same spans at every month end (values are immutable)."""
    return elapsed(span, at_midnight(span.end), granularity)


def _days_elapsed(span: Period, at: datetime) -> int:
    return min(max((at.date() - span.start).days, 0), span.days)
