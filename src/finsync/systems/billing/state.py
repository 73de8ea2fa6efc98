"""The billing state: configuration, subscriptions and every document issued, immutable.

Rules:
- Commands never mutate a state; they return a new one (`dataclasses.replace`), so a command
  that raises leaves the caller's state exactly as it was.
- An invoice whose tax could not be computed is held as a draft (`held`, unnumbered) and
  issued later with the next number; a held draft's versions replace each other.
- Issued documents are append-only: an invoice is never edited once issued; a correction is
  a credit memo linked to it.
- Numbers are gapless and sequential per legal entity and document kind:
  `INV-<entity>-000001`, `CM-<entity>-000001`; document ids derive from the number. The
  state carries the last number of each (kind, entity) in `numbering`, bumped by every
  document issued, so a state holding only some customers' documents numbers correctly.
- An invoice's amount due = total - credit memos - payments applied + refunds of those
  payments (a cash refund without a credit reopens the receivable, as AR does).
- Each subscription keeps its versions with the dates they took effect (arrears charges are
  rated version by version), its renewal baseline (the lines the next term starts from,
  moved by every amendment) and how far it is billed in advance and in arrears.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum

from finsync.domain.clock import Period
from finsync.domain.contract import ContractAmendment, ContractLine, SubscriptionContract
from finsync.domain.ids import derive_id
from finsync.domain.invoice import CreditMemo, Invoice, RatedUsage, UsageRecord
from finsync.domain.money import Money, total
from finsync.domain.party import CustomerAccount
from finsync.domain.payment import Payment, Refund
from finsync.systems.billing.catalog import Catalog
from finsync.systems.billing.cycle import Cycle
from finsync.systems.billing.draft import HeldDraft
from finsync.systems.billing.errors import (
    UnknownContractError,
    UnknownCustomerError,
    UnknownDocumentError,
)
from finsync.systems.billing.proration import ProrationRule
from finsync.systems.billing.tax import TaxQuoter


class SubscriptionStatus(StrEnum):
    ACTIVE = "active"
    CANCEL_AT_TERM_END = "cancel_at_term_end"
    CANCELLED = "cancelled"


class DowngradePolicy(StrEnum):
    CREDIT_NOW = "credit_now"
    AT_RENEWAL = "at_renewal"


@dataclass(frozen=True, slots=True)
class BillingConfig:
    catalog: Catalog
    tax: TaxQuoter
    proration: ProrationRule = field(default_factory=ProrationRule)
    downgrade_policy: DowngradePolicy = DowngradePolicy.CREDIT_NOW
    payment_terms_days: int = 30
    invoice_prefix: str = "INV"
    credit_memo_prefix: str = "CM"


@dataclass(frozen=True, slots=True)
class VersionInForce:
    effective_date: date
    contract: SubscriptionContract


@dataclass(frozen=True, slots=True)
class Subscription:
    contract: SubscriptionContract
    correlation_id: str
    anchor: date
    term_months: int
    auto_renew: bool
    arrears_months: int
    status: SubscriptionStatus
    billed_through: date
    cycle: Cycle | None
    arrears_through: date
    renewal_lines: tuple[ContractLine, ...]
    prepaid_balance: Money
    history: tuple[VersionInForce, ...]
    amendments: tuple[ContractAmendment, ...] = ()

    @property
    def id(self) -> str:
        return self.contract.id


@dataclass(frozen=True, slots=True)
class InvoiceRecord:
    """An issued invoice, the change it belongs to, and the contract line of each line."""

    invoice: Invoice
    correlation_id: str
    sources: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DeclinedPayment:
    payment_id: str
    invoice_id: str
    amount: Money
    attempted_on: date
    reason: str


INVOICE, CREDIT_MEMO = "invoice", "credit_memo"


@dataclass(frozen=True, slots=True)
class Numbering:
    """The last number each legal entity gave each kind of document (0: none yet)."""

    last: tuple[tuple[str, str, int], ...] = ()  # (kind, legal entity, last), sorted

    def of(self, kind: str, legal_entity: str) -> int:
        for k, entity, number in self.last:
            if (k, entity) == (kind, legal_entity):
                return number
        return 0

    def bumped(self, kind: str, legal_entity: str) -> Numbering:
        others = [x for x in self.last if (x[0], x[1]) != (kind, legal_entity)]
        bumped = (kind, legal_entity, self.of(kind, legal_entity) + 1)
        return Numbering(tuple(sorted([*others, bumped])))


@dataclass(frozen=True, slots=True)
class BillingState:
    config: BillingConfig
    customers: tuple[CustomerAccount, ...] = ()
    subscriptions: tuple[Subscription, ...] = ()
    invoices: tuple[InvoiceRecord, ...] = ()
    credit_memos: tuple[CreditMemo, ...] = ()
    payments: tuple[Payment, ...] = ()
    declines: tuple[DeclinedPayment, ...] = ()
    refunds: tuple[Refund, ...] = ()
    usage: tuple[UsageRecord, ...] = ()
    usage_charges: tuple[RatedUsage, ...] = ()
    numbering: Numbering = field(default_factory=Numbering)
    held: tuple[HeldDraft, ...] = ()  # held drafts, each at its latest version

    def customer(self, customer_id: str) -> CustomerAccount:
        for customer in self.customers:
            if customer.id == customer_id:
                return customer
        raise UnknownCustomerError(f"unknown customer {customer_id!r}")

    def subscription(self, contract_id: str) -> Subscription:
        for sub in self.subscriptions:
            if sub.id == contract_id:
                return sub
        raise UnknownContractError(f"unknown subscription contract {contract_id!r}")

    def invoice_record(self, invoice_id: str) -> InvoiceRecord:
        for record in self.invoices:
            if record.invoice.id == invoice_id:
                return record
        raise UnknownDocumentError(f"unknown invoice {invoice_id!r}")

    def payment(self, payment_id: str) -> Payment:
        for payment in self.payments:
            if payment.id == payment_id:
                return payment
        raise UnknownDocumentError(f"unknown payment {payment_id!r}")

    def with_subscription(self, sub: Subscription) -> BillingState:
        others = tuple(s for s in self.subscriptions if s.id != sub.id)
        if len(others) == len(self.subscriptions):
            return replace(self, subscriptions=(*self.subscriptions, sub))
        return replace(self, subscriptions=tuple(sub if s.id == sub.id else s
                                                 for s in self.subscriptions))

    def next_invoice_number(self, legal_entity: str) -> tuple[str, str]:
        """(id, number) of the next invoice of `legal_entity`."""
        count = self.numbering.of(INVOICE, legal_entity)
        number = f"{self.config.invoice_prefix}-{legal_entity}-{count + 1:06d}"
        return derive_id("inv", legal_entity, number), number

    def next_credit_memo_number(self, legal_entity: str) -> tuple[str, str]:
        count = self.numbering.of(CREDIT_MEMO, legal_entity)
        number = f"{self.config.credit_memo_prefix}-{legal_entity}-{count + 1:06d}"
        return derive_id("cm", legal_entity, number), number

    def with_invoice(self, record: InvoiceRecord) -> BillingState:
        """`record` issued: appended, and its number taken."""
        numbering = self.numbering.bumped(INVOICE, record.invoice.legal_entity)
        return replace(self, invoices=(*self.invoices, record), numbering=numbering)

    def held_draft(self, draft_id: str) -> HeldDraft:
        for draft in self.held:
            if draft.id == draft_id:
                return draft
        raise UnknownDocumentError(f"unknown held invoice {draft_id!r}")

    def with_held(self, draft: HeldDraft) -> BillingState:
        """`draft` held (appended) or moved to a new version (replaced in place)."""
        if any(d.id == draft.id for d in self.held):
            return replace(self, held=tuple(draft if d.id == draft.id else d
                                            for d in self.held))
        return replace(self, held=(*self.held, draft))

    def with_credit_memo(self, memo: CreditMemo) -> BillingState:
        numbering = self.numbering.bumped(CREDIT_MEMO, memo.legal_entity)
        return replace(self, credit_memos=(*self.credit_memos, memo), numbering=numbering)


def versions_over(sub: Subscription,
                  span: Period) -> Iterator[tuple[Period, SubscriptionContract]]:
    """Each contract version with the part of `span` it was in force."""
    history = sub.history
    for i, version in enumerate(history):
        until = history[i + 1].effective_date if i + 1 < len(history) else span.end
        start, end = max(span.start, version.effective_date), min(span.end, until)
        if start < end:
            yield Period(start, end), version.contract


def memos_of(state: BillingState, invoice_id: str) -> tuple[CreditMemo, ...]:
    return tuple(m for m in state.credit_memos if m.invoice_id == invoice_id)


def credited(state: BillingState, invoice: Invoice) -> Money:
    """Everything credited against `invoice`, tax included."""
    return total([m.total for m in memos_of(state, invoice.id)], invoice.currency)


def refunded(state: BillingState, payment: Payment) -> Money:
    return total([r.amount for r in state.refunds if r.payment_id == payment.id],
                 payment.amount.currency)


def paid(state: BillingState, invoice: Invoice) -> Money:
    """Payments applied to `invoice`, less refunds of those payments."""
    result = Money.zero(invoice.currency)
    for payment in state.payments:
        applied = [a.amount for a in payment.applications if a.invoice_id == invoice.id]
        if applied:
            result = result + total(applied, invoice.currency) - refunded(state, payment)
    return result


def amount_due(state: BillingState, invoice_id: str) -> Money:
    invoice = state.invoice_record(invoice_id).invoice
    return invoice.total - credited(state, invoice) - paid(state, invoice)
