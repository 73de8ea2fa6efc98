"""Posting each kind of document: the journal lines and the AR items it opens or settles.

Pure: the caller passes the open items the document touches and a converter at the
document's posting date, and stores what comes back in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from finsync.domain.invoice import CreditMemo, DocumentLine, Invoice
from finsync.domain.journal import JournalLine
from finsync.domain.money import Money, total
from finsync.domain.payment import Payment, Refund
from finsync.systems.ledger.ar import ItemKind, OpenItem, Settlement, reopen, settle
from finsync.systems.ledger.chart import Chart, Role
from finsync.systems.ledger.errors import UnknownDocumentError
from finsync.systems.ledger.rules import (
    JURISDICTION,
    AccountMap,
    Converter,
    Dimensions,
    Leg,
    balanced_lines,
)


@dataclass(frozen=True, slots=True)
class Books:
    """What posting needs to know about the entity."""

    legal_entity: str
    functional: str
    chart: Chart
    accounts: AccountMap
    convert: Converter  # at the document's posting date
    # At another day's rate (what an earlier document was booked at); None: `convert`.
    convert_on: Callable[[Money, date], Money] | None = None

    def code(self, role: Role) -> str:
        return self.chart.code_for(role)

    def booked_on(self, money: Money, day: date) -> Money:
        """`money` in the functional currency at the rate of `day`."""
        if money.currency == self.functional:
            return money
        if self.convert_on is None:
            return self.convert(money)
        return self.convert_on(money, day)

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


def _tax_legs(books: Books, lines: Sequence[DocumentLine], currency: str,
              dims: Dimensions) -> list[Leg]:
    """Tax payable, one leg per jurisdiction of the lines' breakdowns (dimension
    `jurisdiction`, in code order), after one leg without a jurisdiction for the tax of lines
    that carry no breakdown (older documents, sources that send none). The legs sum to the
    lines' tax, so the document's tax total is posted as before; a jurisdiction whose tax
    nets to zero (exempt, reverse charged) posts no line."""
    account = books.code(Role.TAX_PAYABLE)
    unassigned = total([line.tax_amount for line in lines if not line.taxes], currency)
    by_jurisdiction: dict[str, Money] = {}
    for line in lines:
        for detail in line.taxes:
            known = by_jurisdiction.get(detail.jurisdiction, Money.zero(currency))
            by_jurisdiction[detail.jurisdiction] = known + detail.amount
    legs = [Leg(account, unassigned, dims)]
    legs += [Leg(account, amount, (*dims, (JURISDICTION, code)))
             for code, amount in sorted(by_jurisdiction.items())]
    return legs


def post_invoice(invoice: Invoice, books: Books, credits: Sequence[OpenItem] = ()) -> Posting:
    """Dr receivable (total) / Cr each line's account, Cr tax payable. A credit line (a
    negative amount: the unused time of a mid-period decrease) posts on the debit side. An
    invoice whose total is negative (it credits more than it bills) owes nothing: the
    customer is credited the difference, as billing credits its balance. What billing paid
    of it out of the customer's credit balance settles those credits (`credits`: the
    customer's open ones), oldest first."""
    dims = _dims(customer=invoice.customer_id, contract=invoice.contract_id, document=invoice.id)
    legs = [Leg(books.accounts.invoice_credit_account(books.chart, line.product_id),
                line.amount, (*dims, ("product", line.product_id))) for line in invoice.lines]
    legs += _tax_legs(books, invoice.lines, invoice.currency, dims)
    zero = Money.zero(invoice.currency)
    owed = invoice.total if zero < invoice.total else zero
    credited = owed - invoice.total
    lines = books.lines([Leg(books.code(Role.ACCOUNTS_RECEIVABLE), owed, dims),
                         Leg(books.code(Role.CUSTOMER_CREDITS), -credited, dims)], legs)
    item = OpenItem(invoice.id, books.legal_entity, invoice.customer_id, ItemKind.INVOICE,
                    invoice.id, owed, owed, _booked(books, lines, Role.ACCOUNTS_RECEIVABLE),
                    invoice.issue_date, invoice.due_date)
    opened = (item, *_credit_item(books, invoice.id, invoice.customer_id, credited, lines,
                                  invoice.issue_date))
    applied = invoice.customer_credit_applied
    if applied is None or applied.is_zero:
        return Posting(lines, opened=opened)
    used = _take_credits(invoice.id, applied, credits)
    settled = (*used, settle(item, applied))
    # Dr customer credits (each at its own booked value) / Cr receivable (this invoice)
    paid = books.lines([Leg(books.code(Role.CUSTOMER_CREDITS), s.applied, dims, s.relieved)
                        for s in used],
                       [Leg(books.code(Role.ACCOUNTS_RECEIVABLE), applied, dims,
                            settled[-1].relieved)])
    return Posting((*lines, *paid), opened=opened, settled=settled)


