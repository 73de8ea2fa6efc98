"""Products, prices and standalone selling prices (owned by billing, read by revenue)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
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
