"""The events the revenue engine applies (commands from the hub, facts from billing).

Rules:
- Every event carries an `event_id`, the hub's idempotency id; an id already applied to a
  revenue contract changes nothing.
- Amounts are `Money` in the contract's currency; a transaction-price change is signed
  (negative lowers the price).
- Percent complete is 0..100 as of a date; units delivered are counted on their date.
- Progress from inputs (`CostsReported`): costs incurred over total expected costs as of a
  date, uninstalled materials (606-10-55-21(b)) stated at their cost, included in both.
- A change in price or a credit line may name the part of it that relates to what was
  already delivered (`DeliveredPart`): that part is recognised at once.
- An approved change order (or claim) whose price is not yet agreed carries the constrained
  estimate of its change in price (606-10-25-11).
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
from finsync.domain.invoice import CreditMemo, DeliveredPart, Invoice, UsageRecord
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
    (wholly to those obligations); `service_period` narrows it to one distinct period;
    `delivered` (one obligation named) is the part of `amount` that relates to what that
    obligation has already delivered (`concession`).

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
    # Added later: left out of a request's digest while None, so a receipt stored before
    # the field existed still matches its request (`serial`, `fingerprint.ADDED_LATER`).
    delivered: DeliveredPart | None = field(default=None, metadata=ADDED_LATER)
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


@dataclass(frozen=True, slots=True)
class CostsReported:
    """Progress from inputs (606-10-55-20/21): costs incurred to date over total expected
    costs, as of a date. `uninstalled_materials` is the cost, included in both, of goods the
    customer controls that are not yet installed (606-10-55-21(b)): excluded from the
    measure and recognised at cost."""

    event_id: str
    obligation_id: str
    as_of: date
    costs_incurred: Money
    total_expected_costs: Money
    uninstalled_materials: Money | None = None


@dataclass(frozen=True, slots=True)
class ChangeOrderApproved:
    """A change in scope (or a claim) approved, its price not yet agreed (606-10-25-11):
    `estimate` is the change in price estimated as variable consideration, constrained
    (606-10-32-5 to 32-13); zero when wholly constrained."""

    event_id: str
    obligation_id: str
    approved_on: date
    estimate: Money
    description: str = ""


RevenueEvent = (ContractModified | TransactionPriceChanged | InvoiceRecorded
                | CreditMemoApplied | RefundRecorded | UsageRecorded | UnitsDelivered
                | ProgressReported | CostsReported | ChangeOrderApproved | OptionExercised
                | OptionLapsed)
