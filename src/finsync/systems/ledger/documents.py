"""Posting each kind of document: the journal lines and the AR items it opens or settles.

Pure: the caller passes the open items the document touches and a converter at the
document's posting date, and stores what comes back in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from finsync.domain.invoice import CreditMemo, Invoice
from finsync.domain.journal import JournalLine
from finsync.domain.money import Money, total
from finsync.domain.payment import Payment, Refund
from finsync.systems.ledger.ar import ItemKind, OpenItem, Settlement, settle
from finsync.systems.ledger.chart import Chart, Role
from finsync.systems.ledger.errors import UnknownDocumentError
from finsync.systems.ledger.rules import AccountMap, Converter, Leg, balanced_lines


@dataclass(frozen=True, slots=True)
class Books:
    """What posting needs to know about the entity."""

    legal_entity: str
    functional: str
    chart: Chart
    accounts: AccountMap
    convert: Converter  # at the document's posting date

    def code(self, role: Role) -> str:
        return self.chart.code_for(role)

    def lines(self, debits: Sequence[Leg], credits: Sequence[Leg]) -> tuple[JournalLine, ...]:
        return balanced_lines(debits, credits, self.functional, self.convert,
                              self.code(Role.FX_GAIN_LOSS))


@dataclass(frozen=True, slots=True)
class Posting:
    lines: tuple[JournalLine, ...]
    opened: tuple[OpenItem, ...] = ()
    settled: tuple[Settlement, ...] = ()


def _dims(**values: str | None) -> tuple[tuple[str, str], ...]:
    return tuple((k, v) for k, v in values.items() if v)


def post_invoice(invoice: Invoice, books: Books) -> Posting:
    dims = _dims(customer=invoice.customer_id, contract=invoice.contract_id, document=invoice.id)
    credits = [Leg(books.accounts.invoice_credit_account(books.chart, line.product_id),
                   line.amount, (*dims, ("product", line.product_id))) for line in invoice.lines]
    credits.append(Leg(books.code(Role.TAX_PAYABLE), invoice.tax_total, dims))
    lines = books.lines([Leg(books.code(Role.ACCOUNTS_RECEIVABLE), invoice.total, dims)],
                        credits)
    item = OpenItem(invoice.id, books.legal_entity, invoice.customer_id, ItemKind.INVOICE,
                    invoice.id, invoice.total, invoice.total,
                    _booked(books, lines, Role.ACCOUNTS_RECEIVABLE), invoice.issue_date,
                    invoice.due_date)
    return Posting(lines, opened=(item,))


def post_credit_memo(memo: CreditMemo, books: Books, invoice: OpenItem | None) -> Posting:
    if invoice is None:
        raise UnknownDocumentError(f"credit memo {memo.id} credits {memo.invoice_id}, "
                                   "which the ledger has not posted")
    dims = _dims(customer=memo.customer_id, document=memo.id, invoice=memo.invoice_id)
    debits = [Leg(books.accounts.credit_memo_account(books.chart, memo.reason), line.amount,
                  (*dims, ("product", line.product_id))) for line in memo.lines]
    debits.append(Leg(books.code(Role.TAX_PAYABLE), memo.tax_total, dims))
    applied = min(memo.total, invoice.open, key=lambda m: m.amount)
    settled = (settle(invoice, applied),) if not applied.is_zero else ()
    credits = [Leg(books.code(Role.ACCOUNTS_RECEIVABLE), s.applied, dims, s.relieved)
               for s in settled]
    excess = memo.total - applied
    credits.append(Leg(books.code(Role.CUSTOMER_CREDITS), excess, dims))
    lines = books.lines(debits, credits)
    opened = _credit_item(books, memo.id, memo.customer_id, excess, lines, memo.issue_date)
    return Posting(lines, opened=opened, settled=settled)


def _booked(books: Books, lines: Sequence[JournalLine], role: Role) -> Money:
    code = books.code(role)
    return total([ln.amount for ln in lines if ln.account == code], books.functional)


def _credit_item(books: Books, document_id: str, customer: str, amount: Money,
                 lines: Sequence[JournalLine], on: date) -> tuple[OpenItem, ...]:
    """The customer credit a document leaves (unapplied cash, an over-credit)."""
    if amount.is_zero:
        return ()
    return (OpenItem(f"{document_id}:credit", books.legal_entity, customer, ItemKind.CREDIT,
                     document_id, amount, amount, _booked(books, lines, Role.CUSTOMER_CREDITS),
                     on, on),)


def post_payment(payment: Payment, books: Books, items: Mapping[str, OpenItem]) -> Posting:
    dims = _dims(customer=payment.customer_id, document=payment.id)
    settled = []
    for application in payment.applications:
        item = items.get(application.invoice_id)
        if item is None:
            raise UnknownDocumentError(f"payment {payment.id} applies to "
                                       f"{application.invoice_id}, which is not open")
        settled.append(settle(item, application.amount))
    credits = [Leg(books.code(Role.ACCOUNTS_RECEIVABLE), s.applied,
                   (*dims, ("invoice", s.item.document_id)), s.relieved) for s in settled]
    unapplied = payment.amount - total([s.applied for s in settled], payment.amount.currency)
    credits.append(Leg(books.code(Role.CUSTOMER_CREDITS), unapplied, dims))
    lines = books.lines([Leg(books.code(Role.CASH), payment.amount, dims)], credits)
    opened = _credit_item(books, payment.id, payment.customer_id, unapplied, lines,
                          payment.received_on)
    return Posting(lines, opened=opened, settled=tuple(settled))


def post_refund(refund: Refund, books: Books, credits: Sequence[OpenItem]) -> Posting:
    """A refund pays out the customer's credits, oldest first; beyond them it is a debit."""
    dims = _dims(customer=refund.customer_id, document=refund.id, payment=refund.payment_id)
    remaining, settled = refund.amount, []
    for item in sorted(credits, key=lambda i: (i.posting_date, i.id)):
        if remaining.is_zero:
            break
        take = min(remaining, item.open, key=lambda m: m.amount)
        settled.append(settle(item, take))
        remaining = remaining - take
    debits = [Leg(books.code(Role.CUSTOMER_CREDITS), s.applied, dims, s.relieved)
              for s in settled]
    debits.append(Leg(books.code(Role.ACCOUNTS_RECEIVABLE), remaining, dims))
    lines = books.lines(debits, [Leg(books.code(Role.CASH), refund.amount, dims)])
    opened: tuple[OpenItem, ...] = ()
    if not remaining.is_zero:
        opened = (OpenItem(f"{refund.id}:debit", books.legal_entity, refund.customer_id,
                           ItemKind.DEBIT, refund.id, remaining, remaining,
                           _booked(books, lines, Role.ACCOUNTS_RECEIVABLE),
                           refund.issued_on, refund.issued_on),)
    return Posting(lines, opened=opened, settled=tuple(settled))
