"""Payments, their applications to invoices, refunds, and declined payment attempts.

Rules:
- Applications never exceed the payment, and share its currency.
- A declined (or failed) attempt moved no money: it is what dunning follows, never a
  posting. It names the payment it attempted, the invoices that payment was for (none: a
  payment on account) and the processor's code for why; never the processor's message,
  which may quote the card holder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from finsync.domain.errors import DomainError
from finsync.domain.money import Money, total
from finsync.domain.refs import ExternalRefs


@dataclass(frozen=True, slots=True)
class PaymentApplication:
    invoice_id: str
    amount: Money


@dataclass(frozen=True, slots=True)
class Payment:
    id: str
    customer_id: str
    legal_entity: str
    amount: Money
    received_on: date
    applications: tuple[PaymentApplication, ...]
    refs: ExternalRefs = field(default_factory=ExternalRefs)

    def __post_init__(self) -> None:
        applied = total([a.amount for a in self.applications], self.amount.currency)
        if self.amount.amount <= 0:
            raise DomainError(f"payment {self.id}: amount must be positive")
        if self.amount < applied:
            raise DomainError(f"payment {self.id}: applications {applied} exceed {self.amount}")


@dataclass(frozen=True, slots=True)
class Refund:
    id: str
    payment_id: str
    customer_id: str
    legal_entity: str
    amount: Money
    issued_on: date
    reason: str
    refs: ExternalRefs = field(default_factory=ExternalRefs)
    # How much of the refund billing paid out of a credit the customer held (the rest gives
    # back a payment, so billing re-opens what it paid). Given, the ERP follows it whatever
    # the order documents reach it in.
    from_credit: Money | None = None
    # The invoice the rest re-opens (the one the payment paid).
    reopens_invoice: str | None = None

    def __post_init__(self) -> None:
        if self.amount.amount <= 0:
            raise DomainError(f"refund {self.id}: amount must be positive")
        credit = self.from_credit
        if credit is not None and not (credit.currency == self.amount.currency
                                       and 0 <= credit.amount <= self.amount.amount):
            raise DomainError(f"refund {self.id}: from_credit {credit} must be between 0 and "
                              f"{self.amount}")


@dataclass(frozen=True, slots=True)
class PaymentAttempt:
    """One attempt to collect a payment that was declined or failed."""

    id: str
    payment_id: str  # the payment it attempted (a retry attempts the same payment again)
    customer_id: str
    legal_entity: str
    amount: Money  # what it tried to collect
    attempted_on: date
    decline_code: str  # the processor's code: `insufficient_funds`, `expired_card`, …
    invoice_ids: tuple[str, ...] = ()
    refs: ExternalRefs = field(default_factory=ExternalRefs)

    def __post_init__(self) -> None:
        if self.amount.amount <= 0:
            raise DomainError(f"payment attempt {self.id}: amount must be positive")
