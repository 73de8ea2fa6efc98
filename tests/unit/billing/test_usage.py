"""Usage intake, rating in arrears, hybrid fixed + usage, prepaid drawdown."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finsync.domain.catalog import BillingFrequency
from finsync.domain.clock import Period
from finsync.domain.events import InvoiceIssued, UsageRated
from finsync.domain.invoice import RatedUsage, UsageRecord
from finsync.systems.billing.clock import run
from finsync.systems.billing.errors import (
    DuplicateIdError,
    UnknownLineError,
    UsagePeriodClosedError,
)
from finsync.systems.billing.event import Emitted
from finsync.systems.billing.prepaid import PurchasePrepaid, purchase_prepaid
from finsync.systems.billing.state import BillingState
from finsync.systems.billing.usage import rating_periods, record_usage
from tests.unit.billing.support import (
    END,
    MONTHLY,
    START,
    invoices,
    seat_line,
    subscribed,
    types,
    usage_line,
    usd,
)

FEB_1, MAR_1 = date(2025, 2, 1), date(2025, 3, 1)


def use(state: BillingState, record_id: str, quantity: int,
        on: date = date(2025, 1, 10)) -> BillingState:
    record = UsageRecord(record_id, "sub_1", "prod_api", quantity, on)
    return record_usage(state, record).state


def charges(emitted: tuple[Emitted, ...]) -> list[RatedUsage]:
    return [e.event.usage_charge for e in emitted if isinstance(e.event, UsageRated)]


def test_fixed_plus_usage_bills_seats_in_advance_and_overage_in_arrears() -> None:
    # seats 500 x 120.00 a year on 2025-01-01 (60000.00); API calls rated monthly:
    # January 25000 calls, 10000 included: 15000 x 0.002 = 30.00 + 5% 1.50, on 2025-02-01
    start = subscribed(seat_line(), usage_line(), arrears=MONTHLY)
    assert [i.subtotal for i in invoices(start.emitted)] == [usd("60000.00")]
    state = use(use(start.state, "u1", 20_000), "u2", 5_000, date(2025, 1, 31))
    outcome = run(state, until=FEB_1)
    assert types(outcome.emitted) == [UsageRated, InvoiceIssued]
    [charge] = charges(outcome.emitted)
    assert (charge.used, charge.included, charge.billable) == (25_000, 10_000, 15_000)
    [invoice] = invoices(outcome.emitted)
    assert (invoice.issue_date, invoice.subtotal, invoice.total) == (
        FEB_1, usd("30.00"), usd("31.50"))
    assert (invoice.lines[0].service_start, invoice.lines[0].service_end) == (START, FEB_1)
    assert charge.invoice_id == invoice.id


def test_usage_within_the_included_quantity_is_rated_but_not_invoiced() -> None:
    start = subscribed(seat_line(), usage_line(), arrears=MONTHLY)
    outcome = run(use(start.state, "u1", 8_000), until=FEB_1)
    assert types(outcome.emitted) == [UsageRated]
    [charge] = charges(outcome.emitted)
    assert (charge.billable, charge.amount, charge.invoice_id) == (0, usd("0.00"), None)


def test_prepaid_drawdown_consumes_the_balance_before_invoicing_overage() -> None:
    # prepaid 500.00 bought on 2025-01-01 (invoice 500.00 + 5% = 525.00)
    # January 30000 calls x 0.01 = 300.00: all drawn, nothing invoiced, 200.00 left
    # February 35000 calls x 0.01 = 350.00: 200.00 drawn, 150.00 invoiced (+ 7.50 tax)
    start = subscribed(usage_line("price_api_prepaid", "0.01"), frequency=MONTHLY)
    bought = purchase_prepaid(start.state, PurchasePrepaid(
        "topup_1", "sub_1", "prod_prepaid", usd("500.00"), START))
    assert [i.total for i in invoices(bought.emitted)] == [usd("525.00")]
    state = use(bought.state, "u1", 30_000)
    january = run(state, until=FEB_1)
    assert types(january.emitted) == [UsageRated]
    [jan] = charges(january.emitted)
    assert (jan.amount, jan.drawn, jan.invoiced) == (usd("300.00"), usd("300.00"), usd("0.00"))
    february = run(use(january.state, "u2", 35_000, date(2025, 2, 14)), until=MAR_1)
    [feb] = charges(february.emitted)
    assert (feb.amount, feb.drawn, feb.invoiced) == (usd("350.00"), usd("200.00"),
                                                      usd("150.00"))
    [invoice] = invoices(february.emitted)
    assert invoice.total == usd("157.50")
    assert february.state.subscription("sub_1").prepaid_balance == usd("0.00")


def test_usage_for_a_rated_period_is_refused() -> None:
    start = subscribed(seat_line(), usage_line(), arrears=MONTHLY)
    state = run(start.state, until=FEB_1).state
    with pytest.raises(UsagePeriodClosedError):
        use(state, "late", 10, date(2025, 1, 31))


def test_usage_for_a_product_without_usage_line_is_refused() -> None:
    with pytest.raises(UnknownLineError):
        use(subscribed().state, "u1", 10)


def test_usage_id_reused_with_other_content_is_refused() -> None:
    state = use(subscribed(seat_line(), usage_line()).state, "u1", 10)
    with pytest.raises(DuplicateIdError):
        use(state, "u1", 11)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 5_000)), min_size=1,
                max_size=12), st.lists(st.integers(0, 11), max_size=12))
def test_usage_sent_twice_is_rated_once(sent: list[tuple[int, int]],
                                        resent: list[int]) -> None:
    state = subscribed(seat_line(), usage_line(), arrears=MONTHLY).state
    records = [UsageRecord(f"u{i}", "sub_1", "prod_api", quantity, START + timedelta(days=day))
               for i, (day, quantity) in enumerate(sent)]
    for record in records + [records[i % len(records)] for i in resent]:
        state = record_usage(state, record).state
    [charge] = charges(run(state, until=FEB_1).emitted)
    assert charge.used == sum(r.quantity for r in records)
    assert len(state.usage) == len(records)


@pytest.mark.parametrize("arrears", [BillingFrequency.MONTHLY, BillingFrequency.QUARTERLY,
                                     BillingFrequency.ANNUAL])
def test_rating_periods_are_the_periods_the_clock_rates(arrears: BillingFrequency) -> None:
    state = subscribed(seat_line(), usage_line(), arrears=arrears, auto_renew=False).state
    sub = state.subscription("sub_1")
    periods = rating_periods(sub.anchor, sub.arrears_months, sub.arrears_through,
                             sub.contract.end_date, Period(START - timedelta(days=10),
                                                           END + timedelta(days=40)))
    rated = [e.event.usage_charge for e in run(state, END).emitted
             if isinstance(e.event, UsageRated)]
    # before the term: the cycle already "rated" (nothing to rate); after it: none
    assert periods[1:] == tuple(Period(r.period_start, r.period_end) for r in rated)
    assert periods[0].end == START


def test_rating_periods_cut_cycles_at_the_first_unrated_day_and_the_term_end() -> None:
    # cycles on the 15th; usage rated through Jan 1 (a stub from Jan 1 to the anchor)
    anchor, rated_through, term_end = date(2025, 1, 15), date(2025, 1, 1), date(2025, 4, 10)
    got = rating_periods(anchor, 1, rated_through, term_end,
                         Period(date(2024, 12, 20), date(2025, 5, 1)))
    assert got == tuple(Period(a, b) for a, b in [
        (date(2024, 12, 15), date(2025, 1, 1)),  # rated already: its usage is refused
        (date(2025, 1, 1), date(2025, 1, 15)), (date(2025, 1, 15), date(2025, 2, 15)),
        (date(2025, 2, 15), date(2025, 3, 15)), (date(2025, 3, 15), term_end)])
    assert rating_periods(anchor, 1, rated_through, term_end,
                          Period(date(2025, 2, 20), date(2025, 2, 21))) == (
        Period(date(2025, 2, 15), date(2025, 3, 15)),)
    assert rating_periods(anchor, 1, rated_through, term_end,
                          Period(term_end, date(2025, 6, 1))) == ()
