"""Cancellation: at term end, immediately without refund, immediately with refund."""

from __future__ import annotations

from datetime import date

import pytest

from finsync.domain.contract import CONTRACT_LEVEL, ChangeOp
from finsync.domain.events import ContractCancelled, CreditMemoIssued, RefundIssued
from finsync.domain.invoice import CreditMemo
from finsync.domain.payment import Refund
from finsync.systems.billing.cancellation import (
    CancelMode,
    CancelSubscription,
    cancel_subscription,
)
from finsync.systems.billing.clock import run
from finsync.systems.billing.errors import AmendmentDateError, ContractStateError
from finsync.systems.billing.outcome import Outcome
from finsync.systems.billing.payment import PayInvoice, pay_invoice
from finsync.systems.billing.state import BillingState, SubscriptionStatus, amount_due
from tests.unit.billing.support import START, invoices, subscribed, types, usd

MAY_16 = date(2025, 5, 16)  # 230 days before 2026-01-01


def cancel(state: BillingState, mode: CancelMode, on: date = MAY_16) -> Outcome:
    return cancel_subscription(state, CancelSubscription("cancel_1", "sub_1", on, mode))


def paid_subscription() -> BillingState:
    start = subscribed()
    [invoice] = invoices(start.emitted)
    return pay_invoice(start.state, PayInvoice("pay_1", invoice.id, usd("63000.00"),
                                               date(2025, 1, 20))).state


def test_cancel_at_term_end_bills_the_term_and_does_not_renew() -> None:
    outcome = cancel(subscribed().state, CancelMode.AT_TERM_END)
    [cancelled] = outcome.emitted
    assert isinstance(cancelled.event, ContractCancelled)
    amendment = cancelled.event.amendment
    assert amendment.version == 2
    assert amendment.changes[0].op is ChangeOp.CANCEL_AT_TERM_END
    assert amendment.changes[0].line_id == CONTRACT_LEVEL
    assert outcome.state.subscription("sub_1").status is SubscriptionStatus.CANCEL_AT_TERM_END
    assert run(outcome.state, until=date(2026, 6, 1)).emitted == ()


def test_cancel_immediately_without_refund_ends_the_contract_and_credits_nothing() -> None:
    outcome = cancel(subscribed().state, CancelMode.IMMEDIATE_NO_REFUND)
    assert types(outcome.emitted) == [ContractCancelled]
    sub = outcome.state.subscription("sub_1")
    assert (sub.status, sub.contract.end_date) == (SubscriptionStatus.CANCELLED, MAY_16)
    assert sub.contract.lines[0].end_date == MAY_16
    assert run(outcome.state, until=date(2027, 1, 1)).emitted == ()


def test_cancel_immediately_with_refund_credits_unused_time_and_refunds_payment() -> None:
    # paid 63000.00; cancel 2025-05-16: 500 x 120.00 x 230/365 = 37808.22 (37808.2192)
    # tax reversed: 3000.00 x 37808.22/60000.00 = 1890.41 (1890.411) -> memo 39698.63
    # overpaid by the memo: refund 39698.63 to pay_1; the invoice then owes 0.00
    outcome = cancel(paid_subscription(), CancelMode.IMMEDIATE_WITH_REFUND)
    assert types(outcome.emitted) == [ContractCancelled, CreditMemoIssued,
                                      RefundIssued]
    _, memo_event, refund_event = outcome.emitted
    memo, refund = memo_event.event.document, refund_event.event.document
    assert isinstance(memo, CreditMemo) and isinstance(refund, Refund)
    assert (memo.reason, memo.subtotal, memo.total) == ("refund", usd("37808.22"),
                                                        usd("39698.63"))
    assert (refund.payment_id, refund.amount) == ("pay_1", usd("39698.63"))
    assert amount_due(outcome.state, memo.invoice_id) == usd("0.00")
    assert memo_event.correlation_id == refund_event.correlation_id == "cancel_1"


def test_cancel_immediately_with_refund_of_unpaid_invoice_only_credits() -> None:
    # unpaid: the memo reduces what is due to 63000.00 - 39698.63 = 23301.37; no cash back
    outcome = cancel(subscribed().state, CancelMode.IMMEDIATE_WITH_REFUND)
    assert types(outcome.emitted) == [ContractCancelled, CreditMemoIssued]
    memo = outcome.emitted[1].event.document
    assert isinstance(memo, CreditMemo)
    assert amount_due(outcome.state, memo.invoice_id) == usd("23301.37")


def test_cancelled_subscription_takes_no_more_commands() -> None:
    state = cancel(subscribed().state, CancelMode.IMMEDIATE_NO_REFUND).state
    with pytest.raises(ContractStateError):
        cancel_subscription(state, CancelSubscription("cancel_2", "sub_1", date(2025, 6, 1),
                                                      CancelMode.AT_TERM_END))


def test_immediate_cancel_on_the_start_date_is_refused() -> None:
    with pytest.raises(AmendmentDateError, match="start date"):
        cancel(subscribed().state, CancelMode.IMMEDIATE_NO_REFUND, on=START)
