"""Measures of progress and cumulative revenue of one obligation at an instant.

Rules:
- Progress is a `Decimal` in [0, 1] (a reported percent may fall, never below 0 or above 1).
- Ratable: quantity-weighted elapsed units / all units (unweighted if every quantity is 0);
  at granularity `invoiced`, billing's rounded invoice pieces elapsed / all of them
  (`invoiced`; by day where there are none).
- Point in time: 0 until the transfer date (the start date) has begun, then 1.
- Per unit: units delivered before t / units promised, capped at 1.
- Progress: the latest percent reported before t.
- Per unit and progress: 1 once the last service day has begun (forecast completion).
- Usage: the main allocation is zero; usage lives in period components.
- At an instant, a change that takes effect at that very instant is not yet in force
  (`through=False`); a modification measures what has been recognised by its date with the
  changes of that date that precede it in canonical order (`through=True`, `order`), so a
  same-day price change's catch-up is revenue, not part of the modification's pool.
- Cumulative revenue is exact (unrounded); `recognised` rounds it half-even to minor units,
  which is the only rounding a schedule uses (cumulative rounding).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cache

from finsync.domain.money import Money, exponent
from finsync.systems.revrec.invoiced import invoiced_progress
from finsync.systems.revrec.obligation import ObligationBasis, ObligationState, Segment
from finsync.systems.revrec.pattern import Granularity, RecognitionPattern
from finsync.systems.revrec.timegrid import at_midnight, elapsed, span_units

_ONE = Decimal(1)


def progress(ob: ObligationState, basis: ObligationBasis, granularity: Granularity,
             at: datetime) -> Decimal:
    pattern = basis.pattern
    if pattern is RecognitionPattern.RATABLE:
        return _ratable(basis, granularity, at)
    begun = at > at_midnight(basis.start)
    if pattern in (RecognitionPattern.POINT_IN_TIME, RecognitionPattern.USAGE):
        return _ONE if begun else Decimal(0)
    if at > at_midnight(basis.end - timedelta(days=1)):
        return _ONE
    if pattern is RecognitionPattern.PER_UNIT:
        delivered = sum(q for day, q in ob.deliveries if at_midnight(day) < at)
        if basis.units_total <= 0:
            return Decimal(0)
        return min(_ONE, Decimal(delivered) / Decimal(basis.units_total))
    reports = [p for day, p in ob.progress_reports if at_midnight(day) < at]
    return reports[-1] if reports else Decimal(0)


def _ratable(basis: ObligationBasis, granularity: Granularity, at: datetime) -> Decimal:
    if granularity is Granularity.INVOICED and basis.book is not None:
        invoiced = invoiced_progress(basis.steps, basis.book, at)
        if invoiced is not None:
            return invoiced
        granularity = Granularity.DAY
    weighted = any(step.quantity for step in basis.steps)
    done = Decimal(0)
    whole = Decimal(0)
    for step in basis.steps:
        weight = step.quantity if weighted else 1
        done += weight * elapsed(step.span, at, granularity)
        whole += weight * span_units(step.span, granularity)
    return done / whole


def segment_in_force(ob: ObligationState, at: datetime, through: bool = False) -> Segment:
    """The segment in force at `at`; `through`: counting one that takes effect at `at`
    (a change dated the day a modification measures what has been recognised)."""
    for segment in reversed(ob.segments):
        if segment.effective is None or segment.effective < at or (
                through and segment.effective == at):
            return segment
    return ob.segments[0]


def main_cumulative(ob: ObligationState, granularity: Granularity, at: datetime,
                    through: bool = False) -> Decimal:
    segment = segment_in_force(ob, at, through)
    done = progress(ob, segment.basis, granularity, at)
    if segment.anchor is None or segment.base is None:
        return segment.total.amount * done
    start = progress(ob, segment.basis, granularity, segment.anchor)
    base = segment.base.amount
    if start >= _ONE:
        return segment.total.amount
    return base + (segment.total.amount - base) * (done - start) / (_ONE - start)


def components_cumulative(ob: ObligationState, granularity: Granularity,
                          at: datetime, through: bool = False,
                          concessions_only: bool = False) -> Decimal:
    """The period components recognised by `at`; `concessions_only`: only those that are
    price concessions (contra revenue, `contra`)."""
    amount = Decimal(0)
    for component in ob.components:
        if concessions_only and not component.concession:
            continue
        effective = component.effective
        if effective is not None and (effective > at or (effective == at and not through)):
            continue
        share = elapsed(component.span, at, granularity) / span_units(component.span,
                                                                        granularity)
        amount += component.amount.amount * share
    return amount


def cumulative(ob: ObligationState, granularity: Granularity, at: datetime,
               through: bool = False) -> Decimal:
    return (main_cumulative(ob, granularity, at, through)
            + components_cumulative(ob, granularity, at, through))


def recognised(ob: ObligationState, granularity: Granularity, at: datetime,
               through: bool = False) -> Money:
    """Revenue recognised for `[start, at)`, rounded: round(cumulative), half-even to minor
    units (what `Money.quantize` does, without building the unrounded Money first).
    `through`: with the changes that take effect at `at` (their catch-up) counted."""
    currency = ob.currency
    amount = cumulative(ob, granularity, at, through).quantize(quantum(currency),
                                                              ROUND_HALF_EVEN)
    return Money(amount, currency)


@cache
def quantum(currency: str) -> Decimal:
    """The currency's minor unit (0.01 for USD): what `recognised` rounds to."""
    return Decimal(1).scaleb(-exponent(currency))


def recognised_main(ob: ObligationState, granularity: Granularity, at: datetime,
                    through: bool = False) -> Money:
    return Money(main_cumulative(ob, granularity, at, through), ob.currency).quantize()
