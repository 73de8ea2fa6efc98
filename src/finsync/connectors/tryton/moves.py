"""Canonical documents as Tryton account moves (pure: no I/O).

Rules (the embedded ledger's, on Tryton accounts):
- invoice → Dr receivable (total, the customer's party, tagged with the invoice) / Cr
  deferred revenue, or revenue for products recognised on invoice (each line) / Cr tax,
  one line per jurisdiction of the lines' tax breakdowns (tax without a breakdown one line),
  each described `tax:<jurisdiction>:<document id>` (`tax_description`) so that tax payable
  per document and jurisdiction is read back from Tryton;
  what billing paid of it out of the customer's credit balance → Dr customer credits
  (oldest first, each tagged with its credit) / Cr receivable (tagged with the invoice),
  waiting until Tryton holds that much credit;
- credit memo → Dr the reason's account (deferred revenue by default; goodwill to sales
  allowances) and tax per jurisdiction, as the invoice / Cr receivable up to what the
  invoice still owes, Cr customer credits (tagged with the memo) for the rest;
- payment → Dr cash / Cr receivable per application / Cr customer credits for any
  unapplied remainder (tagged with the payment);
- refund → Dr customer credits, oldest first, up to the customer's credits / Dr receivable
  for the rest (tagged with the refund) / Cr cash;
- dispute funds → Dr dispute receivable (the disputed amount taken), Dr dispute fees (the
  fee charged) / Cr cash (the net): each leg on the side its sign gives it, so funds
  given back post the reverse (`systems/ledger/disputes.py`);
- dispute closure → Dr chargeback losses / Cr dispute receivable, what it left unrecovered
  (nothing unrecovered is no move: the ledger answers without one);
- a journal entry posts as given, its codes resolved through the account map.
- An open item is the sum of the subledger lines (receivable, customer credits) of one
  customer and one tag: debit-positive, so credits are negative. A document that settles an
  item not yet open is a sequencing problem (its invoice may still come); settling more
  than is open is a master-data mismatch.
- Documents must be in the company's currency (the connector books no FX yet).
- The body hash is the document's, not the move's: a retry after the first attempt posted
  would compute another move from the changed open items.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal

from finsync.connectors.ports import LedgerEvent
from finsync.connectors.tryton.accounts import AccountMap, Journal, Role
from finsync.domain.dispute import DisputeClosure, DisputeFunds
from finsync.domain.errors import ExceptionClass, PermanentError, TransientError
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
from finsync.domain.fingerprint import plain
from finsync.domain.invoice import CreditMemo, DocumentLine, Invoice
from finsync.domain.journal import JournalEntry, Side
from finsync.domain.money import Money
from finsync.domain.payment import Payment, Refund

ZERO = Decimal(0)
Document = Invoice | CreditMemo | Payment | Refund | DisputeFunds | DisputeClosure | JournalEntry


@dataclass(frozen=True, slots=True)
class MoveLine:
    account: str  # Tryton account code
    debit: Decimal
    credit: Decimal
    customer_id: str | None = None  # the party, on subledger lines
    tag: str | None = None  # the open item (document id) a subledger line opens or settles
    description: str | None = None  # of a line that is no open item's (a tax line)


@dataclass(frozen=True, slots=True)
class Move:
    kind: str  # invoice | credit_memo | payment | refund | dispute_* | journal_entry
    document_id: str
    legal_entity: str
    journal: Journal
    date: date
    description: str
    lines: tuple[MoveLine, ...]
    body_hash: str


@dataclass(frozen=True, slots=True)
class Item:
    customer_id: str
    tag: str
    balance: Decimal  # debit-positive: receivables > 0, customer credits < 0
    first: date


@dataclass
class Subledger:
    """Open items of the customers a batch touches, kept current as moves are mapped."""

    accounts: tuple[str, str]  # receivable code, customer-credits code
    _balances: dict[tuple[str, str, str], Decimal] = field(default_factory=dict)
    _first: dict[tuple[str, str, str], date] = field(default_factory=dict)

    def add(self, account: str, customer_id: str, tag: str, amount: Decimal, on: date) -> None:
        key = (account, customer_id, tag)
        self._balances[key] = self._balances.get(key, ZERO) + amount
        self._first[key] = min(on, self._first.get(key, on))

    def apply(self, move: Move) -> None:
        for line in move.lines:
            if line.account in self.accounts and line.customer_id and line.tag:
                self.add(line.account, line.customer_id, line.tag, line.debit - line.credit,
                         move.date)

    def booked(self, customer_id: str, tag: str) -> bool:
        return (self.accounts[0], customer_id, tag) in self._balances

    def receivable(self, customer_id: str, tag: str) -> Decimal:
        return self._balances.get((self.accounts[0], customer_id, tag), ZERO)

    def credits(self, customer_id: str) -> list[Item]:
        """The customer's credits (positive amounts), oldest first."""
        found = [Item(c, tag, -amount, self._first[(a, c, tag)])
                 for (a, c, tag), amount in self._balances.items()
                 if a == self.accounts[1] and c == customer_id and amount < 0]
        return sorted(found, key=lambda i: (i.first, i.tag))

    def items(self) -> list[Item]:
        return [Item(c, tag, amount, self._first[(a, c, tag)])
                for (a, c, tag), amount in sorted(self._balances.items()) if amount != 0]


