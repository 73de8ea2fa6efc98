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
from finsync.domain.fingerprint import ADDED_LATER
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
    (wholly to those obligations); `service_period` narrows it to one distinct period.

    `promised_before`: the id of a 25-13(a) modification (its amendment) when the change is
    attributable to variable consideration promised before it (606-10-32-45(a)): it goes to
    the obligations identified before that modification, on their inception SSPs, and only
    what falls to goods not yet transferred then joins the modification's pool. A change
    with a part promised before and a part not is two events."""

    event_id: str
    effective_date: date
    amount: Money
    kind: PriceChangeKind
    obligation_ids: frozenset[str] = frozenset()
    service_period: Period | None = None
    promised_before: str | None = field(default=None, metadata=ADDED_LATER)


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


RevenueEvent = (ContractModified | TransactionPriceChanged | InvoiceRecorded
                | CreditMemoApplied | RefundRecorded | UsageRecorded | UnitsDelivered
                | ProgressReported)
