"""Invariants of progress measured from inputs (costs incurred / total expected costs),
with and without a rounded measure, uninstalled materials and change orders."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finsync.domain.invoice import DeliveredPart
from finsync.domain.money import Money
from finsync.systems.revrec import (
    ContractBooked,
    PriceChangeKind,
    ProgressReported,
    RecognitionPattern,
    RecognitionTerms,
    RevenueContractState,
    RevenueEvent,
    TransactionPriceChanged,
    UnitsDelivered,
    obligation_schedule,
    replay,
)
from finsync.systems.revrec.event import ChangeOrderApproved, CostsReported
from finsync.systems.revrec.progress import cumulative
from finsync.systems.revrec.timegrid import at_midnight
from tests.unit.revrec.builders import START, contract, line, ssp

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
STEPS = [None, Decimal("1"), Decimal("0.1"), Decimal("0.01"), Decimal("0.5")]
CENT = Decimal("0.01")


def cents(minor: int) -> Money:
    return Money.from_minor(minor, "USD")


@st.composite
def cost_histories(draw: st.DrawFn) -> tuple[ContractBooked, list[RevenueEvent]]:
    price_minor = draw(st.integers(100, 10**9))
    price = str(cents(price_minor).amount)
    days = draw(st.integers(30, 700))
    build = line("ln_b", 1, price, "prod_b", START, START + timedelta(days=days))
    step = draw(st.sampled_from(STEPS))
    terms = RecognitionTerms((("prod_b", RecognitionPattern.PROGRESS),),
                             progress_rounding=step)
    booked = ContractBooked("evt_book", contract(build), (ssp("prod_b", price),), terms)
    expected = draw(st.integers(10**4, 10**9))
    incurred, materials = 0, 0
    on = START
    events: list[RevenueEvent] = []
    for n in range(draw(st.integers(1, 6))):
        on = on + timedelta(days=draw(st.integers(0, days // 3)))
        expected = draw(st.integers(max(expected, incurred + 1), expected * 2))
        incurred = draw(st.integers(incurred, expected))
        if draw(st.booleans()):
            ceiling = min(incurred, expected - 1, price_minor) // 4  # materials at cost fit
            materials = draw(st.integers(materials, max(materials, ceiling)))
        events.append(CostsReported(f"evt_c{n}", "ln_b", on, cents(incurred), cents(expected),
                                    cents(materials) if materials else None))
        if draw(st.booleans()):
            estimate = cents(draw(st.integers(0, 10**6)))
            events.append(ChangeOrderApproved(f"evt_co{n}", "ln_b", on, estimate))
    return booked, events


def _sums_to_its_price_and_never_drifts(state: RevenueContractState, obligation_id: str
                                        ) -> None:
    """The obligation's schedule sums to its allocated price, and its running total stays
    within a cent of the exact cumulative revenue at every line's end."""
    ob = state.obligation(obligation_id)
    sched = obligation_schedule(state, obligation_id)
    assert sum(li.amount.amount for li in sched.lines) == ob.allocated_price.amount
    running = Decimal(0)
    for li in sched.lines:
        running += li.amount.amount
        exact = cumulative(ob, state.granularity, at_midnight(li.period.end))
        assert abs(running - exact) <= CENT, (li.period, running, exact)


@SETTINGS
@given(cost_histories())
def test_input_method_schedule_sums_to_the_allocated_price_and_never_drifts(
        history: tuple[ContractBooked, list[RevenueEvent]]) -> None:
    _sums_to_its_price_and_never_drifts(replay(*history), "ln_b")


@SETTINGS
@given(cost_histories())
def test_a_rounded_measure_is_never_above_the_cost_ratio_nor_a_step_below_it(
        history: tuple[ContractBooked, list[RevenueEvent]]) -> None:
    state = replay(*history)
    step = state.terms.progress_rounding
    for report in state.obligation("ln_b").cost_reports:
        materials = report.uninstalled_materials.amount
        ratio = ((report.costs_incurred.amount - materials)
                 / (report.total_expected_costs.amount - materials))
        assert report.measure <= ratio
        if step is None:
            assert report.measure == ratio
        else:
            assert ratio - report.measure < step / 100
            assert (report.measure * 100 / step) % 1 == 0


@st.composite
def concession_histories(draw: st.DrawFn) -> tuple[ContractBooked, list[RevenueEvent]]:
    """A per-unit or progress obligation, facts, and price concessions with a delivered
    part that fits what was recognised (the rest fits what remains)."""
    pattern = draw(st.sampled_from([RecognitionPattern.PER_UNIT, RecognitionPattern.PROGRESS]))
    units = draw(st.integers(1, 500))
    price_minor = draw(st.integers(100, 10**6))
    build = line("ln_u", units, str(cents(price_minor).amount), "prod_u", START,
                 START + timedelta(days=draw(st.integers(30, 400))))
    terms = RecognitionTerms((("prod_u", pattern),))
    booked = ContractBooked("evt_book", contract(build), (ssp("prod_u", "1.00"),), terms)
    events: list[RevenueEvent] = []
    on, done = START, 0
    priced = price_minor * units  # the transaction price, less the concessions so far
    conceded = False
    for n in range(draw(st.integers(1, 4))):
        # A delivery on the day of a concession applies before it (the engine's canonical
        # order), so it would shrink what remains below what the concession was drawn for.
        on = on + timedelta(days=draw(st.integers(1 if conceded else 0, 60)))
        conceded = False
        if pattern is RecognitionPattern.PER_UNIT and done < units:
            quantity = draw(st.integers(1, units - done))
            done += quantity
            events.append(UnitsDelivered(f"evt_d{n}", "ln_u", on, quantity))
        elif pattern is RecognitionPattern.PROGRESS:
            done = draw(st.integers(done, 100))
            events.append(ProgressReported(f"evt_p{n}", "ln_u", on, Decimal(done)))
        share = Decimal(done) / Decimal(units if pattern is RecognitionPattern.PER_UNIT
                                        else 100)
        # Well inside what was recognised and what remains, at the price after the earlier
        # concessions (a quarter of each of the original price's could add up to more
        # than what remains: the engine refuses that, rightly).
        earned = int(priced * share) // 4
        if earned >= 1 and draw(st.booleans()):
            part = draw(st.integers(1, earned))
            rest = draw(st.integers(0, int(priced * (1 - share)) // 4))
            priced -= part + rest
            conceded = True
            events.append(TransactionPriceChanged(
                f"evt_c{n}", on, -cents(part + rest), PriceChangeKind.PRICE_CONCESSION,
                frozenset({"ln_u"}), None, DeliveredPart(-cents(part))))
    return booked, events


@SETTINGS
@given(concession_histories())
def test_delivered_concessions_keep_every_schedule_summing_and_exact(
        history: tuple[ContractBooked, list[RevenueEvent]]) -> None:
    _sums_to_its_price_and_never_drifts(replay(*history), "ln_u")
