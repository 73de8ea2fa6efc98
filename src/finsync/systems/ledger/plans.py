"""How each kind of document posts: what it is, where and when, which AR items it reads,
and how its lines are built from them.

Rules:
- A plan is built before anything is read: it names the items it will need (by id, and the
  customer whose open credits or debits it may use, and which of the two), so that a batch
  reads them all at once, and only those: a payment reads its customer's debits, never the
  credits that earlier payments on account left.
- Building the lines is pure: the items come from an `ItemReader` (the batch's view of the
  subledger), the conversion from the `Books`.
- A summary posting keeps no items per document (`assumed_items`): the document is
  rendered against the item it would normally meet (see `LedgerService.preview`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from typing import Any, Protocol

from finsync.domain.dispute import DisputeClosure, DisputeFunds
from finsync.domain.fingerprint import fingerprint
from finsync.domain.invoice import CreditMemo, Invoice
from finsync.domain.journal import JournalEntry
from finsync.domain.money import Money
from finsync.domain.payment import Payment, Refund
from finsync.systems.ledger.ar import ItemKind, OpenItem
from finsync.systems.ledger.disputes import post_dispute_closure, post_dispute_funds
from finsync.systems.ledger.documents import (
    Books,
    Posting,
    post_credit_memo,
    post_invoice,
    post_payment,
    post_refund,
)
from finsync.systems.ledger.errors import LedgerError
from finsync.systems.ledger.rules import Leg


@dataclass(frozen=True, slots=True)
class Source:
    """Where a posting comes from: the hub's correlation id and canonical references."""

    correlation_id: str | None = None
    refs: tuple[tuple[str, str], ...] = ()
    approved: bool = False
    # An approved re-route books the document on this date (the first open period).
    posting_date: date | None = None


NO_SOURCE = Source()


@dataclass(frozen=True, slots=True)
class Request:
    """One posting of a batch (`post_many`)."""

    kind: str  # invoice | credit_memo | payment | refund | dispute_* | journal_entry
    document: Any
    key: str
    source: Source = NO_SOURCE


class ItemReader(Protocol):
    """The AR subledger as a posting sees it (earlier postings of its batch included)."""

    def open_item(self, entity: str, item_id: str) -> OpenItem | None: ...

    def customer_items(self, entity: str, customer: str, currency: str,
                       kind: ItemKind) -> list[OpenItem]:
        """The customer's items of `kind` in `currency` with something open."""
        ...


Build = Callable[[ItemReader, Books], Posting]


@dataclass(frozen=True, slots=True)
class Plan:
    """How one document posts; `item_ids`, `customer` and `customer_kind` say which AR
    items it reads."""

    kind: str
    document_id: str
    body: Any
    entity: str
    on: date
    memo: str
    source: Source
    build: Build
    reverses: str | None = None
    item_ids: tuple[str, ...] = ()
    customer: str | None = None
    # The kind of the customer's open items it reads (its credits, or its debits).
    customer_kind: ItemKind | None = None
    opens: tuple[str, ...] = ()  # ids of the items it may open (one document, one item)
    rate_days: tuple[date, ...] = ()  # other days whose rates it books at (besides `on`)

    @property
    def body_hash(self) -> str:
        return fingerprint(self.body)

    @property
    def days(self) -> tuple[date, ...]:
        """Every day whose exchange rates its lines may need."""
        return (self.on, *self.rate_days)


def _assumed(books: Books, document_id: str, customer: str, kind: ItemKind, amount: Money,
             on: date) -> OpenItem:
    """The item a summary-posted document is assumed to meet (see `LedgerService.preview`)."""
    return OpenItem(document_id, books.legal_entity, customer, kind, document_id, amount,
                    amount, books.convert(amount), on, on)


def _invoice_plan(invoice: Invoice, source: Source, assumed_items: bool) -> Plan:
    applied = invoice.customer_credit_applied

    def build(items: ItemReader, books: Books) -> Posting:
        if applied is None or applied.is_zero:
            return post_invoice(invoice, books)
        if assumed_items:
            credits = [_assumed(books, f"{invoice.id}:credit-applied", invoice.customer_id,
                                ItemKind.CREDIT, applied, invoice.issue_date)]
        else:
            credits = items.customer_items(invoice.legal_entity, invoice.customer_id,
                                           invoice.currency, ItemKind.CREDIT)
        return post_invoice(invoice, books, credits)

    # Paid partly out of the customer's credit: it reads the customer's credits.
    uses_credit = applied is not None and not applied.is_zero
    return Plan("invoice", invoice.id, invoice, invoice.legal_entity, invoice.issue_date,
                f"Invoice {invoice.number}", source, build,
                opens=(invoice.id, f"{invoice.id}:credit"),
                customer=invoice.customer_id if uses_credit else None,
                customer_kind=ItemKind.CREDIT if uses_credit else None)


