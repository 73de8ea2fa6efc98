"""Subscription contracts, their lines and ramp steps, and amendments.

Rules:
- A contract is versioned; every amendment makes version n+1 with an effective date.
- Versions only move forward by one; an amendment dated before the contract starts is refused.
- Lines have a service period `[start_date, end_date)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from finsync.domain.catalog import BillingFrequency
from finsync.domain.errors import DomainError
from finsync.domain.money import Money
from finsync.domain.refs import ExternalRefs


@dataclass(frozen=True, slots=True)
class RampStep:
    starts_on: date
    quantity: int
    unit_price: Money


@dataclass(frozen=True, slots=True)
class ContractLine:
    line_id: str
    product_id: str
    price_id: str
    quantity: int
    unit_price: Money
    start_date: date
    end_date: date
    ramp: tuple[RampStep, ...] = ()

    def __post_init__(self) -> None:
        if self.quantity < 0:
            raise DomainError(f"line {self.line_id}: quantity cannot be negative")
        if self.end_date <= self.start_date:
            raise DomainError(f"line {self.line_id}: end date must be after start date")


@dataclass(frozen=True, slots=True)
class SubscriptionContract:
    id: str
    customer_id: str
    legal_entity: str
    currency: str
    start_date: date
    end_date: date
    billing_frequency: BillingFrequency
    lines: tuple[ContractLine, ...]
    version: int = 1
    refs: ExternalRefs = field(default_factory=ExternalRefs)

    def __post_init__(self) -> None:
        if self.version < 1:
            raise DomainError("contract versions start at 1")
        for line in self.lines:
            if line.unit_price.currency != self.currency:
                raise DomainError(f"line {line.line_id} is not in {self.currency}")


@dataclass(frozen=True, slots=True)
class ContractChange:
    """One machine-readable difference between two versions (`op` names what changed)."""

    op: str
    line_id: str
    before: str | None = None
    after: str | None = None


@dataclass(frozen=True, slots=True)
class ContractAmendment:
    id: str
    contract_id: str
    version: int
    effective_date: date
    reason: str
    changes: tuple[ContractChange, ...]
    contract: SubscriptionContract

    def __post_init__(self) -> None:
        if self.contract.id != self.contract_id:
            raise DomainError(f"amendment {self.id} names {self.contract_id} but carries "
                              f"{self.contract.id}")
        if self.version < 2 or self.contract.version != self.version:
            raise DomainError("an amendment makes version n+1 (>= 2) of its contract")
        if self.effective_date < self.contract.start_date:
            raise DomainError("an amendment cannot take effect before the contract starts")
