"""The closed form of `series` gives exactly what `progress.recognised` gives, and schedules
built on it are the ones the general evaluation builds: over every golden case and over
random contracts (ramps, zero quantities, every granularity, days before, inside and after
the term) and random histories."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finsync.domain.contract import ContractLine, RampStep
from finsync.domain.money import Money
from finsync.systems.revrec import (
    ContractBooked,
    Granularity,
    RevenueContractState,
    RevenueEvent,
    book_contract,
    obligation_schedule,
    replay,
)
from finsync.systems.revrec.progress import recognised
from finsync.systems.revrec.schedule import (
    ObligationSchedule,
    TracedLine,
    _traced,
    obligation_span,
    schedule_id_for,
)
from finsync.systems.revrec.series import recognised_series
from finsync.systems.revrec.timegrid import at_midnight, month_periods
from tests.unit.revrec.builders import START, booked, ssp, usd
from tests.unit.revrec.casecheck import CASES, load
from tests.unit.revrec.test_properties import histories

CASE_FILES = sorted(CASES.glob("*.json"))
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def general_schedule(state: RevenueContractState, obligation_id: str) -> ObligationSchedule:
    """The schedule as it was built before `series`: `recognised` at every month end."""
    ob = state.obligation(obligation_id)
    span = obligation_span(ob)
    lines: list[TracedLine] = []
    before = Money.zero(state.currency)
    for month in month_periods(span.start, span.end):
        upto = recognised(ob, state.granularity, at_midnight(month.end))
        if upto != before:
            why = _traced(ob.revisions, month.end)
            lines.append(TracedLine(month, upto - before, why.version, why.event_id, why.cause))
        before = upto
    sid = schedule_id_for(state.revenue_contract_id, ob.obligation_id)
    return ObligationSchedule(sid, ob.version, state.revenue_contract_id, ob.obligation_id,
                              ob.allocated_price, tuple(lines))


def _same(state: RevenueContractState, days: list[date]) -> None:
    for ob in state.obligations:
        fast = recognised_series(ob, state.granularity, days)
        general = [recognised(ob, state.granularity, at_midnight(day)).amount for day in days]
        assert [str(a) for a in fast] == [str(a) for a in general], ob.obligation_id
        fast_schedule = obligation_schedule(state, ob.obligation_id)
        assert fast_schedule == general_schedule(state, ob.obligation_id)
        assert [str(li.amount.amount) for li in fast_schedule.lines] == [
            str(li.amount.amount) for li in general_schedule(state, ob.obligation_id).lines]


def _every_day_around(state: RevenueContractState) -> list[date]:
    first = min(obligation_span(ob).start for ob in state.obligations)
    last = max(obligation_span(ob).end for ob in state.obligations)
    return [first - timedelta(days=3) + timedelta(days=n)
            for n in range((last - first).days + 7)]


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
@pytest.mark.parametrize("granularity", list(Granularity))
def test_series_equals_the_general_evaluation_on_golden_cases(
        path: Path, granularity: Granularity) -> None:
    state = load(path).with_granularity(granularity).state()
    _same(state, _every_day_around(state))


@st.composite
def ramped_contracts(draw: st.DrawFn) -> ContractBooked:
    lines: list[ContractLine] = []
    for index in range(draw(st.integers(1, 3))):
        start = START + timedelta(days=draw(st.integers(0, 400)))
        end = start + timedelta(days=draw(st.integers(1, 1200)))
        ramp = tuple(RampStep(start + timedelta(days=draw(st.integers(1, 1200))),
                              draw(st.integers(0, 50)), usd(draw(st.integers(0, 5000))))
                     for _ in range(draw(st.integers(0, 3))))
        lines.append(ContractLine(f"ln{index}", f"prod_{index}", "price",
                                  draw(st.integers(0, 900)), usd(draw(st.integers(0, 10**5))),
                                  start, end, ramp))
    ssps = tuple(ssp(f"prod_{i}", str(draw(st.integers(1, 10**5)))) for i in range(3))
    return booked(*lines, ssps=ssps, granularity=draw(st.sampled_from(list(Granularity))))


@SETTINGS
@given(ramped_contracts(), st.lists(st.integers(-40, 1700), min_size=1, max_size=40))
def test_series_equals_the_general_evaluation_on_random_ramped_contracts(
        book: ContractBooked, offsets: list[int]) -> None:
    state = book_contract(book)
    _same(state, [START + timedelta(days=n) for n in offsets])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.lists(st.integers(-40, 1700), min_size=1, max_size=20))
def test_series_equals_the_general_evaluation_after_any_history(
        history: tuple[ContractBooked, list[RevenueEvent]], offsets: list[int]) -> None:
    _same(replay(*history), [START + timedelta(days=n) for n in offsets])
