"""The heap clock takes exactly the steps the plain clock took: the earliest due step of
the whole state, (date, kind, contract id) first, one at a time."""

from __future__ import annotations

from datetime import date, timedelta

from finsync.domain.invoice import UsageRecord
from finsync.systems.billing import clock
from finsync.systems.billing.errors import ClockLimitError
from finsync.systems.billing.outcome import Outcome
from finsync.systems.billing.state import BillingState
from finsync.systems.billing.subscription import CreateSubscription, create_subscription
from finsync.systems.billing.usage import record_usage
from tests.unit.billing.support import (
    ANNUAL,
    MONTHLY,
    QUARTERLY,
    contract,
    empty_state,
    seat_line,
    usage_line,
)


def _reference(state: BillingState, until: date) -> Outcome:
    """The clock as it was: the minimum over every subscription's steps, at each step."""
    outcome = Outcome(state)
    for _ in range(clock.STEPS_MAX):
        due = [step for sub in outcome.state.subscriptions for step in clock._steps(sub)
               if step[0] <= until]
        if not due:
            return outcome
        _, _, _, act = min(due, key=lambda step: step[:3])
        outcome = outcome.then(act(outcome.state))
    raise ClockLimitError("did not settle")


def _company() -> BillingState:
    state = empty_state()
    for n, frequency in enumerate((MONTHLY, QUARTERLY, ANNUAL, MONTHLY), 1):
        lines = (seat_line(10 * n), usage_line()) if n % 2 else (seat_line(10 * n),)
        command = CreateSubscription(contract(*lines, frequency=frequency,
                                              contract_id=f"sub_{n}"),
                                     correlation_id=f"order_{n}", arrears_frequency=MONTHLY)
        state = create_subscription(state, command).state
    for day in (3, 40, 75, 200):
        record = UsageRecord(f"u{day}", "sub_1", "prod_api", 5_000 * day,
                             date(2025, 1, 1) + timedelta(days=day))
        state = record_usage(state, record).state
    return state


def test_heap_clock_equals_the_plain_clock_over_many_subscriptions() -> None:
    state = _company()
    for until in (date(2025, 2, 1), date(2025, 7, 15), date(2026, 3, 1)):
        assert clock.run(state, until) == _reference(state, until)


def test_next_step_on_is_the_first_due_step() -> None:
    state = _company()
    sub = state.subscription("sub_1")
    assert clock.next_step_on(sub) == date(2025, 2, 1)  # monthly: February's advance + arrears
    assert clock.run(state, date(2025, 1, 31)).emitted == ()
