"""What the core says it changed: canonical events as plain data.

Rules:
- Every command returns an `Outcome`: the new state and, in causal order, one `Emitted` per
  change (contract created / amended / renewed / cancelled with its version, invoice issued,
  credit memo issued, payment applied, refund issued, usage recorded, usage rated).
- `correlation_id` names the commercial change that started it all (the order or amendment
  id; a renewal's derived id); every invoice, credit memo, payment and refund carries the
  correlation of the change that caused it.
- `causation` is the aggregate of the event that caused this one (e.g. the contract version
  an invoice bills); a later layer turns both into envelope ids.
- A command that changes nothing (a usage record sent again) emits nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from finsync.domain.clock import Period
from finsync.domain.contract import ContractAmendment, SubscriptionContract
from finsync.domain.envelope import AggregateRef
from finsync.domain.invoice import CreditMemo, Invoice, UsageRecord
from finsync.domain.money import Money
from finsync.domain.payment import Payment, Refund

if TYPE_CHECKING:
    from finsync.systems.billing.state import BillingState

CONTRACT_CREATED = "contract.created"
CONTRACT_AMENDED = "contract.amended"
CONTRACT_RENEWED = "contract.renewed"
CONTRACT_CANCELLED = "contract.cancelled"
INVOICE_ISSUED = "invoice.issued"
CREDIT_MEMO_ISSUED = "credit_memo.issued"
PAYMENT_APPLIED = "payment.applied"
REFUND_ISSUED = "refund.issued"
USAGE_RECORDED = "usage.recorded"
USAGE_RATED = "usage.rated"


@dataclass(frozen=True, slots=True)
class UsageCharge:
    """The rating of one usage line for one period; `drawn` came off the prepaid balance."""

    id: str
    contract_id: str
    line_id: str
    product_id: str
    period: Period
    used: int
    included: int
    billable: int
    amount: Money
    drawn: Money
    invoiced: Money
    invoice_id: str | None


Document = (SubscriptionContract | ContractAmendment | Invoice | CreditMemo | Payment | Refund
            | UsageRecord | UsageCharge)


@dataclass(frozen=True, slots=True)
class Emitted:
    type: str
    aggregate: AggregateRef
    document: Document
    correlation_id: str
    causation: AggregateRef | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    state: BillingState
    emitted: tuple[Emitted, ...] = ()

    def then(self, other: Outcome) -> Outcome:
        """`other` ran on this outcome's state: keep its state and both emissions in order."""
        return Outcome(other.state, self.emitted + other.emitted)


def contract_ref(contract: SubscriptionContract) -> AggregateRef:
    return AggregateRef("subscription_contract", contract.id, contract.version)


def document_ref(aggregate_type: str, document_id: str) -> AggregateRef:
    return AggregateRef(aggregate_type, document_id, None)
