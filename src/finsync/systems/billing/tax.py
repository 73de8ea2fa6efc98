"""The tax engine port of billing, and a rate-table engine.

Rules:
- Billing asks a `TaxEngine` for the tax of each line of a document it is about to issue,
  by the customer's billing country and the product's tax code, on the issue date.
- An engine answers one tax amount per line, in the line's currency, at minor units.
- The rate-table engine rounds each line half-even to minor units; an explicit 0 rate is an
  exemption, but a (country, tax code) it has no rate for raises `TaxJurisdictionError`
  (exception class `tax_failure`): tax is never silently zero.
- A credit memo does not ask the engine again: it reverses the credited line's own tax.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol

from finsync.domain.money import Money
from finsync.systems.billing.errors import TaxError, TaxJurisdictionError


@dataclass(frozen=True, slots=True)
class TaxableLine:
    line_id: str
    tax_code: str
    amount: Money


class TaxEngine(Protocol):
    def tax(self, country: str, on: date, lines: Sequence[TaxableLine]) -> tuple[Money, ...]:
        """One tax amount per line, in order."""
        ...


@dataclass(frozen=True, slots=True)
class TaxRate:
    country: str
    tax_code: str
    rate: Decimal
    effective_from: date = date.min

    def __post_init__(self) -> None:
        if not isinstance(self.rate, Decimal) or not 0 <= self.rate < 1:
            raise TaxError(f"tax rate {self.country}/{self.tax_code} must be a Decimal in [0, 1)")


@dataclass(frozen=True, slots=True)
class RateTableTaxEngine:
    rates: tuple[TaxRate, ...]

    def rate(self, country: str, tax_code: str, on: date) -> Decimal:
        """The latest rate in effect on `on` for the country and tax code."""
        found = [r for r in self.rates if r.country == country and r.tax_code == tax_code
                 and r.effective_from <= on]
        if not found:
            raise TaxJurisdictionError(f"no tax rate for country {country!r}, "
                                       f"tax code {tax_code!r} on {on}")
        return max(found, key=lambda r: r.effective_from).rate

    def tax(self, country: str, on: date, lines: Sequence[TaxableLine]) -> tuple[Money, ...]:
        return tuple((line.amount * self.rate(country, line.tax_code, on)).quantize()
                     for line in lines)


def checked_tax(engine: TaxEngine, country: str, on: date,
                lines: Sequence[TaxableLine]) -> tuple[Money, ...]:
    """Ask the engine and refuse an answer that cannot go on a document."""
    taxes = engine.tax(country, on, lines)
    if len(taxes) != len(lines):
        raise TaxError(f"tax engine answered {len(taxes)} amounts for {len(lines)} lines")
    for line, tax in zip(lines, taxes, strict=True):
        if tax.currency != line.amount.currency or tax.quantize() != tax:
            raise TaxError(f"tax engine answered {tax} for a {line.amount.currency} line")
    return taxes
