"""The billing clock: a year (and more) simulated from the pure state."""

from __future__ import annotations

import time
from datetime import date

from finsync.domain.events import ContractRenewed
from finsync.systems.billing.clock import run
from finsync.systems.billing.handler import RunClock, handle
from tests.unit.billing.support import MONTHLY, invoices, seat_line, subscribed, types, usd


def test_monthly_subscription_runs_two_years_with_renewal_in_order() -> None:
    # 500 seats x 120.00 a year billed monthly = 5000.00 a month; 24 invoices, one renewal
    started = time.perf_counter()
    start = subscribed(seat_line(), frequency=MONTHLY)
    outcome = run(start.state, until=date(2026, 12, 31))
    issued = invoices(start.emitted) + invoices(outcome.emitted)
    assert len(issued) == 24
    assert {i.subtotal for i in issued} == {usd("5000.00")}
    assert [i.number for i in issued] == [f"INV-le_us-{n:06d}" for n in range(1, 25)]
    assert [i.issue_date for i in issued] == sorted(i.issue_date for i in issued)
    assert types(outcome.emitted).count(ContractRenewed) == 1
    assert time.perf_counter() - started < 5


def test_running_again_to_the_same_date_does_nothing() -> None:
    once = run(subscribed(frequency=MONTHLY).state, until=date(2025, 6, 1))
    again = handle(once.state, RunClock(date(2025, 6, 1)))
    assert (again.state, again.emitted) == (once.state, ())


def test_run_in_steps_equals_run_at_once() -> None:
    start = subscribed(frequency=MONTHLY).state
    at_once = run(start, until=date(2025, 12, 1))
    stepped = run(run(start, until=date(2025, 5, 3)).state, until=date(2025, 12, 1))
    assert stepped.state == at_once.state
