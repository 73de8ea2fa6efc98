"""Billing on a bill-cycle date apart from the service start, under each proration
convention (docs/billing/rules.md, "Billing cycles" and "Proration")."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from finsync.domain.proration import ProrationConvention
from finsync.systems.billing.amendment import AmendSubscription, amend_subscription
from finsync.systems.billing.clock import run
from finsync.systems.billing.edit import AddSeats
from finsync.systems.billing.subscription import CreateSubscription, create_subscription
from tests.unit.billing.support import MONTHLY, contract, empty_state, invoices, seat_line, usd

START, ANCHOR, END = date(2026, 5, 15), date(2026, 6, 1), date(2027, 5, 15)


def _subscribed(convention: ProrationConvention) -> CreateSubscription:
    # 50 seats at 120.00 a year, billed monthly on the 1st: 500.00 a full month.
    signed = replace(contract(seat_line(50, start=START, end=END), frequency=MONTHLY),
                     start_date=START, end_date=END, billing_anchor=ANCHOR,
                     proration=convention)
    return CreateSubscription(signed, correlation_id="order_1", auto_renew=False)


@pytest.mark.parametrize(("convention", "stub", "upgrade"), [
    # stub [15 May, 1 Jun): 17 of May's 31 days; +10 seats on 20 May: 12 days to 1 June
    (ProrationConvention.BY_DAY, "274.19", "38.71"),      # 500 x 17/31; 100 x 12/31
    (ProrationConvention.BY_SECOND, "274.19", "38.71"),   # the same on whole days
    (ProrationConvention.PARTIAL_MONTHS, "274.19", "38.71"),  # a part month by its days
    (ProrationConvention.MONTHLY_EVEN, "283.33", "40.00"),    # 500 x 17/30; 100 x 12/30
])
def test_stub_to_the_anchor_then_full_months_on_it(convention: ProrationConvention,
                                                   stub: str, upgrade: str) -> None:
    created = create_subscription(empty_state(), _subscribed(convention))
    (first,) = invoices(created.emitted)
    assert (first.issue_date, first.subtotal) == (START, usd(stub))
    assert (first.lines[0].service_start, first.lines[0].service_end) == (START, ANCHOR)
    amended = amend_subscription(created.state, AmendSubscription(
        "amd_1", "sub_1", date(2026, 5, 20), (AddSeats("ln_seats", 10),)))
    (delta,) = invoices(amended.emitted)
    assert delta.subtotal == usd(upgrade)
    later = invoices(run(amended.state, date(2026, 7, 1)).emitted)
    assert [(i.issue_date, i.subtotal) for i in later] == [
        (date(2026, 6, 1), usd("600.00")), (date(2026, 7, 1), usd("600.00"))]


def test_by_second_contract_prorates_an_amendment_from_its_instant() -> None:
    # +10 seats at 12:00 UTC on 20 May: 11.5 of May's 31 days = 100 x 993,600 / 2,678,400.
    created = create_subscription(empty_state(), _subscribed(ProrationConvention.BY_SECOND))
    amended = amend_subscription(created.state, AmendSubscription(
        "amd_1", "sub_1", date(2026, 5, 20), (AddSeats("ln_seats", 10),),
        effective_at=datetime(2026, 5, 20, 12, tzinfo=UTC)))
    (delta,) = invoices(amended.emitted)
    assert delta.subtotal == usd("37.10")
