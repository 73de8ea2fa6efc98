"""The posting budget every worker process shares (`storage.posting_budget`, `hub.budget`):
two budgets of one target on one database are two processes; time is a clock we step.
On SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from finsync.hub.budget import Grant, Limit, Limits, PostingBudget, Wait, day_start
from finsync.storage import posting_budget
from finsync.storage.db import reading, transaction
from tests.hubkit import Clock

LEASE_S = 30.0


def _budgets(engine: Engine, clock: Clock, limits: Limits,
             n: int = 2) -> list[PostingBudget]:
    return [PostingBudget(engine, "erp", limits, clock, f"worker-{i}", LEASE_S)
            for i in range(n)]


@pytest.mark.parametrize("per_minute", [1, 7, 60])
def test_two_processes_never_make_more_calls_than_the_budget_in_any_minute(
        engine: Engine, per_minute: int) -> None:
    clock = Clock()
    budgets = _budgets(engine, clock, Limits(calls_per_minute=per_minute))
    rng = random.Random(per_minute)
    calls: list[float] = []
    for _ in range(150):
        clock.advance(rng.uniform(0, 6))
        for budget in budgets:
            for _ in range(rng.randint(0, 4)):
                grant = budget.take()
                if isinstance(grant, Grant):
                    calls.append(clock().timestamp())
    assert len(calls) > per_minute  # the run spans many minutes of demand beyond the budget
    for t in calls:
        assert sum(1 for u in calls if t - 60 < u <= t) <= per_minute


def test_a_spent_minute_says_how_long_to_wait_and_refills(engine: Engine) -> None:
    clock = Clock()
    first, second = _budgets(engine, clock, Limits(calls_per_minute=60))
    grants = [first.take() for _ in range(6)]  # a burst of a tenth of the minute
    assert all(isinstance(g, Grant) for g in grants)
    refused = second.take()
    assert isinstance(refused, Wait) and refused.limit is Limit.CALLS_PER_MINUTE
    assert refused.seconds == pytest.approx(60 / 54, abs=3e-6)  # 54 refill in the minute
    assert second.waiting() == refused
    clock.advance(refused.seconds)
    assert isinstance(second.take(), Grant) and first.waiting() is not None


def test_the_erps_retry_after_stops_every_process(engine: Engine) -> None:
    clock = Clock()
    first, second = _budgets(engine, clock, Limits(calls_per_minute=600))
    assert isinstance(second.take(), Grant)
    first.pause(30)
    refused = second.take()
    assert isinstance(refused, Wait) and refused.limit is Limit.RETRY_AFTER
    assert refused.seconds == pytest.approx(30)
    clock.advance(30)
    assert isinstance(second.take(), Grant)


def test_concurrency_slots_are_shared(engine: Engine) -> None:
    clock = Clock()
    first, second = _budgets(engine, clock, Limits(concurrency=2))
    a, b = first.take(), second.take()
    assert isinstance(a, Grant) and isinstance(b, Grant) and {a.slot, b.slot} == {0, 1}
    refused = first.take()
    assert isinstance(refused, Wait) and refused.limit is Limit.CONCURRENCY
    second.release(b)
    again = first.take()
    assert isinstance(again, Grant) and again.slot == b.slot


def test_a_killed_holders_slot_comes_back_when_its_lease_runs_out(engine: Engine) -> None:
    clock = Clock()
    killed, alive, third = _budgets(engine, clock, Limits(concurrency=1), n=3)
    held = killed.take()  # and the process dies: it never gives the slot back
    assert isinstance(held, Grant)
    clock.advance(LEASE_S - 1)
    assert isinstance(alive.take(), Wait)
    clock.advance(2)
    taken = alive.take()
    assert isinstance(taken, Grant)
    killed.release(held)  # a late release of the lost lease frees nothing
    assert isinstance(third.take(), Wait)
    with reading(engine) as conn:
        assert posting_budget.held_slots(conn, "erp", clock()) == ["worker-1"]


def test_a_slow_calls_slot_is_kept_while_it_is_extended(engine: Engine) -> None:
    clock = Clock()
    slow, other = _budgets(engine, clock, Limits(concurrency=1))
    held = slow.take()
    assert isinstance(held, Grant)
    clock.advance(LEASE_S - 1)
    slow.extend([held], clock() + timedelta(seconds=LEASE_S))  # its call goes on
    clock.advance(2)  # past the first lease
    refused = other.take()
    assert isinstance(refused, Wait) and refused.limit is Limit.CONCURRENCY
    clock.advance(LEASE_S)  # the call never ended and nobody kept it: the slot comes back
    assert isinstance(other.take(), Grant)
    slow.extend([held], clock() + timedelta(seconds=LEASE_S))  # too late: taken by other
    with reading(engine) as conn:
        assert posting_budget.held_slots(conn, "erp", clock()) == ["worker-1"]


def test_the_daily_cap_holds_for_every_process_until_the_next_day(engine: Engine) -> None:
    clock = Clock()
    first, second = _budgets(engine, clock, Limits(daily_cap=3))
    assert [isinstance(b.take(), Grant) for b in (first, second, first, second)] == [
        True, True, True, False]
    refused = second.take()
    assert isinstance(refused, Wait) and refused.limit is Limit.DAILY_CAP
    midnight = day_start(clock()) + timedelta(days=1)
    assert refused.seconds == pytest.approx((midnight - clock()).total_seconds())
    clock.advance(refused.seconds)
    assert isinstance(second.take(), Grant)


def test_a_call_one_limit_refuses_costs_the_others_nothing(engine: Engine) -> None:
    clock = Clock()
    budget, = _budgets(engine, clock, Limits(calls_per_minute=1, concurrency=1,
                                             daily_cap=10), n=1)
    grant = budget.take()
    assert isinstance(grant, Grant)
    budget.release(grant)
    assert isinstance(budget.take(), Wait)  # the minute's single call is spent
    day = int(day_start(clock()).timestamp())
    with transaction(engine) as conn:
        assert posting_budget.day_calls(conn, "erp", day) == 1  # the refused one gave back
        assert posting_budget.held_slots(conn, "erp", clock()) == []


def test_calls_made_beyond_their_grants_make_the_next_ones_wait(engine: Engine) -> None:
    clock = Clock()
    budget, = _budgets(engine, clock, Limits(calls_per_minute=60, daily_cap=100), n=1)
    assert isinstance(budget.take(), Grant)
    budget.spend(5)  # a batch of five failed, then made again one by one: five more calls
    refused = budget.take()  # the burst of six is spent: one call refills in 60/54 s
    assert isinstance(refused, Wait)
    assert refused.seconds == pytest.approx(60 / 54, abs=3e-6)
    with reading(engine) as conn:
        assert posting_budget.day_calls(conn, "erp", int(day_start(clock()).timestamp())) == 6


def test_limits_refuse_what_is_no_limit() -> None:
    with pytest.raises(ValueError, match="daily_cap"):
        Limits(daily_cap=0)
    with pytest.raises(ValueError, match="calls_per_minute"):
        posting_budget.Bucket.per_minute(0)
