"""A tax engine for tests: a rate per (country, product tax code), one jurisdiction line
per line, and a switch that stops it.

Rules:
- A rate of 0 is `not_taxable` (tax 0 for a stated reason); an unknown (country, tax code)
  is refused (`unknown_jurisdiction`), an engine switched off is unavailable.
- Exclusive lines: tax = amount x rate, half-even to minor units. Inclusive lines: tax =
  amount - amount / (1 + rate), rounded the same way; net = amount - tax.
- The figures billing's tests were written with: GB 20 %, DE 19 %, US 0 % (`not_taxable`
  at jurisdiction "US"); billing's unit tests price US at 5 % (`UNIT_RATES`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from finsync.domain.money import Money
from finsync.domain.tax import (
    TaxDetail,
    TaxedLine,
    TaxRefusedError,
    TaxRequest,
    TaxRequestLine,
    TaxResult,
    TaxTreatment,
    TaxUnavailableError,
)

DEMO_RATES = {("GB", "saas"): Decimal("0.20"), ("DE", "saas"): Decimal("0.19"),
              ("US", "saas"): Decimal("0")}
UNIT_RATES = {("US", "saas"): Decimal("0.05"), ("DE", "saas"): Decimal("0.19")}


@dataclass
class RateQuoter:
    rates: dict[tuple[str, str], Decimal] = field(default_factory=lambda: dict(DEMO_RATES))
    down: bool = False
    asked: list[TaxRequest] = field(default_factory=list)

    def quote(self, request: TaxRequest) -> TaxResult:
        self.asked.append(request)
        if self.down:
            raise TaxUnavailableError("test tax engine stopped")
        country = request.address.country
        return TaxResult(request.document_id,
                         tuple(self._line(country, line) for line in request.lines))

    def _line(self, country: str, line: TaxRequestLine) -> TaxedLine:
        rate = self.rates.get((country, line.tax_code))
        if rate is None:
            raise TaxRefusedError(f"no tax rate for {country}/{line.tax_code}",
                                  code="unknown_jurisdiction")
        if line.tax_inclusive:
            tax = (line.amount - Money(line.amount.amount / (1 + rate),
                                       line.amount.currency)).quantize()
            net = line.amount - tax
        else:
            net = line.amount
            tax = (line.amount * rate).quantize()
        treatment = TaxTreatment.TAXABLE if rate else TaxTreatment.NOT_TAXABLE
        return TaxedLine(line.line_id, net, tax,
                         (TaxDetail(country, "vat", rate, net, tax, treatment),))


@dataclass
class SplitQuoter:
    """Two jurisdiction lines per line (a state and a city), each rounded on its own: the
    shape a credit must reverse jurisdiction by jurisdiction."""

    state_rate: Decimal = Decimal("0.04")
    city_rate: Decimal = Decimal("0.045")

    def quote(self, request: TaxRequest) -> TaxResult:
        lines = []
        for line in request.lines:
            state = (line.amount * self.state_rate).quantize()
            city = (line.amount * self.city_rate).quantize()
            lines.append(TaxedLine(line.line_id, line.amount, state + city, (
                TaxDetail("US-NY", "sales_tax", self.state_rate, line.amount, state),
                TaxDetail("US-NY-NYC", "sales_tax", self.city_rate, line.amount, city))))
        return TaxResult(request.document_id, tuple(lines))
