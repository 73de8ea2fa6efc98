"""The "as invoiced" measure of progress of a ratable obligation (granularity `invoiced`).

Rules:
- Where the entity's right to consideration corresponds directly with the value of its
  performance to date (ASC 606-10-55-18, IFRS 15.B16: the "right to invoice" practical
  expedient), revenue follows what billing invoices. The engine applies it as a measure of
  progress, so an allocation across obligations still applies:
  progress(t) = sum over billing pieces of (piece amount x share of the piece elapsed by t)
  / sum of piece amounts.
- A piece is what billing invoices as one line: a billing period (laid on the contract's
  billing anchor) crossed with a step of the line, priced under the contract's proration
  convention and rounded once, half-even, as billing rounds it (`consideration.value`). So a
  single obligation's revenue of each billing period is that period's invoice line, cent for
  cent, rounding differences included.
- Inside a piece, time elapses under the same convention: by day, or by anchored months
  (whole months, a part month by its days) for `monthly_even` and `partial_months`.
- A basis with no book (a state stored before the book was kept) or whose pieces sum to
  zero (no seats, no price) falls back to the by-day measure.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache

from finsync.domain.clock import Period
from finsync.domain.money import Money
from finsync.domain.proration import cycle_share
from finsync.systems.revrec.consideration import PriceBook, Step
from finsync.systems.revrec.timegrid import at_midnight

_ZERO = Decimal(0)


@lru_cache(maxsize=4096)
def invoiced_pieces(steps: tuple[Step, ...],
                    book: PriceBook) -> tuple[tuple[Period, Period, Decimal], ...]:
    """(billing period, piece, rounded amount) of each invoice line the steps make."""
    found = []
    for step in steps:
        for period, numerator, denominator in book.pieces(step.span):
            piece = Period(max(period.start, step.span.start), min(period.end, step.span.end))
            exact = step.quantity * step.unit_price.amount * numerator / denominator
            found.append((period, piece, Money(exact, book.currency).quantize().amount))
    return tuple(found)


def invoiced_progress(steps: tuple[Step, ...], book: PriceBook, at: datetime) -> Decimal | None:
    """Progress as invoiced at instant `at`, or None where the measure does not apply."""
    pieces = invoiced_pieces(steps, book)
    whole = sum((amount for _, _, amount in pieces), _ZERO)
    if whole <= 0:
        return None
    done = _ZERO
    for period, piece, amount in pieces:
        if at <= at_midnight(piece.start) or not amount:
            continue
        if at >= at_midnight(piece.end):
            done += amount
            continue
        part = _elapsed_share(book, period, piece, at)
        done += amount * part.numerator / part.denominator
    return done / whole


def _elapsed_share(book: PriceBook, period: Period, piece: Period, at: datetime) -> Fraction:
    """The part of `piece` elapsed by `at` (strictly inside it), under the convention."""
    days = (at.date() - piece.start).days
    if days <= 0:
        return Fraction(0)
    if not book.proration.by_month:
        return Fraction(days, piece.days)
    elapsed = Period(piece.start, piece.start + timedelta(days=days))
    whole = cycle_share(book.proration, book.anchor, period, piece)
    return cycle_share(book.proration, book.anchor, period, elapsed) / whole
