"""Exchange rates: one rate per currency pair and effective date.

Rules:
- The rate for a day is the latest one effective on or before that day; none is an
  `fx_rate_missing` error, never a guess (no inverse or cross rates are invented).
- A rate converts 1 unit of `base` into `rate` units of `quote`.
- Conversion rounds once, half-even, to the target currency's minor units.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from finsync.domain.money import Money
from finsync.systems.ledger.errors import FxRateMissingError


@dataclass(frozen=True, slots=True)
class Rate:
    base: str
    quote: str
    effective: date
    rate: Decimal


class RateTable:
    def __init__(self, rates: Iterable[Rate] = ()) -> None:
        self._by_pair: dict[tuple[str, str], list[tuple[date, Decimal]]] = {}
        for rate in rates:
            self.add(rate)

    def add(self, rate: Rate) -> None:
        series = self._by_pair.setdefault((rate.base, rate.quote), [])
        series.append((rate.effective, rate.rate))
        series.sort()

    def rate(self, base: str, quote: str, on: date) -> Decimal:
        if base == quote:
            return Decimal(1)
        series = self._by_pair.get((base, quote), [])
        at = bisect_right(series, (on, Decimal("Infinity")))
        if at == 0:
            raise FxRateMissingError(f"no {base}/{quote} rate effective on {on}")
        return series[at - 1][1]

    def convert(self, money: Money, quote: str, on: date) -> Money:
        return Money(money.amount * self.rate(money.currency, quote, on), quote).quantize()
