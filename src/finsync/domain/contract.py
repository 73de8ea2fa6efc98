"""Subscription contracts, their lines and ramp steps, and amendments.

Rules:
- A contract is versioned; every amendment makes version n+1 with an effective date.
- Versions only move forward by one; an amendment dated before the contract starts is refused.
- Lines have a service period `[start_date, end_date)`.
- Billing cycles are laid on `billing_anchor` (the bill-cycle date: Stripe's
  `billing_cycle_anchor`, Zuora's and Chargebee's bill cycle day); None means the start date,
  and an anchor equal to the start date is spelled None, so each calendar has one spelling.
  A start before the anchor is billed as a stub up to it.
- `proration` names the convention a part of a billing cycle is priced by
  (`domain.proration`; default by day). Both fields came after contracts were stored: they
  are written only when they differ from their defaults (`fingerprint.ADDED_LATER`).
- A change names its op (`ChangeOp`); a contract-level change has `line_id` `CONTRACT_LEVEL`
  ("*"), and an empty `before`/`after` (a ramp that had no steps) is None, so every change
  has one spelling on the wire and in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from finsync.domain.catalog import BillingFrequency
from finsync.domain.errors import DomainError
from finsync.domain.fingerprint import ADDED_LATER
from finsync.domain.money import Money
from finsync.domain.proration import ProrationConvention
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
    billing_anchor: date | None = field(default=None, metadata=ADDED_LATER)
    proration: ProrationConvention = field(default=ProrationConvention.BY_DAY,
                                           metadata=ADDED_LATER)

    def __post_init__(self) -> None:
        if self.version < 1:
            raise DomainError("contract versions start at 1")
        if self.billing_anchor == self.start_date:
            object.__setattr__(self, "billing_anchor", None)
        for line in self.lines:
            if line.unit_price.currency != self.currency:
                raise DomainError(f"line {line.line_id} is not in {self.currency}")

    @property
    def cycle_anchor(self) -> date:
        """The date billing cycles are laid from: the billing anchor, else the start."""
        return self.billing_anchor or self.start_date


CONTRACT_LEVEL = "*"


class ChangeOp(StrEnum):
    """What one change did. `renewal_*` ops move only the renewal baseline (a downgrade
    deferred to renewal), so a reader can tell today's contract from next term's."""

    LINE_ADDED = "line_added"
    LINE_REMOVED = "line_removed"
    QUANTITY_CHANGED = "quantity_changed"
    UNIT_PRICE_CHANGED = "unit_price_changed"
    SERVICE_START_CHANGED = "service_start_changed"
    SERVICE_END_CHANGED = "service_end_changed"
    RAMP_CHANGED = "ramp_changed"
    PRICE_CHANGED = "price_changed"
    BILLING_FREQUENCY_CHANGED = "billing_frequency_changed"
    TERM_CHANGED = "term_changed"
    RENEWAL_LINE_ADDED = "renewal_line_added"
    RENEWAL_LINE_REMOVED = "renewal_line_removed"
    RENEWAL_QUANTITY_CHANGED = "renewal_quantity_changed"
    RENEWAL_UNIT_PRICE_CHANGED = "renewal_unit_price_changed"
    RENEWAL_SERVICE_START_CHANGED = "renewal_service_start_changed"
    RENEWAL_SERVICE_END_CHANGED = "renewal_service_end_changed"
    RENEWAL_RAMP_CHANGED = "renewal_ramp_changed"
    RENEWAL_PRICE_CHANGED = "renewal_price_changed"
    RENEWAL_BILLING_FREQUENCY_CHANGED = "renewal_billing_frequency_changed"
    RENEWAL_TERM_CHANGED = "renewal_term_changed"
    CANCEL_AT_TERM_END = "cancel_at_term_end"
    CANCELLED = "cancelled"
    # A source that reports changed attributes rather than a diff (Stripe's
    # `previous_attributes`): `attribute` names which one.
    ATTRIBUTE_CHANGED = "attribute_changed"
    # A source that told the new state only.
    STATE_REPLACED = "state_replaced"

    def at_renewal(self) -> ChangeOp:
        """The same change, made to the renewal baseline only."""
        return ChangeOp(f"renewal_{self.value}")


@dataclass(frozen=True, slots=True)
class ContractChange:
    """One machine-readable difference between two versions (`op` names what changed)."""

    op: ChangeOp
    line_id: str = CONTRACT_LEVEL
    before: str | None = None
    after: str | None = None
    attribute: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "line_id", self.line_id or CONTRACT_LEVEL)
        object.__setattr__(self, "before", self.before or None)
        object.__setattr__(self, "after", self.after or None)


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
