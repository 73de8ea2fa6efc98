"""The commercial layer: what CPQ approved, and the order the hub sends billing for it.

Rules:
- A commercial contract is versioned by CPQ: version 1 is the original order, and every
  approved amendment, renewal or cancellation is version n+1 (`kind`). Each version carries
  the whole contract as approved (every line, not a diff), so the subscription platform's
  resulting contract can be checked against it line by line.
- `quote_id` names the approved commercial change: it is the correlation id of everything
  the change causes, billing's amendment id, and the idempotency key of the order.
- Lines are keyed by `line_id`, stable across versions (Salesforce's subscription id, a
  HubSpot line item id); `product_code` is CPQ's product, which the hub's catalogue map
  turns into billing's price (`SubscriptionOrder` carries billing's ids).
- Prices are per unit and per billing period of the mapped price, in the contract's
  currency. Like billing's contract prices they may be finer than minor units (a usage
  price per API call, 0.002: CPQ's unit price scale); what is invoiced is rounded by
  billing, at the document. `net_unit_price` is what is charged; `list_unit_price` and
  `discount_percent` say how it was reached. A ramp step sets the quantity and net price
  from its date on.
- `end_date` is the term's end (exclusive): the date an amendment's lines co-terminate to.
- `sold_to_id` buys, `bill_to_id` is invoiced (billing's contract customer); both are
  canonical customer ids owned by the customer master.
- Proration terms say how a mid-term change is charged, in Stripe's words:
  `invoice_now` (always_invoice), `next_invoice` (create_prorations), `none`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum

from finsync.domain.catalog import BillingFrequency
from finsync.domain.contract import RampStep
from finsync.domain.errors import DomainError
from finsync.domain.money import Money
from finsync.domain.refs import ExternalRefs

_HUNDRED = Decimal(100)


class CommercialKind(StrEnum):
    NEW = "new"
    AMENDMENT = "amendment"
    RENEWAL = "renewal"
    CANCELLATION = "cancellation"


class ProrationTerms(StrEnum):
    """How a mid-term change is charged (Stripe's `proration_behavior` in brackets)."""

    INVOICE_NOW = "invoice_now"  # always_invoice: prorate and invoice at once
    NEXT_INVOICE = "next_invoice"  # create_prorations: prorate onto the next invoice
    NONE = "none"  # none: the change takes effect without a charge for the part period


@dataclass(frozen=True, slots=True)
class CommercialRampStep:
    starts_on: date
    quantity: int
    net_unit_price: Money


@dataclass(frozen=True, slots=True)
class CommercialLine:
    line_id: str
    product_code: str
    quantity: int
    list_unit_price: Money
    discount_percent: Decimal
    net_unit_price: Money
    start_date: date
    end_date: date
    ramp: tuple[CommercialRampStep, ...] = ()

    def __post_init__(self) -> None:
        if self.quantity < 0:
            raise DomainError(f"line {self.line_id}: quantity cannot be negative")
        if self.end_date <= self.start_date:
            raise DomainError(f"line {self.line_id}: end date must be after start date")
        if not Decimal(0) <= self.discount_percent < _HUNDRED:
            raise DomainError(f"line {self.line_id}: discount must be in [0, 100) percent")
        if self.net_unit_price.amount < 0 or self.list_unit_price.amount < 0:
            raise DomainError(f"line {self.line_id}: prices cannot be negative")
        steps = [s.starts_on for s in self.ramp]
        if steps != sorted(set(steps)):
            raise DomainError(f"line {self.line_id}: ramp steps must be in date order, "
                              "one per date")
        if any(not self.start_date <= d < self.end_date for d in steps):
            raise DomainError(f"line {self.line_id}: a ramp step starts outside the line")


@dataclass(frozen=True, slots=True)
class CommercialContract:
    id: str
    version: int
    kind: CommercialKind
    quote_id: str
    sold_to_id: str
    bill_to_id: str
    legal_entity: str
    currency: str
    start_date: date
    end_date: date
    effective_date: date
    billing_frequency: BillingFrequency
    lines: tuple[CommercialLine, ...]
    proration: ProrationTerms = ProrationTerms.INVOICE_NOW
    renewal_uplift_percent: Decimal = Decimal(0)
    auto_renew: bool = True
    refs: ExternalRefs = field(default_factory=ExternalRefs)

    def __post_init__(self) -> None:
        if self.version < 1:
            raise DomainError("commercial contract versions start at 1")
        if (self.kind is CommercialKind.NEW) != (self.version == 1):
            raise DomainError(f"version {self.version} cannot be a {self.kind.value} "
                              "(version 1 is the new order; later ones change it)")
        if self.end_date <= self.start_date:
            raise DomainError("the term must end after it starts")
        if not self.start_date <= self.effective_date <= self.end_date:
            raise DomainError("a change takes effect within the term")
        if not Decimal(0) <= self.renewal_uplift_percent <= _HUNDRED:
            raise DomainError("the renewal uplift must be in [0, 100] percent")
        ids = [line.line_id for line in self.lines]
        if len(ids) != len(set(ids)):
            raise DomainError("each line id appears once")
        for line in self.lines:
            prices = (line.list_unit_price, line.net_unit_price,
                      *(s.net_unit_price for s in line.ramp))
            if any(p.currency != self.currency for p in prices):
                raise DomainError(f"line {line.line_id} is not in {self.currency}")
            if line.end_date > self.end_date:
                raise DomainError(f"line {line.line_id} ends after the term")


@dataclass(frozen=True, slots=True)
class OrderLine:
    """A contract line in billing's terms: its product and price ids, the net price."""

    line_id: str
    product_id: str
    price_id: str
    quantity: int
    unit_price: Money
    start_date: date
    end_date: date
    ramp: tuple[RampStep, ...] = ()


@dataclass(frozen=True, slots=True)
class SubscriptionOrder:
    """What the hub asks the subscription platform to make true: the contract as CPQ
    approved it (version `cpq_version`), in billing's ids, translated with version
    `catalog_version` of the catalogue map. `id` is the quote id: the platform's amendment
    id and idempotency key, so the same order applied twice changes nothing."""

    id: str
    kind: CommercialKind
    contract_id: str
    cpq_version: int
    customer_id: str
    legal_entity: str
    currency: str
    start_date: date
    end_date: date
    effective_date: date
    billing_frequency: BillingFrequency
    lines: tuple[OrderLine, ...]
    proration: ProrationTerms
    auto_renew: bool
    catalog_version: int
