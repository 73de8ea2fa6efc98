"""The events the revenue engine applies (commands from the hub, facts from billing).

Rules:
- Every event carries an `event_id`, the hub's idempotency id; an id already applied to a
  revenue contract changes nothing.
- Amounts are `Money` in the contract's currency; a transaction-price change is signed
  (negative lowers the price).
- Percent complete is 0..100 as of a date; units delivered are counted on their date.
- A refund without an obligation pays out a credit balance (no revenue effect); with one it
  is a price concession paid in cash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum

from finsync.domain.catalog import StandaloneSellingPrice
from finsync.domain.clock import Period
from finsync.domain.contract import ContractAmendment, SubscriptionContract
from finsync.domain.invoice import CreditMemo, Invoice, UsageRecord
from finsync.domain.money import Money
from finsync.domain.payment import Refund
from finsync.systems.revrec.modification import ModificationFacts
from finsync.systems.revrec.terms import RecognitionTerms


class PriceChangeKind(StrEnum):
    VARIABLE_CONSIDERATION = "variable_consideration"
    PRICE_CONCESSION = "price_concession"
    VOLUME_TRUE_UP = "volume_true_up"


class CreditTreatment(StrEnum):
    PRICE_CONCESSION = "price_concession"
    BILLING_CORRECTION = "billing_correction"


@dataclass(frozen=True, slots=True)
class ContractBooked:
    event_id: str
    contract: SubscriptionContract
    standalone_selling_prices: tuple[StandaloneSellingPrice, ...]
    terms: RecognitionTerms = field(default_factory=RecognitionTerms)


@dataclass(frozen=True, slots=True)
class ContractModified:
    event_id: str
    amendment: ContractAmendment
    facts: ModificationFacts
    standalone_selling_prices: tuple[StandaloneSellingPrice, ...]


@dataclass(frozen=True, slots=True)
class TransactionPriceChanged:
    """A change after inception (606-10-32-42): `obligation_ids` set means 606-10-32-44
    (wholly to those obligations); `service_period` narrows it to one distinct period."""

    event_id: str
    effective_date: date
    amount: Money
    kind: PriceChangeKind
    obligation_ids: frozenset[str] = frozenset()
    service_period: Period | None = None


@dataclass(frozen=True, slots=True)
class InvoiceRecorded:
    event_id: str
    invoice: Invoice


@dataclass(frozen=True, slots=True)
class CreditMemoApplied:
    """`treatment` None: decided by the memo's reason (see `RecognitionTerms`)."""

    event_id: str
    memo: CreditMemo
    treatment: CreditTreatment | None = None


@dataclass(frozen=True, slots=True)
class RefundRecorded:
    event_id: str
    refund: Refund
    obligation_id: str | None = None


@dataclass(frozen=True, slots=True)
class UsageRecorded:
    """Usage as incurred. `amount`, when given, is the usage as its owner rated it (billing's
    rating: billable units x the price in force then); the engine then takes it as is, also
    for a day the contract's current version no longer covers (usage of an earlier term
    arriving after a renewal)."""

    event_id: str
    usage: UsageRecord
    amount: Money | None = None


@dataclass(frozen=True, slots=True)
class UnitsDelivered:
    event_id: str
    obligation_id: str
    delivered_on: date
    quantity: int


@dataclass(frozen=True, slots=True)
class ProgressReported:
    event_id: str
    obligation_id: str
    as_of: date
    percent_complete: Decimal


@dataclass(frozen=True, slots=True)
class OptionExercised:
    """A customer exercised an option (`material_right`). `quantity`: units renewed, for a
    renewal under the practical alternative (default: every unit of the term before);
    `service_period`: the span over which the goods bought transfer, for a right priced by
    its SSP estimate (default: at once, on the date)."""

    event_id: str
    option_id: str
    exercised_on: date
    quantity: int | None = None
    service_period: Period | None = None


@dataclass(frozen=True, slots=True)
class OptionLapsed:
    event_id: str
    option_id: str
    lapsed_on: date


RevenueEvent = (ContractModified | TransactionPriceChanged | InvoiceRecorded
                | CreditMemoApplied | RefundRecorded | UsageRecorded | UnitsDelivered
                | ProgressReported | OptionExercised | OptionLapsed)
