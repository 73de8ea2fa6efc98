"""Products, prices and standalone selling prices (owned by billing, read by revenue).

Rules:
- A recurring price's unit amount covers its own period (`Price.frequency`: 120.00 a seat
  a year); a contract billed on another cycle states it per billing period
  (`per_billing_period`: 30.00 a seat a quarter), exactly where the division is and
  otherwise to `PER_PERIOD_DIGITS` significant digits (rounded half even). Usage prices are
  per unit and never restated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_EVEN, Context
from enum import StrEnum

from finsync.domain.errors import DomainError
from finsync.domain.money import Money
from finsync.domain.refs import ExternalRefs


class PriceModel(StrEnum):
    FLAT = "flat"
    PER_UNIT = "per_unit"
    TIERED = "tiered"
    VOLUME = "volume"
    USAGE = "usage"


class BillingFrequency(StrEnum):
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    ANNUAL = "annual"

    @property
    def months(self) -> int:
        return {"monthly": 1, "quarterly": 3, "annual": 12}[self.value]


PER_PERIOD_DIGITS = 28
_PER_PERIOD = Context(prec=PER_PERIOD_DIGITS, rounding=ROUND_HALF_EVEN)


def per_billing_period(unit_price: Money, billing_months: int, price_months: int) -> Money:
    """A unit price over `price_months` restated per billing period of `billing_months`
    (120.00 a year billed quarterly: 120.00 x 3 / 12 = 30.00). The one restatement:
    billing's canonical contract events and the hub's version check both use it."""
    if billing_months <= 0 or price_months <= 0:
        raise DomainError("a period is a positive number of months")
    amount = _PER_PERIOD.divide(_PER_PERIOD.multiply(unit_price.amount, billing_months),
                                price_months)
    return Money(amount, unit_price.currency)


@dataclass(frozen=True, slots=True)
class Product:
    id: str
    name: str
    tax_code: str = "saas"
    revenue_pattern: str = "ratable"
    refs: ExternalRefs = field(default_factory=ExternalRefs)


@dataclass(frozen=True, slots=True)
class Price:
    id: str
    product_id: str
    model: PriceModel
    unit_amount: Money
    frequency: BillingFrequency
    included_quantity: int = 0
    refs: ExternalRefs = field(default_factory=ExternalRefs)


@dataclass(frozen=True, slots=True)
class StandaloneSellingPrice:
    """An SSP effective on `[effective_from, effective_to)`; a range when low/high differ."""

    product_id: str
    amount: Money
    effective_from: date
    effective_to: date | None = None
    low: Money | None = None
    high: Money | None = None

    def __post_init__(self) -> None:
        if self.effective_to is not None and self.effective_to <= self.effective_from:
            raise DomainError("SSP effective_to must be after effective_from")

    def applies_on(self, day: date) -> bool:
        return self.effective_from <= day and (self.effective_to is None or day < self.effective_to)
