"""Ports: what the hub may ask of each role, whoever plays it (embedded, Stripe, Tryton, …).

Rules every implementation keeps:
- Every method that changes something takes a `DeliveryContext` whose `delivery_key` is the
  delivery's idempotency key (`event_id:target`). Calling again with the same key returns
  the first `Receipt` and changes nothing (read back before writing again after an
  uncertain outcome).
- Errors leave as `TransientError` (a retry may help: timeouts, rate limits, lost connections)
  or `PermanentError` with an `ExceptionClass` (closed period, unbalanced, unknown reference…).
  Driver and SDK errors are translated inside the adapter.
- Vendor names and shapes stay inside the adapter; the hub sees domain objects only.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol, runtime_checkable

from finsync.domain.clock import Period
from finsync.domain.commercial import SubscriptionOrder
from finsync.domain.contract import ContractAmendment, SubscriptionContract
from finsync.domain.dispute import DisputeClosure, DisputeFunds
from finsync.domain.errors import ExceptionClass, FinsyncError, PermanentError
from finsync.domain.events import (
    CreditMemoIssued,
    DisputeClosed,
    DisputeFundsReinstated,
    DisputeFundsWithdrawn,
    InvoiceIssued,
    JournalEntrySummarised,
    PaymentApplied,
    RefundIssued,
    RevenueJournalRecorded,
)
from finsync.domain.invoice import CreditMemo, Invoice, RatedUsage, UsageRecord
from finsync.domain.journal import JournalEntry, PeriodStatus
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount
from finsync.domain.payment import Payment, Refund
from finsync.domain.revenue import RevenueSchedule
from finsync.domain.tax import TaxRequest, TaxResult


@dataclass(frozen=True, slots=True)
class DeliveryContext:
    delivery_key: str
    event_id: str
    correlation_id: str
    causation_id: str | None = None
    # Set by an approved re-route: book on this date (the first open period) instead of the
    # document's own date, which stays as it is on the document.
    posting_date: date | None = None


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


@dataclass(frozen=True, slots=True)
class Application:
    """A settlement in the ERP: document `by` (a payment, a credit…) applied `amount` (in
    the settled document's currency) to `document_id`."""

    by: str
    document_id: str
    amount: Money


@runtime_checkable
class LedgerPort(Protocol):
    """The ERP: GL, AR and accounting periods. Owns posting rules and FX."""

    system: str

    def post_invoice(self, invoice: Invoice, ctx: DeliveryContext) -> Receipt: ...
    def post_credit_memo(self, memo: CreditMemo, ctx: DeliveryContext) -> Receipt: ...
    def post_payment(self, payment: Payment, ctx: DeliveryContext) -> Receipt: ...
    def post_refund(self, refund: Refund, ctx: DeliveryContext) -> Receipt: ...
    def post_dispute_funds(self, funds: DisputeFunds, ctx: DeliveryContext) -> Receipt:
        """A step of a dispute's money (withdrawn or reinstated): the disputed amount out
        of (into) cash against the dispute receivable, the fee to dispute fees."""
        ...
    def post_dispute_closure(self, closure: DisputeClosure, ctx: DeliveryContext) -> Receipt:
        """A closed dispute: what it leaves unrecovered moves from the dispute receivable
        to chargeback losses. Nothing unrecovered posts nothing (`nothing_posted`)."""
        ...
    def post_journal_entry(self, entry: JournalEntry, ctx: DeliveryContext) -> Receipt: ...
    def find_receipt(self, key: str) -> Receipt | None: ...
    def period_status(self, legal_entity: str, on: date) -> PeriodStatus: ...
    def close_period(self, legal_entity: str, period: str, actor: str) -> None:
        """Close the accounting period named `YYYY-MM` (finance's month-end)."""
        ...
    def trial_balance(self, legal_entity: str, as_of: date) -> Sequence[AccountBalance]: ...
    def receivables(self, legal_entity: str, as_of: date) -> Sequence[Receivable]: ...
    def applications(self, legal_entity: str, as_of: date) -> Sequence[Application]: ...
    def resolve_account(self, code: str) -> str:
        """This ERP's code for an account another system names (a revenue engine's journal
        says "2400"; the ERP may call it "2.2.2")."""
        ...


@dataclass(frozen=True, slots=True)
class RevenuePosition:
    """One revenue contract's position before a day (00:00), in the contract's currency;
    `credits` are the credit memos taken off its billings."""

    subscription_contract_id: str
    customer_id: str
    currency: str
    transaction_price: Money
    billed: Money
    recognised: Money
    deferred_revenue: Money
    contract_asset: Money
    unbilled_receivable: Money
    credits: tuple[tuple[str, Money], ...] = ()


@dataclass(frozen=True, slots=True)
class PositionTotals:
    """The positions before a day (00:00) of a revenue engine's contracts in one currency,
    summed; `contracts` counts them all (those at zero too), `credited` sums their
    `credits`."""

    currency: str
    contracts: int
    billed: Money
    recognised: Money
    deferred_revenue: Money
    contract_asset: Money
    unbilled_receivable: Money
    credited: Money


@dataclass(frozen=True, slots=True)
class ContractPrice:
    """What reconciliation compares per revenue contract before a day (00:00): its
    transaction price and the credit memos taken off its billings (by document)."""

    subscription_contract_id: str
    customer_id: str
    transaction_price: Money
    credits: tuple[tuple[str, Money], ...] = ()


def nothing_posted(document_id: str) -> Receipt:
    """The receipt of a document that moves nothing in the books (a dispute closed with
    nothing unrecovered): no entry, no reference; the same answer every time."""
    return Receipt(f"none:{document_id}", (), {"posted": "false"})


# The events an ERP posts; each names its ledger document kind (`aggregate_type`).
LedgerEvent = (InvoiceIssued | CreditMemoIssued | PaymentApplied | RefundIssued
               | DisputeFundsWithdrawn | DisputeFundsReinstated | DisputeClosed
               | RevenueJournalRecorded | JournalEntrySummarised)
LEDGER_EVENTS = (InvoiceIssued, CreditMemoIssued, PaymentApplied, RefundIssued,
                 DisputeFundsWithdrawn, DisputeFundsReinstated, DisputeClosed,
                 RevenueJournalRecorded, JournalEntrySummarised)


@dataclass(frozen=True, slots=True)
class Posting:
    """One event for a batch call, with the context of its delivery."""

    event: LedgerEvent
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


@dataclass(frozen=True, slots=True)
class Sent:
    """A document delivered before (a replay, a retry), with the context of its delivery."""

    document: object  # the event's document, as the target's route takes it
    ctx: DeliveryContext


@runtime_checkable
class AnsweringPort(Protocol):
    """A system that tells, for many deliveries in one read, which it has answered already:
    the receipt each would get again, because its key was applied with this very document.
    The hub records those without calling the system once per delivery; every delivery left
    out is made as usual (the call decides it, refusals included), so the effect is the same
    either way. A call that answers some is one call of the call log, for those."""

    def answered(self, sent: Sequence[Sent]) -> Mapping[str, Receipt]: ...


@runtime_checkable
class JournalPreviewPort(LedgerPort, Protocol):
    """An ERP that can show the journal entry its own posting rules would make for a
    document, without posting it (summary posting aggregates these; the hub computes no
    accounting of its own)."""

    def preview_journal(self, event: LedgerEvent) -> JournalEntry: ...


@runtime_checkable
class RevenuePort(Protocol):
    """The revenue engine: revenue contracts, allocation, schedules, period journals."""

    system: str

    def apply_contract(self, contract: SubscriptionContract, amendment: ContractAmendment | None,
                       ctx: DeliveryContext) -> Receipt: ...
    def record_invoice(self, invoice: Invoice, ctx: DeliveryContext) -> Receipt: ...
    def apply_credit_memo(self, memo: CreditMemo, ctx: DeliveryContext) -> Receipt: ...
    def record_usage(self, usage: RatedUsage, ctx: DeliveryContext) -> Receipt: ...
    def schedules(self, subscription_contract_id: str) -> Sequence[RevenueSchedule]: ...
    def period_journals(self, legal_entity: str, period: Period,
                        request_id: str) -> Sequence[JournalEntry]:
        """The period's revenue journals as a close posts them: the first request (the
        close's correlation id) fixes them, and every later request, under any id, answers
        the same journals; a change that lands after is caught up in a later period."""
        ...
    def positions(self, legal_entity: str, day: date) -> Sequence[RevenuePosition]: ...
    def account_map(self, legal_entity: str | None = None) -> Mapping[str, str]:
        """GL accounts of its journals (of one legal entity, else the default): revenue,
        deferred_revenue, contract_asset, unbilled_receivable, and when it books them apart
        contra_revenue and refund_liability."""
        ...
    def find_receipt(self, key: str) -> Receipt | None: ...


@dataclass(frozen=True, slots=True)
class RevenueAdjustment:
    """Net revenue (a credit positive) that a revenue engine's stored period journal booked
    to catch up an earlier, closed period: the GL's month `booked_in` holds it, the engine's
    figures of month `adjusts` include it."""

    booked_in: date  # first day of the period whose journal carries it
    adjusts: date  # first day of the closed period it catches up
    revenue: Money


@runtime_checkable
class RevenueBooksPort(RevenuePort, Protocol):
    """A revenue engine that answers many days in one read (reconciliation asks for every
    month boundary of a year): one pass over its contracts, not one per day."""

    def positions_over(self, legal_entity: str,
                       days: Sequence[date]) -> Iterator[Sequence[RevenuePosition]]:
        """Per revenue contract, its positions before each of `days` (in that order)."""
        ...
    def recognised_over(self, legal_entity: str,
                        days: Sequence[date]) -> Mapping[str, Sequence[Money]]:
        """Per currency of its contracts, the revenue recognised before each of `days`
        (ascending month starts), summed over the entity's contracts."""
        ...

    def adjustments(self, legal_entity: str) -> Sequence[RevenueAdjustment]:
        """The catch-ups its stored period journals booked for closed periods."""
        ...

    def position_totals(self, legal_entity: str, day: date) -> Sequence[PositionTotals]:
        """Per currency of its contracts (in code order), their positions before `day`
        summed by the engine (what `positions(day)` holds, added up)."""
        ...

    def contract_prices(self, legal_entity: str, day: date) -> Iterator[ContractPrice]:
        """Per contract, its price and credits before `day` (as `positions(day)`); by
        subscription contract id in code-point order (merged with billing's contracts)."""
        ...


@dataclass(frozen=True, slots=True)
class SourceEvent:
    """One event as a source system tells it: its id, when, and the raw object."""

    source_event_id: str
    type: str
    created: int
    body: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class SourcePage:
    events: tuple[SourceEvent, ...]
    cursor: str | None
    has_more: bool


@dataclass(frozen=True, slots=True)
class ContractValue:
    """What a contract is worth to billing: the net consideration billed under it (before
    tax, credit memos deducted) plus the fixed fees its current term will still bill."""

    contract_id: str
    customer_id: str
    value: Money


@dataclass(frozen=True, slots=True)
class BilledInvoice:
    invoice: Invoice
    open_amount: Money  # total - credits - payments applied, as of the day asked


# -- set-based reads (reconciliation) -------------------------------------------------------
# A book of a million documents is read as streams of small rows, each in integer minor
# units of its currency, ordered by its key in code-point order (Python's string order) so
# that reconciliation can merge two systems' streams in one pass without holding either.


@dataclass(frozen=True, slots=True)
class DocumentAmount:
    """One document's amount, in minor units of its currency."""

    document_id: str
    customer_id: str
    currency: str
    amount_minor: int


@dataclass(frozen=True, slots=True)
class CustomerAmount:
    """One customer's balance, in minor units of the currency asked."""

    customer_id: str
    amount_minor: int


@dataclass(frozen=True, slots=True)
class ContractDocument:
    """A document with the contract it belongs to ("" for none)."""

    contract_id: str
    document: DocumentAmount


@dataclass(frozen=True, slots=True)
class TaxAmount:
    """The tax one document carries for one jurisdiction, in minor units of the document's
    currency (a credit memo's negative): what billing charged, or what the ERP credited to
    tax payable for it. `month` is "YYYY-MM" of the document's issue date; `jurisdiction`
    is "" for tax that carries no breakdown."""

    document_id: str
    jurisdiction: str
    month: str
    currency: str
    amount_minor: int


class BillingBooks(Protocol):
    """Billing's books inside one consistent read, per legal entity, documents dated up to
    and including `as_of`. Every stream is ordered by its key, in code-point order."""

    def open_invoices(self, legal_entity: str, as_of: date) -> Iterator[DocumentAmount]:
        """Each invoice: total - credit memos - payments applied + refunds of those
        payments, never below zero (a credit beyond what is due is the customer's).
        Every currency; by invoice id."""
        ...
    def customer_balances(self, legal_entity: str, currency: str,
                          as_of: date) -> Iterator[CustomerAmount]:
        """Per customer, invoices - credit memos - payments + refunds in `currency`."""
        ...
    def payments_applied(self, legal_entity: str, as_of: date) -> Iterator[DocumentAmount]:
        """Each payment with the sum of its applications; by payment id."""
        ...
    def credit_memos(self, legal_entity: str, as_of: date) -> Iterator[ContractDocument]:
        """Each credit memo's subtotal (before tax) with its invoice's contract; by
        (contract id, credit memo id)."""
        ...
    def contract_values(self, legal_entity: str) -> Iterator[ContractValue]:
        """Each contract's value (see `ContractValue`); by contract id."""
        ...
    def tax_amounts(self, legal_entity: str, as_of: date) -> Iterator[TaxAmount]:
        """The tax of each invoice and credit memo per jurisdiction (memos negative); by
        (document id, jurisdiction)."""
        ...


@dataclass(frozen=True, slots=True)
class BucketDigest:
    """One bucket of a document stream, summed (see `dbsnapshot`'s digest rules): the rows
    in the currency asked, and of the rows with a non-zero amount their count, sum and the
    sum of their fact hashes. Two systems whose digests of a bucket are equal hold the same
    (document, amount) facts in it."""

    bucket: int
    rows: int
    facts: int
    amount_minor: int
    fingerprint: int


@runtime_checkable
class BillingDigests(Protocol):
    """Billing books that also answer per-bucket digests of their document streams, and
    those streams restricted to some buckets (reconciliation reads only the buckets whose
    digests differ from the ERP's)."""

    def open_invoice_digests(self, legal_entity: str, currency: str,
                             as_of: date) -> Sequence[BucketDigest]: ...
    def payment_digests(self, legal_entity: str, currency: str,
                        as_of: date) -> Sequence[BucketDigest]: ...
    def open_invoices_in(self, legal_entity: str, as_of: date,
                         buckets: Collection[int]) -> Iterator[DocumentAmount]: ...
    def payments_applied_in(self, legal_entity: str, as_of: date,
                            buckets: Collection[int]) -> Iterator[DocumentAmount]: ...


@runtime_checkable
class BillingRecordsPort(Protocol):
    """Billing's books as reconciliation reads them."""

    system: str

    def books(self) -> AbstractContextManager[BillingBooks]:
        """One consistent read of the books (a snapshot), for as long as it is open."""
        ...


class LedgerBooks(Protocol):
    """The ERP's books inside one consistent read, per legal entity, as they stood at the
    end of `as_of`. Every stream is ordered by its key, in code-point order."""

    def open_items(self, legal_entity: str, as_of: date) -> Iterator[DocumentAmount]:
        """Each document's open amount in its currency (credits negative), documents with
        nothing open left out; by document id."""
        ...
    def customer_open(self, legal_entity: str, currency: str,
                      as_of: date) -> Iterator[CustomerAmount]:
        """Per customer, the open amounts of its items in `currency` (credits negative)."""
        ...
    def applied_by(self, legal_entity: str, as_of: date) -> Iterator[DocumentAmount]:
        """Per settling document and currency, the sum it applied (see `Application`);
        by settling document id. `customer_id` is ""."""
        ...
    def balances(self, legal_entity: str, accounts: Sequence[str],
                 days: Sequence[date]) -> Sequence[Mapping[str, Money]]:
        """The debit-positive balance of each account at the end of each day, in the
        entity's functional currency (accounts without postings left out)."""
        ...
    def balances_in(self, legal_entity: str, currency: str, accounts: Sequence[str],
                    days: Sequence[date]) -> Sequence[Mapping[str, Money]] | None:
        """Like `balances`, from the lines of documents in `currency` only, in that currency
        (what a revenue engine that keeps contracts in their own currency compares with);
        None when the ERP cannot tell its lines' transaction currency."""
        ...
    def tax_payable(self, legal_entity: str, as_of: date) -> Iterator[TaxAmount]:
        """Per document and jurisdiction, what its postings credited to tax payable (net of
        debits) in the document's currency; by (document id, jurisdiction)."""
        ...
    def period_status(self, legal_entity: str, on: date) -> PeriodStatus: ...


@runtime_checkable
class LedgerDigests(Protocol):
    """ERP books that also answer per-bucket digests of their open items and applications
    (see `BillingDigests`)."""

    def open_item_digests(self, legal_entity: str, currency: str,
                          as_of: date) -> Sequence[BucketDigest]: ...
    def applied_digests(self, legal_entity: str, currency: str,
                        as_of: date) -> Sequence[BucketDigest]: ...
    def open_items_in(self, legal_entity: str, as_of: date,
                      buckets: Collection[int]) -> Iterator[DocumentAmount]: ...
    def applied_by_in(self, legal_entity: str, as_of: date,
                      buckets: Collection[int]) -> Iterator[DocumentAmount]: ...


@runtime_checkable
class LedgerBooksPort(LedgerPort, Protocol):
    """An ERP that answers reconciliation's reads in sets (others are read through
    `LedgerPort`'s lists)."""

    def books(self) -> AbstractContextManager[LedgerBooks]: ...


@runtime_checkable
class BillingSourcePort(Protocol):
    """A subscription/billing platform seen as a source of events (and of current objects)."""

    system: str

    def fetch(self, object_type: str, external_id: str) -> Mapping[str, object]: ...
    def events_after(self, cursor: str | None, limit: int) -> SourcePage: ...


@runtime_checkable
class TaxQuotePort(Protocol):
    """What billing asks of a tax engine before it issues a document: read-only, so billing
    may ask inside its own transaction. Raises `domain.tax.TaxUnavailableError` (a retry
    may cure it) or `TaxRefusedError`; an answer is checked with `domain.tax.check_result`."""

    def quote(self, request: TaxRequest) -> TaxResult: ...


@runtime_checkable
class TaxPort(TaxQuotePort, Protocol):
    """A tax engine (the embedded one, or an Avalara-like service): quote a document before
    it is issued (billing), commit it once it is final and void it (the hub's deliveries of
    `invoice.issued` and `credit_memo.issued`; a `void` credit memo voids its invoice's
    transaction). An unknown jurisdiction is a refusal (`tax_failure`), never zero tax."""

    system: str

    def commit_invoice(self, invoice: Invoice, ctx: DeliveryContext) -> Receipt: ...
    def commit_credit_memo(self, memo: CreditMemo, ctx: DeliveryContext) -> Receipt: ...
    def find_receipt(self, key: str) -> Receipt | None: ...


@dataclass(frozen=True, slots=True)
class HeldRetry:
    """What billing did when asked to retry held drafts: those issued, as
    `(draft id, invoice id)`, and those still held (by draft id)."""

    issued: tuple[tuple[str, str], ...] = ()
    held: tuple[str, ...] = ()


@runtime_checkable
class HeldInvoicePort(Protocol):
    """Billing's invoices held for tax (`domain.invoice.HeldInvoice`): ask it to try one
    held draft again (`draft_id`), or every held one (None). Billing asks the tax engine
    again; a success issues the invoice (`invoice.released`, `invoice.issued`), a failure
    holds the draft again (`invoice.held`, the next version); both reach the hub as events.
    An unknown draft or one already released is no error: nothing is done. Billing's
    database failing is a `TransientError`."""

    system: str

    def retry_held(self, draft_id: str | None) -> HeldRetry: ...


@runtime_checkable
class UsagePort(Protocol):
    """Where usage is rated (billing): records are idempotent by their own id. A refusal is
    a `PermanentError` (its `code` and `exception_class` those of the refusing rule); a
    failure a retry may cure is a `TransientError`.

    `usage_periods` gives, per subscription contract asked with a span of days, the periods
    its usage is rated in (each rated as one) that hold a day of the span, in order; a
    contract billing does not know, and a day in no period (before the term, after its
    end), have none. Billing's database failing is a `TransientError`."""

    system: str

    def record_usage(self, record: UsageRecord, ctx: DeliveryContext) -> Receipt: ...

    def usage_periods(self, spans: Mapping[str, Period]) -> Mapping[str, tuple[Period, ...]]: ...


ANSWERED_AS = "correlation_id"  # a receipt's detail: the platform's own version's correlation


class OrderNotAppliedError(PermanentError):
    """The platform's contract version differs from the order that made it: billing changed,
    but not as the order said (a defect; `master_data_mismatch`, naming the lines)."""

    code = "contract_differs_from_order"

    def __init__(self, order: SubscriptionOrder, found: tuple[str, ...]) -> None:
        super().__init__(f"{self.code}: order {order.id} made contract {order.contract_id} "
                         f"differ from it: {'; '.join(found)}",
                         exception_class=ExceptionClass.MASTER_DATA_MISMATCH)


@runtime_checkable
class SubscriptionPlatformPort(Protocol):
    """A subscription platform that takes the commercial layer's orders (DESIGN §4 step 1):
    an approved CPQ version becomes a subscription, an amendment, a renewal or a
    cancellation there, as the order's `kind` says (`domain.commercial.SubscriptionOrder`).

    - `apply_order` makes the platform's contract what the order says, from its effective
      date, under its proration terms; the platform prices and invoices the change (the hub
      computes nothing). It is idempotent twice over: by the delivery key, and by the
      order id (a quote applied once is never applied again, whatever the key). The
      receipt's `external_id` is the platform's contract id; its detail names the contract
      version the order made (`"version"`). When the platform answers with a version it
      made itself before the order came (a renewal its own clock made), the detail also
      names that version's correlation id (`ANSWERED_AS`), which the platform's contract
      event carries instead of the quote id: the hub checks that version against the order.
    - A terms combination the platform cannot apply (a proration behaviour it lacks, a
      price it does not sell) is a `PermanentError` of class `master_data_mismatch`; the
      platform down is a `TransientError`. A platform that committed a change other than
      the order (a defect of the translation) raises `OrderNotAppliedError`: the hub
      records the order in `mismatch`, not `refused`.
    - `upsert_customer` creates or updates the customer (name, address, tax id, tax
      address) as the customer master says; the receipt names the platform's customer id.
    - `contract` is the platform's current version of a contract, None when unknown.
    """

    system: str

    def apply_order(self, order: SubscriptionOrder, ctx: DeliveryContext) -> Receipt: ...
    def upsert_customer(self, customer: CustomerAccount, ctx: DeliveryContext) -> Receipt: ...
    def contract(self, contract_id: str) -> SubscriptionContract | None: ...
    def find_receipt(self, key: str) -> Receipt | None: ...


@runtime_checkable
class PartyPort(Protocol):
    """An ERP's customer master (Tryton parties, the embedded ledger's parties): creates or
    updates the party of a canonical customer, keyed by its canonical id, with its name,
    address and tax id. Idempotent by the delivery key; the receipt names the ERP's id for
    the party, which never changes once known (`domain.refs`)."""

    system: str

    def upsert_party(self, customer: CustomerAccount, ctx: DeliveryContext) -> Receipt: ...
