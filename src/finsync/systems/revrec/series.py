"""Rounded cumulative revenue of one obligation at a run of days (what a schedule asks).

Rules:
- The amount at day D is exactly `progress.recognised` at 00:00 of D: the same `Decimal`
  operations on the same values in the same order, so a schedule is the same whichever way
  it was computed (tests/unit/revrec/test_series.py compares both over every golden case
  and random contracts).
- A plain ratable obligation (one segment, no period component: booked and never revised,
  the common subscription line) is measured in closed form: its quantity weights and whole
  units once, then at each day the weighted elapsed units, one division, one multiplication
  and the rounding. By day, elapsed units are whole days, summed as integers (exact, as the
  general path's integer-valued `Decimal` sums are), and the progress at each day is cached
  per term and ramp (`_progress_by_day`).
- Every other obligation, and every obligation measured as billing invoices it
  (`Granularity.INVOICED`: its progress follows the price book, `invoiced`), is measured by
  `recognised` at each day.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from math import gcd

from finsync.systems.revrec.obligation import ObligationState
from finsync.systems.revrec.pattern import Granularity, RecognitionPattern
from finsync.systems.revrec.progress import quantum, recognised
from finsync.systems.revrec.timegrid import at_midnight, elapsed, span_units

_NONE = Decimal(0)  # what `components_cumulative` adds when there is no component


def recognised_series(ob: ObligationState, granularity: Granularity,
                      days: Sequence[date]) -> list[Decimal]:
    """Revenue recognised for `[start, D)` at each day D, rounded (see the module rules)."""
    if granularity is Granularity.INVOICED or not _plain_ratable(ob):
        return [recognised(ob, granularity, at_midnight(day)).amount for day in days]
    if granularity is Granularity.DAY:
        return _by_day(ob, days)
    return _by_units(ob, granularity, days)


def _plain_ratable(ob: ObligationState) -> bool:
    segments = ob.segments
    return (len(segments) == 1 and segments[0].anchor is None and not ob.components
            and segments[0].basis.pattern is RecognitionPattern.RATABLE)


def _weights(ob: ObligationState) -> list[int]:
    steps = ob.segments[0].basis.steps
    weighted = any(step.quantity for step in steps)
    return [step.quantity if weighted else 1 for step in steps]


def _by_day(ob: ObligationState, days: Sequence[date]) -> list[Decimal]:
    steps = ob.segments[0].basis.steps
    weights = _weights(ob)
    common = gcd(*weights) or 1
    spans = tuple((weight // common, step.span.start.toordinal(), step.span.days)
                  for weight, step in zip(weights, steps, strict=True))
    total = ob.segments[0].total.amount
    minor = quantum(ob.currency)
    return [(total * done + _NONE).quantize(minor, ROUND_HALF_EVEN)
            for done in _progress_by_day(spans, tuple(days))]


@lru_cache(maxsize=1024)
def _progress_by_day(spans: tuple[tuple[int, int, int], ...],
                     days: tuple[date, ...]) -> tuple[Decimal, ...]:
    """Progress (weighted days elapsed / weighted days) at each day, as `_ratable` gives it.

    Weights are divided by their greatest common divisor: the ratio's value is unchanged,
    and a `Decimal` quotient depends only on the value of its operands (correctly rounded,
    and the exponent of an exact one is that of two integers), so the result is the same.
    It then depends on the term and its ramp only, not on the seats or the price, so a book
    of contracts on a few terms computes it a few times (cached, immutable)."""
    whole = Decimal(sum(weight * length for weight, _, length in spans))
    found = []
    for day in days:
        today = day.toordinal()
        done = 0
        for weight, start, length in spans:
            gone = today - start
            done += weight * (0 if gone < 0 else length if gone > length else gone)
        found.append(Decimal(done) / whole)
    return tuple(found)


def _by_units(ob: ObligationState, granularity: Granularity,
              days: Sequence[date]) -> list[Decimal]:
    steps = ob.segments[0].basis.steps
    weights = _weights(ob)
    whole = Decimal(0)
    for weight, step in zip(weights, steps, strict=True):
        whole += weight * span_units(step.span, granularity)
    total = ob.segments[0].total.amount
    step_quantum = quantum(ob.currency)
    found = []
    for day in days:
        at = at_midnight(day)
        done = Decimal(0)
        for weight, step in zip(weights, steps, strict=True):
            done += weight * elapsed(step.span, at, granularity)
        cumulative = total * (done / whole) + _NONE
        found.append(cumulative.quantize(step_quantum, ROUND_HALF_EVEN))
    return found
