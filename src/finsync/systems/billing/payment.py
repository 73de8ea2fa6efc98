"""Payments and refunds as pure state transitions.

Rules:
- A payment attempt on an invoice succeeds (applied in full), is partial (less than the
  amount due: the invoice stays open for the rest) or is declined (recorded for dunning;
  nothing is applied and no canonical event is emitted).
- A payment never exceeds the invoice's amount due and is in the invoice's currency.
- A refund returns part or all of a payment; refunds of a payment never exceed it. A cash
  refund without a credit memo reopens the invoice's receivable.
- Payment and refund ids are idempotent: the same id with the same content changes nothing;
  with different content it is a `DuplicateIdError`.
- Both carry the correlation id of the invoice they settle.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum

from finsync.domain.aggregate import AggregateRef
from finsync.domain.events import InvoiceIssued, PaymentApplied, RefundIssued
from finsync.domain.money import Money
from finsync.domain.payment import Payment, PaymentApplication, Refund
from finsync.systems.billing.errors import (
    BillingCurrencyError,
    DuplicateIdError,
    InvalidCommandError,
    OverpaymentError,
    RefundExceedsPaymentError,
)
from finsync.systems.billing.event import emit
from finsync.systems.billing.outcome import Outcome
from finsync.systems.billing.state import BillingState, DeclinedPayment, amount_due, refunded


class PaymentResult(StrEnum):
    SUCCEEDED = "succeeded"
    DECLINED = "declined"


@dataclass(frozen=True, slots=True)
class PayInvoice:
    payment_id: str
    invoice_id: str
    amount: Money
    received_on: date
    result: PaymentResult = PaymentResult.SUCCEEDED
    decline_reason: str = ""


@dataclass(frozen=True, slots=True)
class RefundPayment:
    refund_id: str
    payment_id: str
    amount: Money
    issued_on: date
    reason: str = "requested_by_customer"


def _positive(amount: Money, currency: str, what: str) -> None:
    if amount.currency != currency:
        raise BillingCurrencyError(f"{what} in {amount.currency}, expected {currency}")
    if amount.amount <= 0 or amount.quantize() != amount:
        raise InvalidCommandError(f"{what} {amount} must be positive, in minor units")


def pay_invoice(state: BillingState, cmd: PayInvoice) -> Outcome:
    record = state.invoice_record(cmd.invoice_id)
    invoice = record.invoice
    _positive(cmd.amount, invoice.currency, f"payment {cmd.payment_id}")
    if cmd.result is PaymentResult.DECLINED:
        declined = DeclinedPayment(cmd.payment_id, invoice.id, cmd.amount, cmd.received_on,
                                   cmd.decline_reason or "declined")
        return Outcome(replace(state, declines=(*state.declines, declined)))
    payment = Payment(cmd.payment_id, invoice.customer_id, invoice.legal_entity, cmd.amount,
                      cmd.received_on, (PaymentApplication(invoice.id, cmd.amount),))
    if _seen(state.payments, payment):
        return Outcome(state)
    due = amount_due(state, invoice.id)
    if due < cmd.amount:
        raise OverpaymentError(f"payment {cmd.amount} exceeds the {due} due on {invoice.number}")
    emitted = emit(PaymentApplied(payment), record.correlation_id,
                   AggregateRef(InvoiceIssued.aggregate_type, invoice.id))
    return Outcome(replace(state, payments=(*state.payments, payment)), (emitted,))


def _seen(known: tuple[Payment, ...] | tuple[Refund, ...], document: Payment | Refund) -> bool:
    for other in known:
        if other.id == document.id:
            if other != document:
                raise DuplicateIdError(f"{document.id} was already received with other content")
            return True
    return False


def refund_payment(state: BillingState, cmd: RefundPayment) -> Outcome:
    payment = state.payment(cmd.payment_id)
    _positive(cmd.amount, payment.amount.currency, f"refund {cmd.refund_id}")
    refund = Refund(cmd.refund_id, payment.id, payment.customer_id, payment.legal_entity,
                    cmd.amount, cmd.issued_on, cmd.reason)
    known = next((r for r in state.refunds if r.id == refund.id), None)
    if _seen(state.refunds, refund if known is None else replace(
            refund, from_credit=known.from_credit, reopens_invoice=known.reopens_invoice)):
        return Outcome(state)
    room = payment.amount - refunded(state, payment)
    if room < cmd.amount:
        raise RefundExceedsPaymentError(f"refund {cmd.amount} exceeds the {room} left of "
                                        f"payment {payment.id}")
    invoice_id = payment.applications[0].invoice_id
    owed = -amount_due(state, invoice_id)  # a credit the customer holds on that invoice
    refund = replace(refund, from_credit=min(cmd.amount, owed) if owed.amount > 0
                     else Money.zero(cmd.amount.currency), reopens_invoice=invoice_id)
    correlation = state.invoice_record(invoice_id).correlation_id
    emitted = emit(RefundIssued(refund), correlation,
                   AggregateRef(PaymentApplied.aggregate_type, payment.id))
    return Outcome(replace(state, refunds=(*state.refunds, refund)), (emitted,))
