"""The company plan: a pure function of its seed that keeps billing's rules."""

from __future__ import annotations

from collections import Counter
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from finsync.domain.money import Money
from finsync.generator.plan import Change, Payer, payments, plan_company, term_starts

START = date(2026, 1, 1)
ENTITIES = (("le_us", "USD"), ("le_eu", "EUR"))


def test_same_seed_same_plan_and_different_seeds_differ() -> None:
    assert plan_company(3, 50, 12, START, ENTITIES) == plan_company(3, 50, 12, START, ENTITIES)
    assert plan_company(3, 50, 12, START, ENTITIES) != plan_company(4, 50, 12, START, ENTITIES)


def test_a_year_of_two_hundred_customers_has_every_kind_of_business() -> None:
    plan = plan_company(1, 200, 12, START, ENTITIES)
    changes = Counter(s.change for s in plan.steps)
    assert set(changes) == set(Change)
    assert {c.market.currency for c in plan.customers} == {"USD", "EUR"}
    assert {c.payer for c in plan.customers} == set(Payer)
    assert len({c.frequency for c in plan.customers}) == 3
    assert any(c.start > START for c in plan.customers)
    assert all(c.market.legal_entity == ("le_eu" if c.market.currency == "EUR" else "le_us")
               for c in plan.customers)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), months=st.integers(1, 24))
def test_steps_keep_billing_rules(seed: int, months: int) -> None:
    plan = plan_company(seed, 20, months, START, ENTITIES)
    assert list(plan.steps) == sorted(plan.steps, key=lambda s: (s.on, s.customer))
    for customer in plan.customers:
        mine = [s for s in plan.steps if s.customer == customer.n]
        starts = term_starts(customer, plan.end)
        seats = customer.seats
        cancels = [s for s in mine if s.change in (Change.CANCEL_NOW,
                                                   Change.CANCEL_AT_TERM_END)]
        assert len(cancels) <= 1
        for step in mine:
            assert customer.start <= step.on < plan.end
            if step.change is Change.CANCEL_NOW:
                assert step is mine[-1] or all(s.on == step.on for s in mine[mine.index(step):])
            if step.change not in (Change.USAGE, Change.REFUND):
                assert step.on not in starts and step.on > customer.start
            seats += {Change.UPGRADE: step.quantity, Change.DOWNGRADE: -step.quantity}.get(
                step.change, 0)
            assert seats >= 1
        if customer.market.currency == "EUR":
            assert not customer.has_usage and not customer.has_module
            assert all(s.change is not Change.ADD_ON for s in mine)


def test_payments_by_payer() -> None:
    total = Money.of("1000.01", "USD")
    issued, due = date(2026, 3, 1), date(2026, 3, 31)
    on_time = payments(1, Payer.ON_TIME, "inv_1", issued, due, total)
    assert len(on_time) == 1 and issued <= on_time[0].on <= due and on_time[0].amount is None
    late = payments(1, Payer.LATE, "inv_1", issued, due, total)
    assert late[0].on > due
    first, rest = payments(1, Payer.PARTIAL, "inv_1", issued, due, total)
    assert first.amount == Money.of("500.00", "USD") and rest.on > first.on  # half, even
    assert rest.amount is None
    assert payments(1, Payer.UNPAID, "inv_1", issued, due, total) == ()
    assert payments(1, Payer.ON_TIME, "inv_1", issued, due, Money.of("0.00", "USD")) == ()
    assert payments(1, Payer.LATE, "inv_1", issued, due, total) == late