def _take_credits(document_id: str, amount: Money,
                  credits: Sequence[OpenItem]) -> tuple[Settlement, ...]:
    """`amount` out of the customer's credits, oldest first; all of it, or the credit it
    was paid from has not reached the ledger yet."""
    held = total([c.open for c in credits], amount.currency)
    if held < amount:
        # The credit memo or payment that left the credit is another aggregate: it may be
        # on its way.
        raise UnknownDocumentError(f"{document_id} was paid {amount} out of the customer's "
                                   f"credit; the customer holds {held} so far")
    taken: list[Settlement] = []
    for item in sorted(credits, key=lambda i: (i.posting_date, i.id)):
        if amount.is_zero:
            break
        take = min(amount, item.open, key=lambda m: m.amount)
        taken.append(settle(item, take))
        amount = amount - take
    return tuple(taken)


def post_credit_memo(memo: CreditMemo, books: Books, invoice: OpenItem | None,
                     debits: Sequence[OpenItem] = ()) -> Posting:
    if invoice is None:
        raise UnknownDocumentError(f"credit memo {memo.id} credits {memo.invoice_id}, "
                                   "which the ledger has not posted")
    dims = _dims(customer=memo.customer_id, document=memo.id, invoice=memo.invoice_id)
    accounts = books.accounts
    legs = [Leg(accounts.credit_memo_account(books.chart, memo.reason, line.product_id),
                line.amount, (*dims, ("product", line.product_id))) for line in memo.lines]
    legs += _tax_legs(books, memo.lines, memo.currency, dims)
    applied = _applied(memo, invoice)
    settled = (settle(invoice, applied),) if not applied.is_zero else ()
    offset, excess = _offset(memo.total - applied, debits)
    settled = (*settled, *offset)
    credits = [Leg(books.code(Role.ACCOUNTS_RECEIVABLE), s.applied, dims, s.relieved)
               for s in settled]
    credits.append(Leg(books.code(Role.CUSTOMER_CREDITS), excess, dims))
    lines = books.lines(legs, credits)
    opened = _credit_item(books, memo.id, memo.customer_id, excess, lines, memo.issue_date)
    return Posting(lines, opened=opened, settled=settled)


def _apply(item: OpenItem, amount: Money, debits: list[OpenItem]) -> list[Settlement]:
    """Settle `amount` on the invoice; what billing applies beyond what is open there went
    back to the customer by a refund (billing re-opens the invoice, the ERP holds a debit
    item), so it settles those debits. `debits` is updated in place."""
    applied = min(amount, item.open, key=lambda m: m.amount)
    settled = [settle(item, applied)] if not applied.is_zero else []
    offset, short = _offset(amount - applied, debits)
    if not short.is_zero:
        # Documents of different aggregates arrive in any order: the refund that re-opened
        # the invoice in billing (or the payment it repeats) may still be on its way.
        raise UnknownDocumentError(f"cannot apply {amount} to {item.document_id}: only "
                                   f"{item.open} is open and no refund explains the rest yet")
    for s in offset:
        debits[:] = [s.item if d.id == s.item.id else d for d in debits]
    return settled + list(offset)


