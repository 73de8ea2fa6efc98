"""Proration conventions: the share of a billing cycle that a span of it is worth.

Billing prices a stub (or any piece shorter than its cycle) and the revenue engine prices
the consideration billing is entitled to with this one arithmetic, so the two agree to the
exact rational before either rounds (docs/billing/rules.md, "Proration").

Rules:
- A cycle is laid on the anchor calendar: its months are `[anchor + n months, anchor +
  (n + 1) months)`, the day clamped to the month's end (Jan 31 -> Feb 28 -> Mar 31). A span
  lies inside one cycle; shares are exact `Fraction`s in [0, 1].
- `by_day` (default): days of the span / days of the cycle (actual/actual).
- `by_second` (Stripe): seconds of the span / seconds of the cycle. On dates (every span of
  a contract's calendar) it equals `by_day`; a change carrying a UTC instant is refined by
  the billing system itself.
- `monthly_even` (Zuora: full months plus prorated days, "assume 30 days - actual/360"):
  every month of the cycle is the same 1/m of it; the span is cut at the anchored months and
  a part month is worth its actual days / 30 (at most one month). A 30/360-like basis, not
  30/360 strict: the days counted are actual days.
- `partial_months` (Zuora: full months plus prorated days, "use actual number of days"):
  whole months in full (1/m each); a part month is worth its actual days / the actual days
  of that anchored month.
- Under `monthly_even` a term's shares need not sum to whole cycles (a stub of 17 days and one
  of 14 days of 31-day months are worth 31/30 of a month): that is what such a biller
  invoices, so it is what the contract entitles it to.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from fractions import Fraction

from finsync.domain.clock import Period, first_of_next_month
from finsync.domain.errors import DomainError

_EVEN_MONTH_DAYS = 30


class ProrationConvention(StrEnum):
    BY_DAY = "by_day"
    BY_SECOND = "by_second"
    MONTHLY_EVEN = "monthly_even"
    PARTIAL_MONTHS = "partial_months"

    @property
    def by_month(self) -> bool:
        return self in (ProrationConvention.MONTHLY_EVEN, ProrationConvention.PARTIAL_MONTHS)


def add_months(day: date, months: int) -> date:
    """`day` moved by whole calendar months, clamped to the month's last day."""
    index = day.year * 12 + day.month - 1 + months
    year, month0 = divmod(index, 12)
    return date(year, month0 + 1, min(day.day, _month_days(year, month0 + 1)))


def _month_days(year: int, month: int) -> int:
    first = date(year, month, 1)
    return (first_of_next_month(first) - first).days


def month_index(anchor: date, day: date) -> int:
    """n such that `day` lies in the anchored month `[anchor + n, anchor + n + 1)`."""
    n = (day.year - anchor.year) * 12 + day.month - anchor.month
    while add_months(anchor, n) > day:
        n -= 1
    while add_months(anchor, n + 1) <= day:
        n += 1
    return n


def cycle_share(convention: ProrationConvention, anchor: date, cycle: Period,
                span: Period) -> Fraction:
    """The part of `cycle` (laid on `anchor`) that `span`, inside it, is worth."""
    if span.start < cycle.start or span.end > cycle.end:
        raise DomainError(f"span {span} lies outside its cycle {cycle}")
    if not convention.by_month:
        return Fraction(span.days, cycle.days)
    first = month_index(anchor, cycle.start)
    months = month_index(anchor, cycle.end) - first
    if months <= 0 or add_months(anchor, first) != cycle.start:
        raise DomainError(f"cycle {cycle} is not whole months on the anchor {anchor}")
    return _months_of(convention, anchor, span) / months


def _months_of(convention: ProrationConvention, anchor: date, span: Period) -> Fraction:
    """The span's worth in anchored months: whole months 1, a part month by its days."""
    worth = Fraction(0)
    n = month_index(anchor, span.start)
    cursor = span.start
    while cursor < span.end:
        month = Period(add_months(anchor, n), add_months(anchor, n + 1))
        part = Period(cursor, min(month.end, span.end))
        worth += _part_month(convention, month, part)
        cursor, n = part.end, n + 1
    return worth


def _part_month(convention: ProrationConvention, month: Period, part: Period) -> Fraction:
    if part.days == month.days:
        return Fraction(1)
    if convention is ProrationConvention.MONTHLY_EVEN:
        return min(Fraction(part.days, _EVEN_MONTH_DAYS), Fraction(1))
    return Fraction(part.days, month.days)
