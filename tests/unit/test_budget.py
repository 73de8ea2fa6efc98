"""The call budget: no 60-second window holds more calls than the budget, whatever the
pattern of demand; a retry-after from the ERP stops all calls until then."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from finsync.hub.budget import CallBudget


@given(per_minute=st.integers(1, 200),
       steps=st.lists(st.tuples(st.floats(0, 30), st.integers(1, 50)), max_size=200))
def test_no_minute_holds_more_calls_than_the_budget(per_minute: int,
                                                    steps: list[tuple[float, int]]) -> None:
    now = [0.0]
    budget = CallBudget(per_minute, lambda: now[0])
    calls: list[float] = []
    for wait, wanted in steps:
        now[0] += wait
        granted = budget.available(wanted)
        budget.take(granted)
        calls += [now[0]] * granted
    for t in calls:
        assert sum(1 for u in calls if t - 60 < u <= t) <= per_minute


def test_the_budget_refills_and_says_how_long_to_wait() -> None:
    now = [0.0]
    budget = CallBudget(60, lambda: now[0])
    assert budget.available(100) == 6  # a burst of a tenth of the minute
    budget.take(6)
    assert budget.available(1) == 0
    assert abs(budget.wait_s() - 60 / 54) < 1e-9  # the rest refills over the minute
    now[0] += budget.wait_s()
    assert budget.available(1) == 1


def test_a_retry_after_stops_every_call_until_then() -> None:
    now = [0.0]
    budget = CallBudget(None, lambda: now[0])
    assert budget.available(5) == 5
    budget.pause(30)
    assert budget.available(5) == 0 and budget.wait_s() == 30
    now[0] += 30
    assert budget.available(5) == 5