def _reopening(refund: Refund, books: Books, settled: list[Settlement], amount: Money,
               invoice: OpenItem | None) -> Posting:
    """The part of a refund that gives back a payment re-opens the invoice it paid, as
    billing does: Dr receivable (that invoice) / Cr cash. Whether the payment reached the
    ERP yet does not matter: the invoice is open by that much more either way."""
    if invoice is None:
        raise UnknownDocumentError(f"refund {refund.id} re-opens {refund.reopens_invoice}, "
                                   "which the ledger has not posted")
    booked = books.convert(amount)
    dims = _dims(customer=refund.customer_id, document=refund.id, payment=refund.payment_id)
    debits = [Leg(books.code(Role.CUSTOMER_CREDITS), s.applied, dims, s.relieved)
              for s in settled]
    debits.append(Leg(books.code(Role.ACCOUNTS_RECEIVABLE), amount,
                      (*dims, ("invoice", invoice.document_id)), booked))
    lines = books.lines(debits, [Leg(books.code(Role.CASH), refund.amount, dims)])
    return Posting(lines, settled=(*settled, reopen(invoice, amount, booked)))


def _offset(credit: Money, debits: Sequence[OpenItem]) -> tuple[tuple[Settlement, ...], Money]:
    """A new customer credit first settles the customer's open debits (a refund that
    reached the ERP before the credit it pays out), oldest first; returns what is left."""
    settled: list[Settlement] = []
    for item in sorted(debits, key=lambda i: (i.posting_date, i.id)):
        if credit.is_zero:
            break
        take = min(credit, item.open, key=lambda m: m.amount)
        settled.append(settle(item, take))
        credit = credit - take
    return tuple(settled), credit


def _applied(memo: CreditMemo, invoice: OpenItem) -> Money:
    """What billing set against the invoice, when it says; otherwise all that is open."""
    if memo.applied_to_invoice is None:
        return min(memo.total, invoice.open, key=lambda m: m.amount)
    if invoice.open < memo.applied_to_invoice:
        # The payment refunded that re-opened it in billing may not have arrived yet.
        raise UnknownDocumentError(f"credit memo {memo.id} applies {memo.applied_to_invoice} "
                                   f"to {memo.invoice_id}, which has only {invoice.open} open")
    return memo.applied_to_invoice


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


def post_payment(payment: Payment, books: Books, items: Mapping[str, OpenItem],
                 debits: Sequence[OpenItem] = ()) -> Posting:
    dims = _dims(customer=payment.customer_id, document=payment.id)
    settled: list[Settlement] = []
    open_debits = list(debits)
    for application in payment.applications:
        item = items.get(application.invoice_id)
        if item is None:
            raise UnknownDocumentError(f"payment {payment.id} applies to "
                                       f"{application.invoice_id}, which is not open")
        settled += _apply(item, application.amount, open_debits)
    offset, unapplied = _offset(
        payment.amount - total([s.applied for s in settled], payment.amount.currency),
        open_debits)
    settled += offset
    credits = [Leg(books.code(Role.ACCOUNTS_RECEIVABLE), s.applied,
                   (*dims, ("invoice", s.item.document_id)), s.relieved) for s in settled]
    credits.append(Leg(books.code(Role.CUSTOMER_CREDITS), unapplied, dims))
    lines = books.lines([Leg(books.code(Role.CASH), payment.amount, dims)], credits)
    opened = _credit_item(books, payment.id, payment.customer_id, unapplied, lines,
                          payment.received_on)
    return Posting(lines, opened=opened, settled=tuple(settled))


def post_refund(refund: Refund, books: Books, credits: Sequence[OpenItem],
                reopened: OpenItem | None = None) -> Posting:
    """A refund pays out the customer's credits, oldest first; beyond them it is a debit."""
    dims = _dims(customer=refund.customer_id, document=refund.id, payment=refund.payment_id)
    payout = refund.amount if refund.from_credit is None else refund.from_credit
    held = total([c.open for c in credits], refund.amount.currency)
    if refund.from_credit is not None and held < payout:
        raise UnknownDocumentError(f"refund {refund.id} pays out {payout} of credit; the "
                                   f"customer holds {held} so far")
    settled = []
    for item in sorted(credits, key=lambda i: (i.posting_date, i.id)):
        if payout.is_zero:
            break
        take = min(payout, item.open, key=lambda m: m.amount)
        settled.append(settle(item, take))
        payout = payout - take
    remaining = refund.amount - total([s.applied for s in settled], refund.amount.currency)
    if refund.from_credit is not None and not remaining.is_zero:
        return _reopening(refund, books, settled, remaining, reopened)
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
