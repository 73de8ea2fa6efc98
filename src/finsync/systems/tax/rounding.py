"""Tax amounts: the exact tax of a line, and the two ways of rounding it.

Rules:
- Exclusive line: exact tax = amount x rate. Inclusive line (the amount includes tax):
  exact tax = amount x rate / (1 + rate), and net = amount - rounded tax, so
  net + tax = amount exactly.
- `line` rounding: each line's exact tax half-even to minor units.
- `document` rounding: the sum of the lines' exact taxes half-even once; split back to the
  lines by largest remainder (each line gets its exact tax floored, the minor units left
  go one each to the largest fractions, ties to the earlier line), so the lines sum to the
  rounded document tax exactly and each is within one minor unit of its exact tax.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

from finsync.domain.money import Money, exponent


def exact_tax(amount: Money, rate: Decimal, inclusive: bool) -> Decimal:
    """Unrounded, in major units."""
    if inclusive:
        return amount.amount * rate / (1 + rate)
    return amount.amount * rate


def round_each(exacts: Sequence[Decimal], currency: str) -> tuple[Money, ...]:
    return tuple(Money(x, currency).quantize(ROUND_HALF_EVEN) for x in exacts)


def round_document(exacts: Sequence[Decimal], currency: str) -> tuple[Money, ...]:
    """The document's tax rounded once, split to the lines by largest remainder."""
    if not exacts:
        return ()
    scale = Decimal(10) ** exponent(currency)
    minors = [x * scale for x in exacts]
    whole = int(sum(minors, Decimal(0)).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    floors = [int(m.quantize(Decimal(1), rounding=ROUND_FLOOR)) for m in minors]
    short = whole - sum(floors)
    # 0 <= short <= len(exacts): the floors lose less than one unit each, the rounding of
    # the sum moves it by at most half a unit.
    order = sorted(range(len(minors)), key=lambda i: (-(minors[i] - floors[i]), i))
    for i in order[:short]:
        floors[i] += 1
    return tuple(Money.from_minor(f, currency) for f in floors)
