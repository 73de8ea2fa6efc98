"""Recurring charges of a contract line over a span of one billing cycle.

Rules:
- A line charges only inside its own service period `[start_date, end_date)`.
- Ramp steps split the span: each piece is priced at the quantity and unit price in force on
  its first day (the latest step that has started, else the line's own terms).
- A piece costs `rate(quantity, price) * cycle months / price months * share`, where the share
  is the proration rule's part of the full cycle. Pieces stay exact `Decimal`s; a document
  line rounds once (half-even, minor units) when it is drafted.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from finsync.domain.clock import Period
from finsync.domain.contract import ContractLine
from finsync.domain.money import Money
from finsync.systems.billing.cycle import Cycle
from finsync.systems.billing.pricing import PricePlan, recurring_rate
from finsync.systems.billing.proration import ProrationRule, Share


@dataclass(frozen=True, slots=True)
class Piece:
    """A part of a span with one quantity and price, and what it costs (exact)."""

    span: Period
    quantity: int
    unit_price: Money
    share: Share
    amount: Decimal


def terms_on(line: ContractLine, day: date) -> tuple[int, Money]:
    """Quantity and unit price in force on `day`, ramp steps included."""
    quantity, price = line.quantity, line.unit_price
    for step in sorted(line.ramp, key=lambda s: s.starts_on):
        if step.starts_on <= day:
            quantity, price = step.quantity, step.unit_price
    return quantity, price


def pieces(line: ContractLine, plan: PricePlan, span: Period, cycle: Cycle,
           rule: ProrationRule, starts_at: datetime | None = None) -> tuple[Piece, ...]:
    """The priced pieces of `line` over `span` (a part of `cycle`)."""
    start, end = max(span.start, line.start_date), min(span.end, line.end_date)
    if end <= start:
        return ()
    cuts = sorted({start, end} | {s.starts_on for s in line.ramp if start < s.starts_on < end})
    result = []
    for first, last in itertools.pairwise(cuts):
        quantity, price = terms_on(line, first)
        piece = Period(first, last)
        share = rule.share(cycle.period, piece, starts_at if first == span.start else None)
        rate = recurring_rate(plan, quantity, price)
        scale = Decimal(cycle.months) * share.numerator
        amount = rate * scale / (plan.price.frequency.months * share.denominator)
        result.append(Piece(piece, quantity, price, share, amount))
    return tuple(result)


def exact_total(parts: tuple[Piece, ...]) -> Decimal:
    return sum((p.amount for p in parts), Decimal(0))


def rounded(amount: Decimal, currency: str) -> Money:
    """The one rounding point of a document line: half-even to the currency's minor unit."""
    return Money(amount, currency).quantize()
