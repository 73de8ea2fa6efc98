"""Card disputes (chargebacks): the case, the money it moves, and how it ends.

Rules:
- A dispute is opened once (`Dispute`): the payment the cardholder disputes, the amount
  disputed (in the payment's currency) and the reason. An inquiry (a retrieval request, an
  early warning) moves no money until it escalates.
- The money moves in steps the payment processor reports once each and never changes
  (Stripe's balance transactions): each step is one `DisputeFunds` document, issued once
  and keyed by the processor's own id for it, so every copy of every event that shows the
  step gives the same document. `amount` is the disputed money the step moved, signed as
  the processor reports it (negative: it left the merchant's balance; positive: it came
  back); `fee` is the dispute fee charged (positive) or given back (negative). The balance
  moved by the step is `net = amount - fee`. A step that moves nothing is no document.
- A step is *withdrawn* when disputed money left (or, with none moved, a fee was charged)
  and *reinstated* when it came back (or a fee was given back).
- A dispute is closed once (`DisputeClosure`) with its outcome and the steps it accounts
  for (`DisputeStep`: each step's amount and booking day). `unrecovered` is the disputed
  money those steps took and did not give back, the negated sum of their amounts, in their
  one currency (zero, in the dispute's currency, when no money moved). It is lost for good,
  whatever the outcome says: a won dispute normally leaves nothing unrecovered, a lost one
  the disputed amount. The days let a ledger relieve the dispute receivable at the values
  it booked the steps at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from finsync.domain.errors import DomainError
from finsync.domain.money import Money, total
from finsync.domain.refs import ExternalRefs


class DisputeOutcome(StrEnum):
    WON = "won"
    LOST = "lost"
    INQUIRY_CLOSED = "inquiry_closed"  # an inquiry that never became a chargeback
    PREVENTED = "prevented"  # resolved before it became a chargeback


@dataclass(frozen=True, slots=True)
class Dispute:
    id: str
    payment_id: str
    legal_entity: str
    amount: Money
    opened_on: date
    reason: str
    inquiry: bool
    refs: ExternalRefs = field(default_factory=ExternalRefs)

    def __post_init__(self) -> None:
        if self.amount.amount <= 0:
            raise DomainError(f"dispute {self.id}: amount must be positive")


@dataclass(frozen=True, slots=True)
class DisputeFunds:
    id: str
    dispute_id: str
    payment_id: str
    legal_entity: str
    amount: Money
    fee: Money
    booked_on: date
    refs: ExternalRefs = field(default_factory=ExternalRefs)

    def __post_init__(self) -> None:
        if self.amount.currency != self.fee.currency:
            raise DomainError(f"dispute funds {self.id}: amount in {self.amount.currency}, "
                              f"fee in {self.fee.currency}")
        if self.amount.is_zero and self.fee.is_zero:
            raise DomainError(f"dispute funds {self.id}: moves no money")

    @property
    def net(self) -> Money:
        """What the step moved in or out of the balance (negative: out)."""
        return self.amount - self.fee

    @property
    def withdrawn(self) -> bool:
        """Disputed money left, or (none moved) a fee was charged."""
        if not self.amount.is_zero:
            return self.amount.amount < 0
        return self.fee.amount > 0


@dataclass(frozen=True, slots=True)
class DisputeStep:
    """A step of the dispute's money as its closure accounts for it: the funds' id, the
    disputed amount they moved (signed as `DisputeFunds.amount`) and their booking day."""

    funds_id: str
    amount: Money
    booked_on: date


@dataclass(frozen=True, slots=True)
class DisputeClosure:
    id: str  # the dispute's
    payment_id: str
    legal_entity: str
    outcome: DisputeOutcome
    unrecovered: Money
    closed_on: date
    steps: tuple[DisputeStep, ...] = ()
    refs: ExternalRefs = field(default_factory=ExternalRefs)

    def __post_init__(self) -> None:
        currency = self.unrecovered.currency
        if any(step.amount.currency != currency for step in self.steps):
            raise DomainError(f"dispute {self.id}: steps in another currency than "
                              f"unrecovered {self.unrecovered}")
        taken = -total([step.amount for step in self.steps], currency)
        if taken != self.unrecovered:
            raise DomainError(f"dispute {self.id}: unrecovered {self.unrecovered} is not what "
                              f"its steps left unrecovered ({taken})")
