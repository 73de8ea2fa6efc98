"""Credit memos: SLA credits and goodwill, linked to invoices, never beyond them."""

from __future__ import annotations

from datetime import date

import pytest

from finsync.domain.contract import ContractLine
from finsync.domain.invoice import CreditMemo, Invoice
from finsync.systems.billing.credit import CreditReason, IssueCreditMemo, issue_credit_memo
from finsync.systems.billing.errors import CreditExceedsInvoiceError
from finsync.systems.billing.outcome import Outcome
from finsync.systems.billing.state import BillingState, amount_due
from tests.unit.billing.support import END, START, invoices, seat_line, subscribed, usd

ON = date(2025, 3, 1)


def credit(state: BillingState, invoice: Invoice, amount: str | None,
           reason: CreditReason = CreditReason.SLA_CREDIT) -> Outcome:
    money = usd(amount) if amount is not None else None
    return issue_credit_memo(state, IssueCreditMemo(invoice.id, reason, ON, money, "sla_1"))


def test_sla_credit_reverses_tax_in_proportion() -> None:
    # 10% SLA credit on 60000.00: 6000.00, tax 3000.00 x 6000/60000 = 300.00 -> 6300.00
    start = subscribed()
    [invoice] = invoices(start.emitted)
    outcome = credit(start.state, invoice, "6000.00")
    [event] = outcome.emitted
    memo = event.event.document
    assert isinstance(memo, CreditMemo)
    assert (memo.invoice_id, memo.reason) == (invoice.id, "sla_credit")
    assert (memo.subtotal, memo.tax_total, memo.total) == (
        usd("6000.00"), usd("300.00"), usd("6300.00"))
    assert event.correlation_id == "sla_1"
    assert amount_due(outcome.state, invoice.id) == usd("56700.00")


def test_credit_spreads_over_lines_by_largest_remainder_and_rounds_half_even() -> None:
    # lines 60000.00 (seats) and 1200.00 (platform fee); credit 1000.00 by what is left:
    #   1000 x 60000/61200 = 980.392 -> 980.39; 1000 x 1200/61200 = 19.608 -> 19.61
    #   tax 5%: 49.0195 -> 49.02; 0.9805 -> 0.98 (half-even)
    platform = ContractLine("ln_platform", "prod_platform", "price_platform", 1,
                            usd("1200.00"), START, END)
    start = subscribed(seat_line(), platform)
    [invoice] = invoices(start.emitted)
    [event] = credit(start.state, invoice, "1000.00", CreditReason.GOODWILL).emitted
    memo = event.event.document
    assert isinstance(memo, CreditMemo)
    assert [x.amount for x in memo.lines] == [usd("980.39"), usd("19.61")]
    assert [x.tax_amount for x in memo.lines] == [usd("49.02"), usd("0.98")]


def test_credit_beyond_what_is_left_is_refused() -> None:
    # 54000.00 left after a 6000.00 credit: 54000.01 is refused, 54000.00 empties the invoice
    start = subscribed()
    [invoice] = invoices(start.emitted)
    state = credit(start.state, invoice, "6000.00").state
    with pytest.raises(CreditExceedsInvoiceError):
        credit(state, invoice, "54000.01")
    emptied = credit(state, invoice, None, CreditReason.GOODWILL).state
    memos = [m.total for m in emptied.credit_memos]
    assert memos == [usd("6300.00"), usd("56700.00")]
    assert sum(m.amount for m in memos) == invoice.total.amount
    assert amount_due(emptied, invoice.id) == usd("0.00")
    with pytest.raises(CreditExceedsInvoiceError):
        credit(emptied, invoice, "0.01")
