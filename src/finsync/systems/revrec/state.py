"""The state of one revenue contract, as a value.

Rules:
- A revenue contract follows one subscription contract (id derived from it); it holds the
  latest contract version, its obligations, every modification decision, the billings and
  the ids of every event applied to it.
- The state is immutable: applying an event returns a new state; an event whose id is
  already in `applied_event_ids` returns the same state (idempotency).
- The transaction price is the sum of the obligations' allocated prices.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

from finsync.domain.contract import SubscriptionContract
from finsync.domain.money import Money, total
from finsync.systems.revrec.allocation import AllocatedShare
from finsync.systems.revrec.errors import UnknownObligationError
from finsync.systems.revrec.modification import ModificationDecision
from finsync.systems.revrec.obligation import ObligationState
from finsync.systems.revrec.pattern import Granularity
from finsync.systems.revrec.terms import RecognitionTerms


@dataclass(frozen=True, slots=True)
class Billing:
    """Consideration billed (positive) or credited (negative) for one obligation."""

    event_id: str
    document_id: str
    obligation_id: str
    issued_on: date
    amount: Money


@dataclass(frozen=True, slots=True)
class RevenueContractState:
    revenue_contract_id: str
    contract: SubscriptionContract
    terms: RecognitionTerms
    obligations: tuple[ObligationState, ...]
    inception_allocation: tuple[AllocatedShare, ...] = ()
    decisions: tuple[ModificationDecision, ...] = ()
    billings: tuple[Billing, ...] = ()
    applied_event_ids: frozenset[str] = frozenset()

    @property
    def currency(self) -> str:
        return self.contract.currency

    @property
    def legal_entity(self) -> str:
        return self.contract.legal_entity

    @property
    def granularity(self) -> Granularity:
        return self.terms.granularity

    @property
    def transaction_price(self) -> Money:
        return total([ob.allocated_price for ob in self.obligations], self.currency)

    def obligation(self, obligation_id: str) -> ObligationState:
        for ob in self.obligations:
            if ob.obligation_id == obligation_id:
                return ob
        raise UnknownObligationError(
            f"{self.revenue_contract_id} has no performance obligation {obligation_id!r}")

    def with_obligations(self, changed: tuple[ObligationState, ...]) -> RevenueContractState:
        """Replace obligations by id; obligations not yet known are appended in order."""
        by_id = {ob.obligation_id: ob for ob in changed}
        kept = tuple(by_id.pop(ob.obligation_id, ob) for ob in self.obligations)
        return replace(self, obligations=(*kept, *by_id.values()))

    def applied(self, event_id: str) -> RevenueContractState:
        return replace(self, applied_event_ids=self.applied_event_ids | {event_id})
