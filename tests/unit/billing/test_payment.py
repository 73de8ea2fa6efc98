"""Payments (succeed, partial, decline) and refunds as pure state transitions."""

from __future__ import annotations

from datetime import date

import pytest

from finsync.domain.events import PaymentApplied, RefundIssued
from finsync.domain.payment import Payment
from finsync.systems.billing.errors import (
    DuplicateIdError,
    OverpaymentError,
    RefundExceedsPaymentError,
)
from finsync.systems.billing.payment import (
    PayInvoice,
    PaymentResult,
    RefundPayment,
    pay_invoice,
    refund_payment,
)
from finsync.systems.billing.state import BillingState, amount_due
from tests.unit.billing.support import invoices, subscribed, usd

ON = date(2025, 1, 20)


def first_invoice() -> tuple[BillingState, str]:
    start = subscribed()
    return start.state, invoices(start.emitted)[0].id


def test_payment_in_full_settles_the_invoice() -> None:
    state, invoice_id = first_invoice()
    outcome = pay_invoice(state, PayInvoice("pay_1", invoice_id, usd("63000.00"), ON))
    [event] = outcome.emitted
    assert isinstance(event.event, PaymentApplied)
    assert isinstance(event.event.document, Payment)
    assert event.correlation_id == "order_1"
    assert amount_due(outcome.state, invoice_id) == usd("0.00")


def test_partial_payment_leaves_the_rest_due() -> None:
    # 63000.00 - 20000.00 = 43000.00 still due
    state, invoice_id = first_invoice()
    state = pay_invoice(state, PayInvoice("pay_1", invoice_id, usd("20000.00"), ON)).state
    assert amount_due(state, invoice_id) == usd("43000.00")


def test_declined_payment_is_recorded_and_applies_nothing() -> None:
    state, invoice_id = first_invoice()
    outcome = pay_invoice(state, PayInvoice("pay_1", invoice_id, usd("63000.00"), ON,
                                            PaymentResult.DECLINED, "card_declined"))
    assert outcome.emitted == ()
    assert [d.reason for d in outcome.state.declines] == ["card_declined"]
    assert amount_due(outcome.state, invoice_id) == usd("63000.00")


def test_overpayment_is_refused() -> None:
    state, invoice_id = first_invoice()
    with pytest.raises(OverpaymentError):
        pay_invoice(state, PayInvoice("pay_1", invoice_id, usd("63000.01"), ON))


def test_payment_sent_twice_is_applied_once() -> None:
    state, invoice_id = first_invoice()
    command = PayInvoice("pay_1", invoice_id, usd("100.00"), ON)
    once = pay_invoice(state, command).state
    again = pay_invoice(once, command)
    assert (again.state, again.emitted) == (once, ())
    with pytest.raises(DuplicateIdError):
        pay_invoice(once, PayInvoice("pay_1", invoice_id, usd("200.00"), ON))


def test_refund_returns_cash_and_reopens_the_receivable() -> None:
    # paid 63000.00, refund 1000.00: 1000.00 due again; at most 62000.00 more can be refunded
    state, invoice_id = first_invoice()
    state = pay_invoice(state, PayInvoice("pay_1", invoice_id, usd("63000.00"), ON)).state
    outcome = refund_payment(state, RefundPayment("re_1", "pay_1", usd("1000.00"), ON))
    assert [type(e.event) for e in outcome.emitted] == [RefundIssued]
    assert amount_due(outcome.state, invoice_id) == usd("1000.00")
    with pytest.raises(RefundExceedsPaymentError):
        refund_payment(outcome.state, RefundPayment("re_2", "pay_1", usd("62000.01"), ON))
    rest = refund_payment(outcome.state, RefundPayment("re_2", "pay_1", usd("62000.00"), ON))
    assert amount_due(rest.state, invoice_id) == usd("63000.00")
