"""Upgrades, downgrades, co-termination, ramps and the renewal baseline."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from finsync.domain.aggregate import AggregateRef
from finsync.domain.contract import ChangeOp, ContractChange, ContractLine, RampStep
from finsync.domain.events import ContractAmended, CreditMemoIssued, InvoiceIssued
from finsync.domain.invoice import CreditMemo
from finsync.domain.money import Money
from finsync.systems.billing.amendment import AmendSubscription, amend_subscription
from finsync.systems.billing.clock import run
from finsync.systems.billing.edit import (
    AddProduct,
    AddSeats,
    ChangeBillingFrequency,
    ChangePrice,
    Edit,
    RemoveProduct,
    RemoveSeats,
)
from finsync.systems.billing.errors import (
    AmendmentDateError,
    BillingCurrencyError,
    InvalidCommandError,
    InvalidQuantityError,
    UnknownLineError,
    UnknownPriceError,
)
from finsync.systems.billing.outcome import Outcome
from finsync.systems.billing.proration import ProrationRule, ProrationUnit
from finsync.systems.billing.state import BillingState, DowngradePolicy
from tests.unit.billing.support import (
    END,
    MONTHLY,
    QUARTERLY,
    START,
    invoices,
    seat_line,
    subscribed,
    types,
    usd,
)

MAY_16 = date(2025, 5, 16)  # 230 days before 2026-01-01


def amend(state: BillingState, *edits: Edit, on: date = MAY_16, amendment_id: str = "amd_1",
          at: datetime | None = None) -> Outcome:
    command = AmendSubscription(amendment_id, "sub_1", on, edits, effective_at=at)
    return amend_subscription(state, command)


def memos(outcome: Outcome) -> list[CreditMemo]:
    return [e.event.credit_memo for e in outcome.emitted if isinstance(e.event, CreditMemoIssued)]


def test_upgrade_invoices_prorated_seats_and_cotermed_module_at_once() -> None:
    # 500 -> 800 seats on 2025-05-16, 230 of 365 days left:
    #   300 x 120.00 x 230/365 = 22684.93; tax 5% = 1134.25 (1134.2465)
    # premium analytics, 800 x 30.00 a year x 230/365 = 15123.29; tax 756.16 (756.1645)
    # subtotal 37808.22 + tax 1890.41 = 39698.63
    outcome = amend(subscribed().state, AddSeats("ln_seats", 300),
                    AddProduct("ln_analytics", "price_analytics", 800))
    assert types(outcome.emitted) == [ContractAmended, InvoiceIssued]
    [invoice] = invoices(outcome.emitted)
    assert [line.amount for line in invoice.lines] == [usd("22684.93"), usd("15123.29")]
    assert [line.tax_amount for line in invoice.lines] == [usd("1134.25"), usd("756.16")]
    assert invoice.total == usd("39698.63")
    assert all(line.proration for line in invoice.lines)
    assert {(x.service_start, x.service_end) for x in invoice.lines} == {(MAY_16, END)}
    assert (invoice.issue_date, invoice.contract_version) == (MAY_16, 2)


def test_upgrade_invoice_is_correlated_to_its_amendment() -> None:
    amended, issued = amend(subscribed().state, AddSeats("ln_seats", 300)).emitted
    assert isinstance(amended.event, ContractAmended)
    assert amended.aggregate == AggregateRef("subscription_contract", "sub_1", 2)
    assert amended.causation == AggregateRef("subscription_contract", "sub_1", 1)
    assert issued.correlation_id == amended.correlation_id == "amd_1"
    assert issued.causation == amended.aggregate
    assert amended.event.amendment.changes == (
        ContractChange(ChangeOp.QUANTITY_CHANGED, "ln_seats", "500", "800"),)


def test_downgrade_credit_now_issues_credit_memo_on_the_billing_invoice() -> None:
    # 500 -> 400 seats on 2025-05-16: 100 x 120.00 x 230/365 = 7561.64 (7561.6438)
    # tax reversed in proportion: 3000.00 x 7561.64 / 60000.00 = 378.08 (378.082); 7939.72
    start = subscribed()
    outcome = amend(start.state, RemoveSeats("ln_seats", 100))
    assert types(outcome.emitted) == [ContractAmended, CreditMemoIssued]
    [memo] = memos(outcome)
    assert (memo.subtotal, memo.tax_total, memo.total) == (
        usd("7561.64"), usd("378.08"), usd("7939.72"))
    assert memo.reason == "downgrade"
    assert memo.invoice_id == invoices(start.emitted)[0].id
    assert memo.number == "CM-le_us-000001"
    assert (memo.lines[0].service_start, memo.lines[0].quantity) == (MAY_16, 100)


def test_downgrade_at_renewal_changes_nothing_now_and_renews_lower() -> None:
    # policy at_renewal: 500 seats stay billed this term; the renewal baseline drops to 400
    # renewal 2026-01-01: 400 x 120.00 = 48000.00 + 5% = 50400.00
    start = subscribed(policy=DowngradePolicy.AT_RENEWAL)
    outcome = amend(start.state, RemoveSeats("ln_seats", 100))
    [amended] = outcome.emitted
    assert isinstance(amended.event, ContractAmended)
    assert amended.event.amendment.contract.lines[0].quantity == 500
    assert amended.event.amendment.changes == (
        ContractChange(ChangeOp.RENEWAL_QUANTITY_CHANGED, "ln_seats", "500", "400"),)
    [invoice] = invoices(run(outcome.state, until=END).emitted)
    assert (invoice.lines[0].quantity, invoice.total) == (400, usd("50400.00"))


def test_renewal_baseline_moves_with_every_amendment() -> None:
    # at_renewal: -100 deferred (baseline 400), then +50 now (contract 550, baseline 450)
    # +50 x 120.00 x 200/365 on 2025-06-15 = 3287.67 (3287.671); renewal 450 x 120 = 54000.00
    state = amend(subscribed(policy=DowngradePolicy.AT_RENEWAL).state,
                  RemoveSeats("ln_seats", 100)).state
    upgraded = amend(state, AddSeats("ln_seats", 50), on=date(2025, 6, 15),
                     amendment_id="amd_2")
    assert invoices(upgraded.emitted)[0].subtotal == usd("3287.67")
    [renewal] = invoices(run(upgraded.state, until=END).emitted)
    assert (renewal.lines[0].quantity, renewal.subtotal) == (450, usd("54000.00"))


def test_cotermination_prorates_add_on_to_cycle_and_ends_with_main_term() -> None:
    # quarterly billing; analytics 100 x 30.00 a year added 2025-02-15, 45 of Q1's 90 days:
    #   100 x 30.00 x 3/12 x 45/90 = 375.00; the add-on line ends 2026-01-01 with the term
    # Q2 on 2025-04-01: seats 500 x 120 x 3/12 = 15000.00, analytics 100 x 30 x 3/12 = 750.00
    outcome = amend(subscribed(frequency=QUARTERLY).state,
                    AddProduct("ln_analytics", "price_analytics", 100), on=date(2025, 2, 15))
    [amended, _] = outcome.emitted
    assert isinstance(amended.event, ContractAmended)
    added = amended.event.amendment.contract.lines[1]
    assert (added.start_date, added.end_date) == (date(2025, 2, 15), END)
    assert invoices(outcome.emitted)[0].subtotal == usd("375.00")
    [q2] = invoices(run(outcome.state, until=date(2025, 4, 1)).emitted)
    assert [x.amount for x in q2.lines] == [usd("15000.00"), usd("750.00")]
    assert not any(x.proration for x in q2.lines)


def test_ramp_splits_the_cycle_at_each_step() -> None:
    # 100 seats @ 120.00 a year, stepping on 2025-07-01 to 200 seats @ 110.00, billed annually
    #   [01-01, 07-01) 181 days: 100 x 120.00 x 181/365 = 5950.68 (5950.6849)
    #   [07-01, 01-01) 184 days: 200 x 110.00 x 184/365 = 11090.41 (11090.4110)
    # renewal on 2026-01-01 takes the last step: 200 x 110.00 = 22000.00
    ramp = (RampStep(date(2025, 7, 1), 200, usd("110.00")),)
    outcome = subscribed(seat_line(100, ramp=ramp))
    [invoice] = invoices(outcome.emitted)
    assert [x.amount for x in invoice.lines] == [usd("5950.68"), usd("11090.41")]
    assert invoice.subtotal == usd("17041.09")
    assert all(x.proration for x in invoice.lines)
    [renewal] = invoices(run(outcome.state, until=END).emitted)
    assert (renewal.lines[0].quantity, renewal.subtotal) == (200, usd("22000.00"))


def test_ramp_with_quarterly_billing_bills_each_step_in_its_cycle() -> None:
    # Q1, Q2: 100 x 120.00 x 3/12 = 3000.00; Q3, Q4: 200 x 110.00 x 3/12 = 5500.00
    ramp = (RampStep(date(2025, 7, 1), 200, usd("110.00")),)
    outcome = subscribed(seat_line(100, ramp=ramp), frequency=QUARTERLY)
    later = run(outcome.state, until=date(2025, 12, 31))
    totals = [i.subtotal for i in invoices(outcome.emitted + later.emitted)]
    assert totals == [usd("3000.00"), usd("3000.00"), usd("5500.00"), usd("5500.00")]


def test_remove_product_credits_the_rest_of_the_cycle() -> None:
    # analytics 800 x 30.00 from the start; removed 2025-05-16: 800 x 30 x 230/365 = 15123.29
    outcome = subscribed(seat_line(), _analytics())
    removed = amend(outcome.state, RemoveProduct("ln_analytics"))
    [memo] = memos(removed)
    assert memo.subtotal == usd("15123.29")
    [amended] = [e.event.amendment for e in removed.emitted
                 if isinstance(e.event, ContractAmended)]
    assert amended.contract.lines[1].end_date == MAY_16


def test_price_change_up_invoices_the_difference() -> None:
    # 500 x (132.00 - 120.00) x 230/365 = 3780.82 (3780.8219)
    outcome = amend(subscribed().state, ChangePrice("ln_seats", usd("132.00")))
    assert invoices(outcome.emitted)[0].subtotal == usd("3780.82")


def test_billing_frequency_change_applies_from_the_next_boundary() -> None:
    # annual -> monthly on 2025-05-16: nothing prorated; from 2026-01-01 monthly 500 x 10.00
    outcome = amend(subscribed().state, ChangeBillingFrequency(MONTHLY))
    assert types(outcome.emitted) == [ContractAmended]
    later = run(outcome.state, until=date(2026, 2, 1))
    assert [i.subtotal for i in invoices(later.emitted)] == [usd("5000.00"), usd("5000.00")]


def test_proration_by_second_uses_the_instant() -> None:
    # 2025-05-16 12:00 UTC: 229.5 of 365 days left; 300 x 120 x 19828800/31536000 = 22635.62
    state = _by_second(subscribed().state)
    at = datetime(2025, 5, 16, 12, tzinfo=UTC)
    outcome = amend(state, AddSeats("ln_seats", 300), at=at)
    assert invoices(outcome.emitted)[0].subtotal == usd("22635.62")


def test_negative_seats_are_refused_and_change_nothing() -> None:
    state = subscribed().state
    with pytest.raises(InvalidQuantityError):
        amend(state, AddSeats("ln_seats", -5))
    with pytest.raises(InvalidQuantityError, match="below zero"):
        amend(state, RemoveSeats("ln_seats", 501))
    assert state == subscribed().state


def test_amendment_before_the_contract_starts_is_refused() -> None:
    with pytest.raises(AmendmentDateError, match="before sub_1 starts"):
        amend(subscribed().state, AddSeats("ln_seats", 1), on=date(2024, 12, 31))


def test_amendment_before_the_previous_version_is_refused() -> None:
    state = amend(subscribed().state, AddSeats("ln_seats", 1)).state
    with pytest.raises(AmendmentDateError, match="version 2"):
        amend(state, AddSeats("ln_seats", 1), on=date(2025, 5, 1), amendment_id="amd_2")


def test_unknown_product_or_line_or_currency_is_refused() -> None:
    state = subscribed().state
    with pytest.raises(UnknownPriceError):
        amend(state, AddProduct("ln_x", "price_nope", 1))
    with pytest.raises(UnknownLineError):
        amend(state, AddSeats("ln_nope", 1))
    with pytest.raises(BillingCurrencyError):
        amend(state, ChangePrice("ln_seats", _eur("100.00")))
    with pytest.raises(InvalidCommandError, match="no edits"):
        amend(state)


def _analytics() -> ContractLine:
    return ContractLine("ln_analytics", "prod_analytics", "price_analytics", 800, usd("30.00"),
                        START, END)


def _eur(amount: str) -> Money:
    return Money.of(amount, "EUR")


def _by_second(state: BillingState) -> BillingState:
    return replace(state, config=replace(state.config,
                                         proration=ProrationRule(ProrationUnit.SECOND)))


def test_amendment_dated_after_what_is_billed_splits_the_next_cycle() -> None:
    # monthly, billed through 2025-02-01; +100 seats from 2025-02-15: nothing prorated now;
    # February (28 days): 500 x 10.00 x 14/28 = 2500.00, then 600 x 10.00 x 14/28 = 3000.00
    outcome = amend(subscribed(frequency=MONTHLY).state, AddSeats("ln_seats", 100),
                    on=date(2025, 2, 15))
    assert types(outcome.emitted) == [ContractAmended]
    [february] = invoices(run(outcome.state, until=date(2025, 2, 1)).emitted)
    assert [(x.quantity, x.amount) for x in february.lines] == [(500, usd("2500.00")),
                                                                (600, usd("3000.00"))]