def _credit_memo_plan(memo: CreditMemo, source: Source, assumed_items: bool) -> Plan:
    def build(items: ItemReader, books: Books) -> Posting:
        if assumed_items:
            invoice = _assumed(books, memo.invoice_id, memo.customer_id, ItemKind.INVOICE,
                               memo.total, memo.issue_date)
            return post_credit_memo(memo, books, invoice, ())
        debits = items.customer_items(memo.legal_entity, memo.customer_id, memo.currency,
                                      ItemKind.DEBIT)
        return post_credit_memo(memo, books, items.open_item(memo.legal_entity,
                                                             memo.invoice_id), debits)

    return Plan("credit_memo", memo.id, memo, memo.legal_entity, memo.issue_date,
                f"Credit memo {memo.number} ({memo.reason})", source, build,
                item_ids=(memo.invoice_id,), customer=memo.customer_id,
                customer_kind=ItemKind.DEBIT, opens=(f"{memo.id}:credit",))


def _assumed_applications(payment: Payment, books: Books) -> dict[str, OpenItem]:
    applied: dict[str, Money] = {}
    for a in payment.applications:
        applied[a.invoice_id] = applied[a.invoice_id] + a.amount \
            if a.invoice_id in applied else a.amount
    return {invoice: _assumed(books, invoice, payment.customer_id, ItemKind.INVOICE,
                              amount, payment.received_on)
            for invoice, amount in applied.items()}


def _payment_plan(payment: Payment, source: Source, assumed_items: bool) -> Plan:
    def build(items: ItemReader, books: Books) -> Posting:
        if assumed_items:
            return post_payment(payment, books, _assumed_applications(payment, books), ())
        found = {a.invoice_id: item for a in payment.applications
                 if (item := items.open_item(payment.legal_entity, a.invoice_id))}
        debits = items.customer_items(payment.legal_entity, payment.customer_id,
                                      payment.amount.currency, ItemKind.DEBIT)
        return post_payment(payment, books, found, debits)

    return Plan("payment", payment.id, payment, payment.legal_entity, payment.received_on,
                f"Payment {payment.id}", source, build,
                item_ids=tuple(a.invoice_id for a in payment.applications),
                customer=payment.customer_id, customer_kind=ItemKind.DEBIT,
                opens=(f"{payment.id}:credit",))


def _refund_plan(refund: Refund, source: Source, assumed_items: bool) -> Plan:
    def build(items: ItemReader, books: Books) -> Posting:
        if assumed_items:
            credits = [_assumed(books, f"{refund.id}:credit", refund.customer_id,
                                ItemKind.CREDIT, refund.amount, refund.issued_on)]
            reopened = None if not refund.reopens_invoice else _assumed(
                books, refund.reopens_invoice, refund.customer_id, ItemKind.INVOICE,
                refund.amount, refund.issued_on)
            return post_refund(refund, books, credits, reopened)
        credits = items.customer_items(refund.legal_entity, refund.customer_id,
                                       refund.amount.currency, ItemKind.CREDIT)
        reopened = None if not refund.reopens_invoice else items.open_item(
            refund.legal_entity, refund.reopens_invoice)
        return post_refund(refund, books, credits, reopened)

    return Plan("refund", refund.id, refund, refund.legal_entity, refund.issued_on,
                f"Refund {refund.id}", source, build,
                item_ids=(refund.reopens_invoice,) if refund.reopens_invoice else (),
                customer=refund.customer_id, customer_kind=ItemKind.CREDIT,
                opens=(f"{refund.id}:debit",))


def _dispute_funds_plan(funds: DisputeFunds, source: Source, _assumed_items: bool) -> Plan:
    what = "withdrawn" if funds.withdrawn else "reinstated"
    return Plan("dispute_funds", funds.id, funds, funds.legal_entity, funds.booked_on,
                f"Dispute {funds.dispute_id}: funds {what} ({funds.id})", source,
                lambda items, books: post_dispute_funds(funds, books))


def _dispute_closure_plan(closure: DisputeClosure, source: Source,
                          _assumed_items: bool) -> Plan:
    return Plan("dispute_closure", closure.id, closure, closure.legal_entity,
                closure.closed_on, f"Dispute {closure.id} closed ({closure.outcome.value})",
                source, lambda items, books: post_dispute_closure(closure, books),
                rate_days=tuple(step.booked_on for step in closure.steps))


def _entry_plan(entry: JournalEntry, source: Source, _assumed_items: bool) -> Plan:
    def build(items: ItemReader, books: Books) -> Posting:
        legs = [(Leg(line.account, line.amount, line.dimensions), line.side.value)
                for line in entry.lines]
        return Posting(books.lines([leg for leg, side in legs if side == "debit"],
                                   [leg for leg, side in legs if side == "credit"]))

    return Plan("journal_entry", entry.id, entry, entry.legal_entity, entry.posting_date,
                entry.memo, Source(source.correlation_id or entry.correlation_id,
                                   source.refs or entry.source_refs, source.approved),
                build, reverses=entry.reverses)


_PLANS: dict[str, Callable[[Any, Source, bool], Plan]] = {
    "invoice": _invoice_plan, "credit_memo": _credit_memo_plan, "payment": _payment_plan,
    "refund": _refund_plan, "dispute_funds": _dispute_funds_plan,
    "dispute_closure": _dispute_closure_plan, "journal_entry": _entry_plan}


def plan_for(kind: str, document: Any, source: Source, assumed_items: bool = False) -> Plan:
    make = _PLANS.get(kind)
    if make is None:
        raise LedgerError(f"the ledger posts no {kind!r} documents")
    plan = make(document, source, assumed_items)
    # An approved re-route books the document in the first open period.
    return replace(plan, on=source.posting_date) if source.posting_date else plan