def _waiting(message: str) -> TransientError:
    """A document that depends on another one not in Tryton yet: retried until it is."""
    return TransientError(message, exception_class=ExceptionClass.SEQUENCING_ERROR)


def body_hash(kind: str, document: Document) -> str:
    """Frozen: Tryton keeps it in every move's description (`fingerprint`'s shape, with the
    kind beside the document)."""
    body = json.dumps({"kind": kind, "document": plain(document)}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def _money(value: Money, currency: str, what: str) -> Decimal:
    if value.currency != currency:
        raise PermanentError(f"{what} is in {value.currency}; the Tryton company books "
                             f"{currency} and the connector books no FX",
                             exception_class=ExceptionClass.MAPPING_ERROR)
    return value.amount


def _dr(account: str, amount: Decimal, customer: str | None = None,
        tag: str | None = None) -> MoveLine:
    if amount < 0:  # a credit line inside a document (a proration credit) posts on the other side
        return MoveLine(account, ZERO, -amount, customer, tag)
    return MoveLine(account, amount, ZERO, customer, tag)


def _cr(account: str, amount: Decimal, customer: str | None = None,
        tag: str | None = None) -> MoveLine:
    if amount < 0:
        return MoveLine(account, -amount, ZERO, customer, tag)
    return MoveLine(account, ZERO, amount, customer, tag)


TAX_PREFIX = "tax:"


def tax_description(jurisdiction: str, document_id: str) -> str:
    """A tax line's description: `tax:<jurisdiction>:<document id>` ("" for tax without a
    breakdown); a jurisdiction code has no colon, so the document id is all the rest."""
    return f"{TAX_PREFIX}{jurisdiction}:{document_id}"


def parse_tax_description(description: str) -> tuple[str, str] | None:
    """(jurisdiction, document id) of a tax line's description; None for another line."""
    if not description.startswith(TAX_PREFIX):
        return None
    jurisdiction, _, document_id = description[len(TAX_PREFIX):].partition(":")
    return jurisdiction, document_id


def _tax_by_jurisdiction(lines: Sequence[DocumentLine]) -> list[tuple[str, Decimal]]:
    """The lines' tax per jurisdiction ("" first: the tax of lines without a breakdown),
    then in code order."""
    found: dict[str, Decimal] = {"": ZERO}
    for line in lines:
        if not line.taxes:
            found[""] += line.tax_amount.amount
        for detail in line.taxes:
            known = found.get(detail.jurisdiction, ZERO)
            found[detail.jurisdiction] = known + detail.amount.amount
    return [("", found.pop("")), *sorted(found.items())]


def _nonzero(lines: Iterable[MoveLine]) -> tuple[MoveLine, ...]:
    return tuple(ln for ln in lines if ln.debit or ln.credit)


class Mapper:
    """Builds each document's move from the account map and the current open items."""

    def __init__(self, accounts: AccountMap, currency: str, ledger: Subledger) -> None:
        self.accounts, self.currency, self.ledger = accounts, currency, ledger

    def _code(self, role: Role) -> str:
        return self.accounts.code(role)

    def move(self, event: LedgerEvent) -> Move:
        """The event's document as a move; the open items now include it."""
        move = self._build(event)
        self.ledger.apply(move)
        return move

    def _build(self, event: LedgerEvent) -> Move:
        if isinstance(event, InvoiceIssued):
            return self.invoice(event.invoice)
        if isinstance(event, CreditMemoIssued):
            return self.credit_memo(event.credit_memo)
        if isinstance(event, PaymentApplied):
            return self.payment(event.payment)
        if isinstance(event, RefundIssued):
            return self.refund(event.refund)
        if isinstance(event, DisputeFundsWithdrawn | DisputeFundsReinstated):
            return self.dispute_funds(event.funds)
        if isinstance(event, DisputeClosed):
            return self.dispute_closure(event.closure)
        if isinstance(event, RevenueJournalRecorded | JournalEntrySummarised):
            return self.journal_entry(event.journal_entry)
        raise PermanentError(f"the Tryton ledger does not post {event.name} events",
                             exception_class=ExceptionClass.MAPPING_ERROR)

    def invoice(self, invoice: Invoice) -> Move:
        c, customer = invoice.currency, invoice.customer_id
        lines = [_dr(self._code(Role.RECEIVABLE), _money(invoice.total, self.currency,
                                                          invoice.id), customer, invoice.id)]
        lines += [_cr(self._code(self.accounts.invoice_credit(line.product_id)),
                      _money(line.amount, c, invoice.id)) for line in invoice.lines]
        lines += self._tax(invoice.id, invoice.lines, _cr)
        lines += self._from_credit(invoice)
        return Move("invoice", invoice.id, invoice.legal_entity, Journal.REVENUE,
                    invoice.issue_date, f"Invoice {invoice.number}", _nonzero(lines),
                    body_hash("invoice", invoice))

    def _tax(self, document_id: str, lines: Sequence[DocumentLine],
             side: Callable[[str, Decimal], MoveLine]) -> list[MoveLine]:
        """Tax payable per jurisdiction, each line described with its document."""
        code = self._code(Role.TAX_PAYABLE)
        return [replace(side(code, amount), description=tax_description(jurisdiction,
                                                                         document_id))
                for jurisdiction, amount in _tax_by_jurisdiction(lines)]

    def _from_credit(self, invoice: Invoice) -> list[MoveLine]:
        """What billing paid of the invoice out of the customer's credits, oldest first."""
        applied = invoice.customer_credit_applied
        if applied is None or applied.is_zero:
            return []
        customer, left = invoice.customer_id, _money(applied, self.currency, invoice.id)
        held = sum((item.balance for item in self.ledger.credits(customer)), ZERO)
        if held < left:
            raise _waiting(f"{invoice.id} was paid {applied} out of the customer's credit; "
                           f"the customer holds {held} in Tryton so far")
        lines = []
        for item in self.ledger.credits(customer):
            if not left:
                break
            take = min(left, item.balance)
            lines.append(_dr(self._code(Role.CUSTOMER_CREDITS), take, customer, item.tag))
            left -= take
        lines.append(_cr(self._code(Role.RECEIVABLE), applied.amount, customer, invoice.id))
        return lines

    def credit_memo(self, memo: CreditMemo) -> Move:
        total = _money(memo.total, self.currency, memo.id)
        owed = self.ledger.receivable(memo.customer_id, memo.invoice_id)
        if not self.ledger.booked(memo.customer_id, memo.invoice_id):
            raise TransientError(f"credit memo {memo.id} credits {memo.invoice_id}, which "
                                 "Tryton has not booked",
                                 exception_class=ExceptionClass.SEQUENCING_ERROR)
        applied = min(total, max(owed, ZERO))
        if memo.applied_to_invoice is not None:  # billing's decision, whatever the order
            applied = memo.applied_to_invoice.amount
            if owed < applied:
                raise _waiting(f"credit memo {memo.id} applies {applied} to {memo.invoice_id}, "
                               f"which owes {owed} in Tryton so far")
        debit = self._code(self.accounts.credit_memo_debit(memo.reason))
        lines = [_dr(debit, line.amount.amount) for line in memo.lines]
        lines += self._tax(memo.id, memo.lines, _dr)
        lines.append(_cr(self._code(Role.RECEIVABLE), applied, memo.customer_id,
                         memo.invoice_id))
        lines.append(_cr(self._code(Role.CUSTOMER_CREDITS), total - applied, memo.customer_id,
                         memo.id))
        return Move("credit_memo", memo.id, memo.legal_entity, Journal.REVENUE,
                    memo.issue_date, f"Credit memo {memo.number}", _nonzero(lines),
                    body_hash("credit_memo", memo))

    def payment(self, payment: Payment) -> Move:
        amount = _money(payment.amount, self.currency, payment.id)
        customer, lines = payment.customer_id, []
        for application in payment.applications:
            owed = self.ledger.receivable(customer, application.invoice_id)
            if owed <= 0:
                raise TransientError(f"payment {payment.id} applies to "
                                     f"{application.invoice_id}, which is not open in Tryton",
                                     exception_class=ExceptionClass.SEQUENCING_ERROR)
            if application.amount.amount > owed:
                # The refund that re-opened the invoice in billing may still be on its way.
                raise _waiting(f"payment {payment.id} applies {application.amount} to "
                               f"{application.invoice_id}, which owes {owed} in Tryton so far")
            lines.append(_cr(self._code(Role.RECEIVABLE), application.amount.amount, customer,
                             application.invoice_id))
        applied = sum((ln.credit for ln in lines), ZERO)
        lines.append(_cr(self._code(Role.CUSTOMER_CREDITS), amount - applied, customer,
                         payment.id))
        lines.insert(0, _dr(self._code(Role.CASH), amount))
        return Move("payment", payment.id, payment.legal_entity, Journal.CASH,
                    payment.received_on, f"Payment {payment.id}", _nonzero(lines),
                    body_hash("payment", payment))

    def refund(self, refund: Refund) -> Move:
        """Pays out the customer's credits, oldest first. When billing says how much came
        out of a credit, exactly that; the rest re-opens the invoice the payment paid."""
        amount = _money(refund.amount, self.currency, refund.id)
        customer, lines = refund.customer_id, []
        payout = amount if refund.from_credit is None else refund.from_credit.amount
        held = sum((item.balance for item in self.ledger.credits(customer)), ZERO)
        if refund.from_credit is not None and held < payout:
            raise _waiting(f"refund {refund.id} pays out {payout} of credit; the customer "
                           f"holds {held} in Tryton so far")
        for item in self.ledger.credits(customer):
            if not payout:
                break
            take = min(payout, item.balance)
            lines.append(_dr(self._code(Role.CUSTOMER_CREDITS), take, customer, item.tag))
            payout -= take
        remaining = amount - sum((ln.debit for ln in lines), ZERO)
        reopened = refund.reopens_invoice if refund.from_credit is not None else None
        if reopened and remaining and not self.ledger.booked(customer, reopened):
            raise _waiting(f"refund {refund.id} re-opens {reopened}, which Tryton has not "
                           "booked")
        lines.append(_dr(self._code(Role.RECEIVABLE), remaining, customer,
                         reopened or refund.id))
        lines.append(_cr(self._code(Role.CASH), refund.amount.amount))
        return Move("refund", refund.id, refund.legal_entity, Journal.CASH, refund.issued_on,
                    f"Refund {refund.id} of {refund.payment_id}", _nonzero(lines),
                    body_hash("refund", refund))

    def _sided(self, role: Role, debit_positive: Decimal) -> MoveLine:
        if debit_positive > 0:
            return _dr(self._code(role), debit_positive)
        return _cr(self._code(role), -debit_positive)

    def dispute_funds(self, funds: DisputeFunds) -> Move:
        taken = -_money(funds.amount, self.currency, funds.id)
        lines = (self._sided(Role.DISPUTE_RECEIVABLE, taken),
                 self._sided(Role.DISPUTE_FEES, funds.fee.amount),
                 self._sided(Role.CASH, funds.net.amount))
        what = "withdrawn" if funds.withdrawn else "reinstated"
        return Move("dispute_funds", funds.id, funds.legal_entity, Journal.CASH,
                    funds.booked_on, f"Dispute {funds.dispute_id} funds {what} {funds.id}",
                    _nonzero(lines), body_hash("dispute_funds", funds))

    def dispute_closure(self, closure: DisputeClosure) -> Move:
        lost = _money(closure.unrecovered, self.currency, closure.id)
        lines = (self._sided(Role.CHARGEBACK_LOSSES, lost),
                 self._sided(Role.DISPUTE_RECEIVABLE, -lost))
        return Move("dispute_closure", closure.id, closure.legal_entity, Journal.GENERAL,
                    closure.closed_on,
                    f"Dispute {closure.id} closed ({closure.outcome.value})",
                    _nonzero(lines), body_hash("dispute_closure", closure))

    def journal_entry(self, entry: JournalEntry) -> Move:
        lines = []
        for line in entry.lines:
            amount = _money(line.amount, self.currency, f"{entry.id} line {line.account}")
            dims = dict(line.dimensions)
            customer = dims.get("customer")
            tag = dims.get("document") if customer else None
            make = _dr if line.side is Side.DEBIT else _cr
            lines.append(make(self.accounts.resolve(line.account), amount, customer, tag))
        return Move("journal_entry", entry.id, entry.legal_entity, Journal.GENERAL,
                    entry.posting_date, entry.memo, tuple(lines),
                    body_hash("journal_entry", entry))

