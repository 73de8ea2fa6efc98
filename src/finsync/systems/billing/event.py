"""What the core says it changed: typed canonical events with their lineage.

Rules:
- Each change is one `Emitted`: the typed domain event (`ContractCreated`, `ContractAmended`,
  `ContractRenewed` or `ContractCancelled` with the new version, `InvoiceIssued`,
  `CreditMemoIssued`, `PaymentApplied`, `RefundIssued`, `UsageRecorded`, `UsageRated`) and
  the aggregate it changed, which is the event's own (`emit`).
- `correlation_id` names the commercial change that started it all (the order or amendment
  id; a renewal's derived id); every invoice, credit memo, payment and refund carries the
  correlation of the change that caused it.
- `causation` is the aggregate of the event that caused this one (e.g. the contract version
  an invoice bills); a later layer turns both into envelope ids.
"""

from __future__ import annotations

from dataclasses import dataclass

from finsync.domain.aggregate import AggregateRef
from finsync.domain.contract import SubscriptionContract
from finsync.domain.events import AnyEvent, ContractCreated


@dataclass(frozen=True, slots=True)
class Emitted:
    event: AnyEvent
    aggregate: AggregateRef
    correlation_id: str
    causation: AggregateRef | None = None


def emit(event: AnyEvent, correlation_id: str,
         causation: AggregateRef | None = None) -> Emitted:
    """`event`, emitted on its own aggregate."""
    return Emitted(event, event.aggregate(), correlation_id, causation)


def contract_ref(contract: SubscriptionContract) -> AggregateRef:
    """The aggregate of one contract version (what its invoices and next version follow)."""
    return AggregateRef(ContractCreated.aggregate_type, contract.id, contract.version)
