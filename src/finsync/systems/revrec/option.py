"""Customer options as the caller states them (606-10-55-41 to 55-45; IFRS 15 B39-B43).

Rules:
- An option is stated at booking, in the recognition terms: an id (the id of its
  material-right obligation), its expiry and how its standalone selling price is found.
- `STANDALONE_SELLING_PRICE` (606-10-55-44): the option's discount, the discount a customer
  gets anyway without the contract, whether the two combine (`stacks`), the purchases
  expected under the option (at their SSP) and the likelihood of exercise, in percent.
- `PRACTICAL_ALTERNATIVE` (606-10-55-45), for renewals of one line on the same terms: the
  renewal terms with their price per unit, the share of the term before expected to renew
  (percent) and a weight per unit for allocating (the SSP of the term's service, or its
  expected cost when progress is measured by costs, as in Example 51); `weight` is the
  current term's. The option expires when the first renewal term starts.
- Percentages are 0..100 `Decimal`s; amounts `Money` in the contract's currency.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum

from finsync.domain.clock import Period
from finsync.domain.money import Money


class OptionMethod(StrEnum):
    STANDALONE_SELLING_PRICE = "standalone_selling_price"
    PRACTICAL_ALTERNATIVE = "practical_alternative"


PARAGRAPHS: dict[OptionMethod, str] = {
    OptionMethod.STANDALONE_SELLING_PRICE: "606-10-55-44",
    OptionMethod.PRACTICAL_ALTERNATIVE: "606-10-55-45",
}


@dataclass(frozen=True, slots=True)
class RenewalTerm:
    span: Period
    unit_price: Money
    renewal_rate_percent: Decimal
    weight: Money


@dataclass(frozen=True, slots=True)
class CustomerOption:
    option_id: str
    expires_on: date
    method: OptionMethod = OptionMethod.STANDALONE_SELLING_PRICE
    discount_percent: Decimal = Decimal(0)
    discount_available_anyway_percent: Decimal = Decimal(0)
    stacks: bool = False
    expected_purchases: Money | None = None
    likelihood_percent: Decimal = Decimal(0)
    obligation_id: str | None = None
    weight: Money | None = None
    renewals: tuple[RenewalTerm, ...] = ()

    @property
    def paragraph(self) -> str:
        return PARAGRAPHS[self.method]

    @property
    def incremental_discount_percent(self) -> Decimal:
        """The discount only the contract gives (606-10-55-44(a)): the option's less the one
        any customer gets anyway, or, when they combine, what the option adds on top."""
        anyway = self.discount_available_anyway_percent
        if self.stacks:
            return self.discount_percent * (100 - anyway) / 100
        return self.discount_percent - anyway
