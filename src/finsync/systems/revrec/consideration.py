"""Consideration of contract lines and standalone selling prices of obligations.

Rules:
- A line is a step function of (quantity, unit price) over its service period: the line's
  own quantity and price from its start date, then each ramp step from its `starts_on`.
- A ratable line is priced per unit per billing period (DESIGN, events.md): its value over a
  span is the sum, over the billing periods laid on the contract's billing anchor (its
  bill-cycle date, else its start; a start before the anchor falls in a stub period laid
  backwards from it), of quantity x unit price x the share of the period the span is worth
  under the contract's proration convention (`finsync.domain.proration`: by day, by month
  evenly, partial months), exact, rounded once to the currency's minor unit (half-even). A
  full year of an annual line is quantity x unit price; by day, 230 of 365 days is quantity
  x unit price x 230 / 365. This is what billing invoices under the contract, stubs
  included, so the transaction price leaves nothing unbilled.
- Every other line is priced once: quantity x unit price of its first step.
- The standalone selling price (SSP) of an obligation is the same formula with the SSP
  effective on the measurement date in place of the unit price; SSPs are effective-dated
  inputs (`StandaloneSellingPrice`), and two that apply on one day are refused.
- The difference of two lines (what a modification adds) exists only where the price of the
  units is unchanged and no quantity falls; otherwise the change is not a pure addition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache
from itertools import pairwise

from finsync.domain.catalog import StandaloneSellingPrice
from finsync.domain.clock import Period
from finsync.domain.contract import ContractLine, SubscriptionContract
from finsync.domain.money import Money
from finsync.domain.proration import ProrationConvention, cycle_share
from finsync.systems.revrec.errors import MissingStandaloneSellingPriceError, RevenueError
from finsync.systems.revrec.pattern import RecognitionPattern
from finsync.systems.revrec.timegrid import billing_periods


@dataclass(frozen=True, slots=True)
class Step:
    span: Period
    quantity: int
    unit_price: Money


@dataclass(frozen=True, slots=True)
class PriceBook:
    """How a contract prices time: the anchor its billing periods are laid from, their
    length in months, the proration convention of a part period, and the contract start."""

    anchor: date
    months: int
    currency: str
    proration: ProrationConvention = ProrationConvention.BY_DAY
    start: date | None = None  # the contract start (None: the anchor)

    @classmethod
    def of(cls, contract: SubscriptionContract) -> PriceBook:
        return cls(contract.cycle_anchor, contract.billing_frequency.months, contract.currency,
                   contract.proration, contract.start_date)

    def pieces(self, span: Period) -> tuple[tuple[Period, int, int], ...]:
        """Each billing period `span` overlaps, with the share of it (numerator,
        denominator) the overlap is worth: billing's pieces of the span."""
        if span.start < (self.start or self.anchor):
            raise RevenueError(f"service from {span.start} starts before the contract "
                               f"({self.start or self.anchor})")
        return _pieces(self.proration, self.anchor, self.months, span)


@lru_cache(maxsize=8192)
def _pieces(proration: ProrationConvention, anchor: date, months: int,
            span: Period) -> tuple[tuple[Period, int, int], ...]:
    found = []
    for period in billing_periods(anchor, months, span):
        part = Period(max(period.start, span.start), min(period.end, span.end))
        if not proration.by_month:
            found.append((period, part.days, period.days))
            continue
        share = cycle_share(proration, anchor, period, part)
        found.append((period, share.numerator, share.denominator))
    return tuple(found)


def line_steps(line: ContractLine) -> tuple[Step, ...]:
    points = {line.start_date: (line.quantity, line.unit_price)}
    for ramp in sorted(line.ramp, key=lambda r: r.starts_on):
        if line.start_date <= ramp.starts_on < line.end_date:
            points[ramp.starts_on] = (ramp.quantity, ramp.unit_price)
    starts = sorted(points)
    ends = [*starts[1:], line.end_date]
    return tuple(Step(Period(s, e), *points[s]) for s, e in zip(starts, ends, strict=True))


def steps_from(steps: Sequence[Step], day: date) -> tuple[Step, ...]:
    """The part of the steps on or after `day`."""
    kept = [s for s in steps if s.span.end > day]
    return tuple(Step(Period(max(s.span.start, day), s.span.end), s.quantity, s.unit_price)
                 for s in kept)


def steps_before(steps: Sequence[Step], day: date) -> tuple[Step, ...]:
    kept = [s for s in steps if s.span.start < day]
    return tuple(Step(Period(s.span.start, min(s.span.end, day)), s.quantity, s.unit_price)
                 for s in kept)


