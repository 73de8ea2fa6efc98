"""Invariants over random command sequences (hypothesis).

Whatever happens: every invoice's lines sum to its subtotal and subtotal + tax = total, at
minor units; credits never exceed the invoice line they credit; refunds never exceed their
payment; contract versions rise by one; a refused command is a typed `BillingError`.
"""

from __future__ import annotations

import contextlib
from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from finsync.domain.catalog import BillingFrequency
from finsync.domain.money import Money, total
from finsync.systems.billing.amendment import AmendSubscription
from finsync.systems.billing.cancellation import CancelMode, CancelSubscription
from finsync.systems.billing.credit import CreditReason, IssueCreditMemo
from finsync.systems.billing.edit import (
    AddProduct,
    AddSeats,
    ChangeBillingFrequency,
    ChangePrice,
    Edit,
    RemoveProduct,
    RemoveSeats,
)
from finsync.systems.billing.errors import BillingError
from finsync.systems.billing.handler import Command, RunClock, handle
from finsync.systems.billing.payment import PayInvoice
from finsync.systems.billing.state import BillingState, DowngradePolicy, amount_due
from tests.unit.billing.support import MONTHLY, QUARTERLY, START, seat_line, subscribed, usd

STEP = st.tuples(st.sampled_from(["seats+", "seats-", "addon", "drop", "price", "freq",
                                  "pay", "sla", "cancel"]),
                 st.integers(1, 60), st.integers(1, 400))


def command(kind: str, n: int, on: date, i: int, state: BillingState) -> Command | None:
    edits: dict[str, Edit] = {
        "seats+": AddSeats("ln_seats", n), "seats-": RemoveSeats("ln_seats", n),
        "addon": AddProduct(f"ln_addon_{i}", "price_analytics", n),
        "drop": RemoveProduct(f"ln_addon_{i - 1}"), "price": ChangePrice("ln_seats",
                                                                         usd(f"{100 + n}.00")),
        "freq": ChangeBillingFrequency([MONTHLY, QUARTERLY][n % 2]),
    }
    if kind in edits:
        return AmendSubscription(f"amd_{i}", "sub_1", on, (edits[kind],))
    if kind == "cancel":
        return CancelSubscription(f"cancel_{i}", "sub_1", on, list(CancelMode)[n % 3])
    if not state.invoices:
        return None
    invoice = state.invoices[n % len(state.invoices)].invoice
    due = amount_due(state, invoice.id)
    if kind == "pay":
        part = Money(due.amount * n / 400, due.currency).quantize()
        return PayInvoice(f"pay_{i}", invoice.id, part, on) if part.amount > 0 else None
    return IssueCreditMemo(invoice.id, CreditReason.SLA_CREDIT, on, usd(f"{n}.00"))


def check(state: BillingState) -> None:
    for record in state.invoices:
        invoice = record.invoice
        assert total([x.amount for x in invoice.lines], invoice.currency) == invoice.subtotal
        assert invoice.subtotal + invoice.tax_total == invoice.total
        assert all(x.amount.quantize() == x.amount for x in invoice.lines)
        memos = [m for m in state.credit_memos if m.invoice_id == invoice.id]
        assert total([m.total for m in memos], invoice.currency) <= invoice.total
        for line in invoice.lines:
            done = [x for m in memos for x in m.lines if x.line_id == line.line_id]
            assert total([x.amount for x in done], invoice.currency) <= line.amount
            assert total([x.tax_amount for x in done], invoice.currency) <= line.tax_amount
    for payment in state.payments:
        refunds = [r.amount for r in state.refunds if r.payment_id == payment.id]
        assert total(refunds, payment.amount.currency) <= payment.amount
    versions = [a.version for s in state.subscriptions for a in s.amendments]
    assert versions == list(range(2, len(versions) + 2))


@settings(max_examples=60, deadline=None)
@given(st.lists(STEP, max_size=14), st.sampled_from(list(DowngradePolicy)),
       st.sampled_from([MONTHLY, QUARTERLY]))
def test_documents_always_sum_and_credits_never_exceed(
        steps: list[tuple[str, int, int]], policy: DowngradePolicy,
        frequency: BillingFrequency) -> None:
    state = subscribed(seat_line(), frequency=frequency, policy=policy).state
    on = START
    for i, (kind, days, n) in enumerate(steps):
        on = on + timedelta(days=days)
        state = handle(state, RunClock(on)).state
        cmd = command(kind, n, on, i, state)
        if cmd is None:
            continue
        with contextlib.suppress(BillingError):
            state = handle(state, cmd).state
    check(handle(state, RunClock(on + timedelta(days=400))).state)
