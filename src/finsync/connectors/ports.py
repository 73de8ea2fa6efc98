"""Ports: what the hub may ask of each role, whoever plays it (embedded, Stripe, Tryton, …).

Rules every implementation keeps:
- Every method that changes something takes a `DeliveryContext` whose `key` is the
  delivery's idempotency key. Calling again with the same key returns the first `Receipt`
  and changes nothing (read back before writing again after an uncertain outcome).
- Errors leave as `TransientError` (a retry may help: timeouts, rate limits, lost connections)
  or `PermanentError` with an `ExceptionClass` (closed period, unbalanced, unknown reference…).
  Driver and SDK errors are translated inside the adapter.
- Vendor names and shapes stay inside the adapter; the hub sees domain objects only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol, runtime_checkable

from finsync.domain.clock import Period
from finsync.domain.contract import ContractAmendment, SubscriptionContract
from finsync.domain.errors import FinsyncError
from finsync.domain.invoice import CreditMemo, Invoice, UsageRecord
from finsync.domain.journal import JournalEntry, PeriodStatus
from finsync.domain.money import Money
from finsync.domain.payment import Payment, Refund
from finsync.domain.revenue import RevenueSchedule


@dataclass(frozen=True, slots=True)
class DeliveryContext:
    key: str
    event_id: str
    correlation_id: str
    causation_id: str | None = None


@dataclass(frozen=True, slots=True)
class Reference:
    """`canonical_id` is known as `external_id` in the system that returned it."""

    canonical_id: str
    object_type: str
    external_id: str


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a system answers to a change: its id for the document and any new references."""

    external_id: str
    references: tuple[Reference, ...] = ()
    detail: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AccountBalance:
    """An account's debit-positive balance in the entity's functional currency."""

    account: str
    name: str
    type: str  # asset | liability | equity | revenue | expense
    balance: Money


@dataclass(frozen=True, slots=True)
class Receivable:
    """What a customer still owes on a document (credits are negative), as booked."""

    customer_id: str
    document_id: str
    open_amount: Money
    booked_open: Money


@runtime_checkable
class LedgerPort(Protocol):
    """The ERP: GL, AR and accounting periods. Owns posting rules and FX."""

    system: str

    def post_invoice(self, invoice: Invoice, ctx: DeliveryContext) -> Receipt: ...
    def post_credit_memo(self, memo: CreditMemo, ctx: DeliveryContext) -> Receipt: ...
    def post_payment(self, payment: Payment, ctx: DeliveryContext) -> Receipt: ...
    def post_refund(self, refund: Refund, ctx: DeliveryContext) -> Receipt: ...
    def post_journal_entry(self, entry: JournalEntry, ctx: DeliveryContext) -> Receipt: ...
    def find_receipt(self, key: str) -> Receipt | None: ...
    def period_status(self, legal_entity: str, on: date) -> PeriodStatus: ...
    def trial_balance(self, legal_entity: str, as_of: date) -> Sequence[AccountBalance]: ...
    def receivables(self, legal_entity: str, as_of: date) -> Sequence[Receivable]: ...


@dataclass(frozen=True, slots=True)
class Posting:
    """One document for a batch call, with the context of its delivery."""

    event_type: str  # invoice.issued | credit_memo.issued | payment.applied | refund.issued
    #                  | journal_entry.posted
    document: Any
    ctx: DeliveryContext


@runtime_checkable
class BatchLedgerPort(LedgerPort, Protocol):
    """An ERP that takes many documents in one call (one call of its budget).

    The answer has one outcome per posting, in order: its `Receipt`, or the error for that
    posting alone (`TransientError`, `PermanentError`, a `DomainError`); one refused posting
    does not refuse the others. An error raised by the call itself concerns every posting.
    (The outcomes are typed `FinsyncError`, the root of both `DomainError` and the connector
    errors, so that every such answer type-checks.)
    """

    max_batch: int

    def post_batch(self, postings: Sequence[Posting]) -> Sequence[Receipt | FinsyncError]: ...


@runtime_checkable
class JournalPreviewPort(LedgerPort, Protocol):
    """An ERP that can show the journal entry its own posting rules would make for a
    document, without posting it (summary posting aggregates these; the hub computes no
    accounting of its own)."""

    def preview_journal(self, event_type: str, document: Any) -> JournalEntry: ...


@runtime_checkable
class RevenuePort(Protocol):
    """The revenue engine: revenue contracts, allocation, schedules, period journals."""

    system: str

    def apply_contract(self, contract: SubscriptionContract, amendment: ContractAmendment | None,
                       ctx: DeliveryContext) -> Receipt: ...
    def record_invoice(self, invoice: Invoice, ctx: DeliveryContext) -> Receipt: ...
    def apply_credit_memo(self, memo: CreditMemo, ctx: DeliveryContext) -> Receipt: ...
    def schedules(self, subscription_contract_id: str) -> Sequence[RevenueSchedule]: ...
    def period_journals(self, legal_entity: str, period: Period,
                        ctx: DeliveryContext) -> Sequence[JournalEntry]: ...
    def find_receipt(self, key: str) -> Receipt | None: ...


@dataclass(frozen=True, slots=True)
class SourceEvent:
    """One event as a source system tells it: its id, when, and the raw object."""

    source_event_id: str
    type: str
    created: int
    body: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SourcePage:
    events: tuple[SourceEvent, ...]
    cursor: str | None
    has_more: bool


@runtime_checkable
class BillingSourcePort(Protocol):
    """A subscription/billing platform seen as a source of events (and of current objects)."""

    system: str

    def fetch(self, object_type: str, external_id: str) -> Mapping[str, Any]: ...
    def events_after(self, cursor: str | None, limit: int) -> SourcePage: ...


@dataclass(frozen=True, slots=True)
class TaxLine:
    line_id: str
    product_tax_code: str
    amount: Money


@dataclass(frozen=True, slots=True)
class TaxQuote:
    lines: tuple[tuple[str, Money], ...]  # (line_id, tax amount)
    jurisdiction: str


@runtime_checkable
class TaxPort(Protocol):
    """A tax engine; an unknown jurisdiction is a `PermanentError(tax_failure)`, never zero."""

    system: str

    def quote(self, legal_entity: str, country: str, on: date, lines: Sequence[TaxLine],
              ctx: DeliveryContext) -> TaxQuote: ...


@runtime_checkable
class UsagePort(Protocol):
    """Usage metering: records are idempotent by their own id."""

    system: str

    def record_usage(self, record: UsageRecord, ctx: DeliveryContext) -> Receipt: ...
    def usage_total(self, contract_id: str, product_id: str, start: date, end: date) -> int: ...