def merge_history(old: Sequence[Step], new: Sequence[Step], day: date) -> tuple[Step, ...]:
    """Old steps before `day`, new steps from it: what was delivered is not restated."""
    return (*steps_before(old, day), *steps_from(new, day))


def _step_on(steps: Sequence[Step], day: date) -> Step | None:
    return next((s for s in steps if day in s.span), None)


def difference(new: Sequence[Step], old: Sequence[Step]) -> tuple[Step, ...] | None:
    """`new - old` as added units at unchanged prices, or None if it is not an addition."""
    bounds = sorted({b for s in (*new, *old) for b in (s.span.start, s.span.end)})
    added: list[Step] = []
    for start, end in pairwise(bounds):
        after, before = _step_on(new, start), _step_on(old, start)
        qty_after = after.quantity if after else 0
        qty_before = before.quantity if before else 0
        if qty_after < qty_before:
            return None
        if after and before and before.quantity and after.unit_price != before.unit_price:
            return None
        if after and qty_after > qty_before:
            added.append(Step(Period(start, end), qty_after - qty_before, after.unit_price))
    return tuple(added)


def exact_value(pattern: RecognitionPattern, steps: Sequence[Step], book: PriceBook,
                price: Money | None = None) -> Decimal:
    """Unrounded value of the steps (at `price` per unit instead of the steps' own if given)."""
    if pattern.variable or not steps:
        return Decimal(0)
    if not pattern.priced_per_period:
        first = steps[0]
        return first.quantity * (price or first.unit_price).amount
    value = Decimal(0)
    for step in steps:
        unit = (price or step.unit_price).amount
        for _, numerator, denominator in book.pieces(step.span):
            value += step.quantity * unit * numerator / denominator
    return value


def value(pattern: RecognitionPattern, steps: Sequence[Step], book: PriceBook,
          price: Money | None = None) -> Money:
    """The value rounded as billing rounds what it invoices: once per piece of a billing
    period and step (a ramp step, a prorated stub), so that the transaction price of a
    contract billed as agreed equals what billing invoices under it, to the cent."""
    if pattern.variable or not steps or not pattern.priced_per_period:
        return Money(exact_value(pattern, steps, book, price), book.currency).quantize()
    pieces = (Money(step.quantity * (price or step.unit_price).amount * numerator
                    / denominator, book.currency).quantize()
              for step in steps for _, numerator, denominator in book.pieces(step.span))
    return sum(pieces, Money.zero(book.currency))


def change_value(pattern: RecognitionPattern, new: Sequence[Step], old: Sequence[Step],
                 book: PriceBook, on: date) -> Money:
    """What a modification from `on` changes in consideration, rounded where billing rounds
    it: the billing period `on` falls in (billed in advance on its first day, so already
    billed, even when `on` is that day) as one delta, rounded once; every later period as
    the new period's value less the old one's, each rounded per piece (billing invoices
    them at the new version)."""
    if pattern.variable or not pattern.priced_per_period or not (new or old):
        return Money(exact_value(pattern, new, book) - exact_value(pattern, old, book),
                     book.currency).quantize()
    end = max(s.span.end for s in (*new, *old))
    delta = Money.zero(book.currency)
    for period, _, _ in book.pieces(Period(on, end)):
        window = Period(max(period.start, on), min(period.end, end))
        new_part, old_part = _clip(new, window), _clip(old, window)
        if on in period:  # billed already when the change comes: one delta line
            delta += Money(exact_value(pattern, new_part, book)
                           - exact_value(pattern, old_part, book), book.currency).quantize()
        else:
            delta += value(pattern, new_part, book) - value(pattern, old_part, book)
    return delta


def _clip(steps: Sequence[Step], window: Period) -> tuple[Step, ...]:
    return steps_before(steps_from(steps, window.start), window.end)


def find_ssp(ssps: Sequence[StandaloneSellingPrice], product_id: str,
             on: date) -> StandaloneSellingPrice | None:
    matches = [s for s in ssps if s.product_id == product_id and s.applies_on(on)]
    if len(matches) > 1:
        raise MissingStandaloneSellingPriceError(
            f"{len(matches)} SSPs for {product_id} apply on {on}; expected one")
    return matches[0] if matches else None


def ssp_value(pattern: RecognitionPattern, product_id: str, steps: Sequence[Step],
              book: PriceBook, ssps: Sequence[StandaloneSellingPrice], on: date,
              required: bool) -> Money:
    """The SSP of `steps` of a product measured on `on`; zero when not required and absent."""
    ssp = find_ssp(ssps, product_id, on)
    if ssp is None:
        if required:
            raise MissingStandaloneSellingPriceError(f"no SSP for {product_id} on {on}")
        return Money.zero(book.currency)
    return value(pattern, steps, book, ssp.amount)
