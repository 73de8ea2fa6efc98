"""The generator's own view of what each customer owes, kept from billing's events.

Rules:
- Fed only with the events billing emitted for the commands the generator ran, so no read
  of billing's whole state is needed to decide what to pay, credit or refund.
- An invoice's amount due is billing's: total - credit memos (tax included) - payments
  applied + refunds of those payments. It can go below zero (a credit the customer holds).
- What is still creditable on an invoice is its subtotal less the subtotals of its memos.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from finsync.domain.events import CreditMemoIssued, InvoiceIssued, PaymentApplied, RefundIssued
from finsync.domain.invoice import CreditMemo, Invoice
from finsync.domain.money import Money
from finsync.domain.payment import Payment


@dataclass(slots=True)
class OpenInvoice:
    invoice: Invoice
    due: Money
    creditable: Money
    payments: dict[str, Money] = field(default_factory=dict)  # payment id -> not refunded

    @property
    def paid_in_full(self) -> bool:
        return bool(self.payments) and self.due.amount <= 0


@dataclass(slots=True)
class Receivables:
    invoices: dict[str, OpenInvoice] = field(default_factory=dict)
    by_customer: dict[str, list[str]] = field(default_factory=dict)  # invoice ids, in order
    payment_invoice: dict[str, str] = field(default_factory=dict)
    last_memo: dict[str, CreditMemo] = field(default_factory=dict)  # customer -> SLA memo

    def observe(self, events: Iterable[object]) -> None:
        for event in events:
            if isinstance(event, InvoiceIssued):
                self._invoice(event.invoice)
            elif isinstance(event, CreditMemoIssued):
                self._memo(event.credit_memo)
            elif isinstance(event, PaymentApplied):
                self._payment(event.payment)
            elif isinstance(event, RefundIssued):
                refund = event.refund
                invoice = self.invoices[self.payment_invoice[refund.payment_id]]
                invoice.due = invoice.due + refund.amount
                invoice.payments[refund.payment_id] = (invoice.payments[refund.payment_id]
                                                       - refund.amount)

    def _invoice(self, invoice: Invoice) -> None:
        self.invoices[invoice.id] = OpenInvoice(invoice, invoice.total, invoice.subtotal)
        self.by_customer.setdefault(invoice.customer_id, []).append(invoice.id)

    def _memo(self, memo: CreditMemo) -> None:
        invoice = self.invoices[memo.invoice_id]
        invoice.due = invoice.due - memo.total
        invoice.creditable = invoice.creditable - memo.subtotal
        if memo.reason == "sla_credit":
            self.last_memo[memo.customer_id] = memo

    def _payment(self, payment: Payment) -> None:
        for application in payment.applications:
            invoice = self.invoices[application.invoice_id]
            invoice.due = invoice.due - application.amount
            invoice.payments[payment.id] = application.amount
            self.payment_invoice[payment.id] = application.invoice_id

    def due(self, invoice_id: str) -> Money:
        return self.invoices[invoice_id].due

    def to_credit(self, customer_id: str, on: date) -> OpenInvoice | None:
        """The invoice an SLA credit goes on: the newest one paid in full, else the newest
        one, issued by `on`, with something left to credit."""
        candidates = [self.invoices[i] for i in self.by_customer.get(customer_id, ())]
        candidates = [c for c in candidates
                      if c.invoice.issue_date <= on and c.creditable.amount > 0]
        paid = [c for c in candidates if c.paid_in_full]
        chosen = paid or candidates
        return chosen[-1] if chosen else None

    def credit_held(self, customer_id: str) -> tuple[str, Money] | None:
        """(payment id, amount) to refund the customer's last SLA credit in cash: what the
        customer holds on that invoice, within what is left of its largest payment."""
        memo = self.last_memo.get(customer_id)
        if memo is None:
            return None
        invoice = self.invoices[memo.invoice_id]
        held = -invoice.due
        if held.amount <= 0 or not invoice.payments:
            return None
        payment_id, room = max(invoice.payments.items(), key=lambda item: item[1].amount)
        amount = min(held, room, memo.total, key=lambda m: m.amount)
        return (payment_id, amount) if amount.amount > 0 else None
