"""A contract's value from its own terms (`value.contract_value`) equals what the billing
clock would still bill (the previous implementation, kept here as the oracle): over random
amendments, cancellations, payments and credits, with arrears and ramps, on a company of
two subscriptions whose clocks are run to different days."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from finsync.domain.catalog import BillingFrequency, PriceModel
from finsync.domain.contract import RampStep
from finsync.domain.money import Money
from finsync.systems.billing import clock
from finsync.systems.billing.errors import BillingError
from finsync.systems.billing.handler import RunClock, handle
from finsync.systems.billing.state import BillingState, DowngradePolicy, SubscriptionStatus
from finsync.systems.billing.subscription import CreateSubscription
from finsync.systems.billing.value import contract_value_in
from tests.unit.billing.support import (
    ANNUAL,
    MONTHLY,
    QUARTERLY,
    START,
    contract,
    seat_line,
    subscribed,
    usage_line,
    usd,
)
from tests.unit.billing.test_invariants import STEP, command


def clock_value(state: BillingState, contract_id: str) -> Money:
    """The previous definition: billed net + what billing's own clock would still invoice
    in fixed fees to the term end, the whole company's clock run with renewal off."""
    sub = state.subscription(contract_id)
    currency = sub.contract.currency
    invoices = [r.invoice for r in state.invoices if r.invoice.contract_id == contract_id]
    ids = {i.id for i in invoices}
    billed = sum((i.subtotal for i in invoices), Money.zero(currency)) - sum(
        (m.subtotal for m in state.credit_memos if m.invoice_id in ids), Money.zero(currency))
    if sub.status is SubscriptionStatus.CANCELLED:
        return billed
    frozen = replace(state, subscriptions=tuple(
        replace(s, auto_renew=False) if s.id == contract_id else s
        for s in state.subscriptions))
    issued = {r.invoice.id for r in state.invoices}
    usage = {p.price.product_id for p in state.config.catalog.plans
             if p.price.model is PriceModel.USAGE}
    future = clock.run(frozen, sub.contract.end_date).state
    fixed = [line.amount for r in future.invoices
             if r.invoice.id not in issued and r.invoice.contract_id == contract_id
             for line in r.invoice.lines if line.product_id not in usage]
    return billed + sum(fixed, Money.zero(currency))


def _second(state: BillingState, frequency: BillingFrequency) -> BillingState:
    """Another subscription of the same company, with a ramp and usage."""
    ramp = (RampStep(START + timedelta(days=100), 40, usd("110.00")),)
    lines = (seat_line(20, ramp=ramp, line_id="ln_ramp"), usage_line())
    other = replace(contract(*lines, frequency=frequency), id="sub_2")
    return handle(state, CreateSubscription(other, correlation_id="order_2")).state


@settings(max_examples=40, deadline=None)
@given(st.lists(STEP, max_size=10), st.sampled_from(list(DowngradePolicy)),
       st.sampled_from([MONTHLY, QUARTERLY, ANNUAL]), st.sampled_from([None, MONTHLY]),
       st.integers(0, 330))
def test_value_from_terms_equals_the_clock_oracle(
        steps: list[tuple[str, int, int]], policy: DowngradePolicy,
        frequency: BillingFrequency, arrears: BillingFrequency | None, stop: int) -> None:
    state = subscribed(seat_line(), frequency=frequency, policy=policy,
                       arrears=arrears).state
    state = _second(state, MONTHLY)
    on = START
    for i, (kind, days, n) in enumerate(steps):
        on = on + timedelta(days=days)
        state = handle(state, RunClock(on)).state
        cmd = command(kind, n, on, i, state)
        if cmd is not None:
            with contextlib.suppress(BillingError):
                state = handle(state, cmd).state
    state = handle(state, RunClock(max(on, START + timedelta(days=stop)))).state
    for sub in state.subscriptions:
        assert contract_value_in(state, sub.id) == clock_value(state, sub.id), sub.id


def test_annual_contract_billed_up_front_is_worth_its_invoice() -> None:
    """500 seats x 120.00 a year, billed on day one: 60,000.00 billed, nothing to come."""
    state = subscribed(seat_line()).state
    assert contract_value_in(state, "sub_1") == usd("60000.00")


def test_monthly_contract_is_worth_what_is_billed_plus_the_months_to_come() -> None:
    """500 x 120.00 a year billed monthly: 5,000.00 a month; January billed, 11 to come."""
    state = subscribed(seat_line(), frequency=MONTHLY).state
    assert len(state.invoices) == 1
    assert contract_value_in(state, "sub_1") == usd("60000.00")
    assert clock_value(state, "sub_1") == usd("60000.00")
