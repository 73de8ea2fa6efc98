from __future__ import annotations

from datetime import date

from finsync.systems.revrec import (
    ModificationFacts,
    ModificationTreatment,
    PriceChangeKind,
    RecognitionPattern,
    TransactionPriceChanged,
    apply_event,
    book_contract,
    obligation_schedule,
    replay,
    schedules,
)
from finsync.systems.revrec.balance import balances
from finsync.systems.revrec.modification import LineChange, LineChangeKind, decide
from tests.unit.revrec.builders import booked, line, modified, ssp, usd

MAY16 = date(2026, 5, 16)


def _change(kind: LineChangeKind) -> LineChange:
    return LineChange("ln_a", kind, usd("10.00"))


def test_decision_no_change_is_not_a_modification() -> None:
    treatment, _ = decide([_change(LineChangeKind.UNCHANGED)], ModificationFacts(), ["ln_a"])
    assert treatment is ModificationTreatment.NOT_A_MODIFICATION


def test_decision_distinct_additions_at_ssp_are_a_separate_contract() -> None:
    facts = ModificationFacts(priced_at_standalone_selling_price=True)
    treatment, reason = decide([_change(LineChangeKind.ADDED)], facts, ["ln_a"])
    assert treatment is ModificationTreatment.SEPARATE_CONTRACT
    assert "standalone selling prices" in reason


def test_decision_additions_below_ssp_with_distinct_remaining_goods_are_prospective() -> None:
    treatment, reason = decide([_change(LineChangeKind.INCREASED)], ModificationFacts(),
                               ["ln_a"])
    assert treatment is ModificationTreatment.TERMINATION_AND_NEW_CONTRACT
    assert "not priced at their standalone" in reason


def test_decision_price_change_of_a_non_distinct_obligation_is_a_catch_up() -> None:
    facts = ModificationFacts(priced_at_standalone_selling_price=True,
                              remaining_not_distinct=frozenset({"ln_a"}))
    treatment, reason = decide([_change(LineChangeKind.CHANGED)], facts, ["ln_a"])
    assert treatment is ModificationTreatment.CUMULATIVE_CATCH_UP
    assert "other than distinct additions" in reason


def test_decision_some_not_distinct_is_a_mix() -> None:
    facts = ModificationFacts(remaining_not_distinct=frozenset({"ln_a"}))
    treatment, _ = decide([_change(LineChangeKind.CHANGED)], facts, ["ln_a", "ln_b"])
    assert treatment is ModificationTreatment.MIXED


def test_downgrade_is_prospective_and_lowers_revenue_from_its_date() -> None:
    state = book_contract(booked(line("ln_seats", 500, "120.00")))
    state = apply_event(state, modified("evt_down", MAY16, line("ln_seats", 200, "120.00")))
    decision = state.decisions[-1]
    assert decision.treatment is ModificationTreatment.TERMINATION_AND_NEW_CONTRACT
    assert decision.paragraph == "606-10-25-13(a)"
    # 60,000 - 300 x 120 x 230/365 = 60,000 - 22,684.93 = 37,315.07
    assert state.transaction_price == usd("37315.07")
    assert dict(decision.catch_up)["ln_seats"] == usd("0.00")


def test_cancellation_stops_revenue_at_the_effective_date() -> None:
    state = book_contract(booked(line("ln_a", 1, "36500.00"), line("ln_b", 1, "3650.00")))
    state = apply_event(state, modified("evt_cancel", MAY16, line("ln_b", 1, "3650.00")))
    # ln_a: 135 days recognised (36,500 x 135/365 = 13,500.00) and nothing after.
    assert state.obligation("ln_a").allocated_price == usd("13500.00")
    lines = obligation_schedule(state, "ln_a").lines
    assert lines[-1].period.start == date(2026, 5, 1)
    assert lines[-1].event_id == "evt_cancel"


def test_separate_contract_leaves_existing_schedules_untouched() -> None:
    state = book_contract(booked(line("ln_seats", 500, "120.00")))
    before = obligation_schedule(state, "ln_seats")
    state = apply_event(state, modified(
        "evt_up", MAY16, line("ln_seats", 800, "120.00"),
        facts=ModificationFacts(priced_at_standalone_selling_price=True)))
    assert obligation_schedule(state, "ln_seats") == before
    assert state.obligation("ln_seats+v2").allocated_price == usd("22684.93")
    assert state.obligation("ln_seats+v2").group == "amd_evt_up"


def test_change_to_a_line_without_obligation_is_an_addition_not_an_orphan_delta() -> None:
    # The minimal history hypothesis found (test_properties), SSP 400.00 for every product.
    # Booked: ln1, 1 x 1.00 a year, for 1 Jan 2026 only: 1 x 1.00 x 1/365 = 0.0027 -> 0.00.
    ssps = tuple(ssp(f"prod_{i}", "400") for i in range(2))
    jan1, jan2 = date(2026, 1, 1), date(2026, 1, 2)
    state = book_contract(booked(line("ln1", 1, "1.00", "prod_1", jan1, jan2), ssps=ssps))
    # v2 on 2 Jan adds ln0, 3 x 1.00 a year for 1 Jan only: nothing of it remains on 2 Jan,
    # so its change is 0.00 and it gets no performance obligation.
    state = apply_event(state, modified(
        "evt_m2", jan2, line("ln0", 3, "1.00", "prod_0", jan1, jan2),
        line("ln1", 1, "1.00", "prod_1", jan1, jan2), version=2,
        facts=ModificationFacts(False, False), ssps=ssps))
    assert [ob.obligation_id for ob in state.obligations] == ["ln1"]
    # v3 dated 1 Jan cuts ln0 to 1 unit and removes ln1 (not distinct: caught up). Measured
    # from ln0's 3 stated units, ln0 changed by round((1 - 3) x 1.00 x 1/365) = -0.01, which
    # no obligation carried (AllocationError). ln0 holds no consideration, so it is measured
    # from nothing: an added line, 1 x 1.00 x 1/365 = 0.0027 -> 0.00, SSP 400 x 1/365 = 1.10.
    state = apply_event(state, modified(
        "evt_m3", jan1, line("ln0", 1, "1.00", "prod_0", jan1, jan2), version=3,
        facts=ModificationFacts(False, False, frozenset({"ln1"})), ssps=ssps))
    decision = state.decisions[-1]
    assert decision.treatment is ModificationTreatment.CUMULATIVE_CATCH_UP
    assert {c.line_id: (c.kind, c.delta) for c in decision.changes} == {
        "ln0": (LineChangeKind.ADDED, usd("0.00")),
        "ln1": (LineChangeKind.REMOVED, usd("0.00"))}
    assert state.obligation("ln0").standalone_selling_price == usd("1.10")
    assert state.transaction_price == usd("0.00")
    for sched in schedules(state):
        assert sum(li.amount.amount for li in sched.lines) == sched.allocated_price.amount


def test_extending_a_line_without_obligation_gives_it_an_obligation() -> None:
    state = book_contract(booked(line("ln_a", 10, "365.00")))  # 3,650.00 for 2026
    # v2 on 1 March adds ln_b for January only: nothing remains, no obligation.
    state = apply_event(state, modified(
        "evt_m2", date(2026, 3, 1), line("ln_a", 10, "365.00"),
        line("ln_b", 1, "365.00", end=date(2026, 2, 1)), version=2))
    # v3 on 1 April extends ln_b to 1 May, ln_a not distinct (caught up). ln_b's remaining
    # service is 30 days: 1 x 365.00 x 30/365 = 30.00. Before, it was an increase of a line
    # with no obligation: 30.00 with nowhere to go (AllocationError).
    state = apply_event(state, modified(
        "evt_m3", date(2026, 4, 1), line("ln_a", 10, "365.00"),
        line("ln_b", 1, "365.00", end=date(2026, 5, 1)), version=3,
        facts=ModificationFacts(remaining_not_distinct=frozenset({"ln_a"}))))
    assert state.decisions[-1].treatment is ModificationTreatment.CUMULATIVE_CATCH_UP
    assert state.obligation("ln_b").allocated_price == usd("30.00")
    assert state.transaction_price == usd("3680.00")  # 3,650.00 + 30.00
    april = obligation_schedule(state, "ln_b").lines
    assert [(li.period.start, li.amount) for li in april] == [(date(2026, 4, 1), usd("30.00"))]


def test_extending_a_line_without_obligation_prospectively_allocates_it_a_share() -> None:
    state = book_contract(booked(line("ln_a", 10, "365.00")))
    state = apply_event(state, modified(
        "evt_m2", date(2026, 3, 1), line("ln_a", 10, "365.00"),
        line("ln_b", 1, "365.00", end=date(2026, 2, 1)), version=2))
    state = apply_event(state, modified(
        "evt_m3", date(2026, 4, 1), line("ln_a", 10, "365.00"),
        line("ln_b", 1, "365.00", end=date(2026, 5, 1)), version=3))
    # 606-10-25-13(a): pool = ln_a unrecognised 3,650 - 3,650 x 90/365 = 2,750.00, plus
    # ln_b's 30.00 = 2,780.00; remaining SSPs 2,750.00 and 30.00, so each keeps its own.
    # Before, ln_b had no obligation and its 30.00 went to ln_a.
    assert state.decisions[-1].treatment is ModificationTreatment.TERMINATION_AND_NEW_CONTRACT
    assert state.obligation("ln_a").allocated_price == usd("3650.00")
    assert state.obligation("ln_b").allocated_price == usd("30.00")


def test_a_change_after_a_modification_whose_contract_is_all_satisfied_is_caught_up() -> None:
    # Found by the month-end property (minimal example). ln0 and ln1 run 1-3 January at
    # 1.00 a year: 1.00 x 2/365 = 0.0055 -> 0.01 each (SSP 400 x 2/365 = 2.19 each, 1 : 1).
    # v2 on 2 January removes both and adds ln3, a point-in-time good whose service was
    # 1-2 January, below its SSP: 25-13(a). Each removed line has recognised 0.01 x 1/2 =
    # 0.005 -> 0.00 (half even) by then, so the pool is 0.01 + 0.01 + 1.00 = 1.02, all to
    # ln3 (the removed lines' remaining SSP is zero), transferred on 2 January. A change of
    # +1.00 on 5 January goes to the modified contract (606-10-32-45(b)): not to ln0 and
    # ln1, whose measure runs to 3 January but which were removed, but to ln3, satisfied
    # already, so it is recognised at once on 5 January (606-10-32-43): 1.02 + 1.00 = 2.02.
    jan1, jan2, jan3, jan5 = (date(2026, 1, day) for day in (1, 2, 3, 5))
    ssps = tuple(ssp(f"prod_{i}", "400") for i in range(4))
    patterns = {"prod_0": RecognitionPattern.RATABLE, "prod_1": RecognitionPattern.RATABLE,
                "prod_3": RecognitionPattern.POINT_IN_TIME}
    ln3 = line("ln3", 1, "1.00", "prod_3", jan1, jan2)
    state = replay(booked(line("ln0", 1, "1.00", "prod_0", jan1, jan3),
                          line("ln1", 1, "1.00", "prod_1", jan1, jan3),
                          ssps=ssps, patterns=patterns), [
        modified("evt_m2", jan2, ln3, facts=ModificationFacts(False, False), ssps=ssps),
        TransactionPriceChanged("evt_tp", jan5, usd("1.00"),
                                PriceChangeKind.VARIABLE_CONSIDERATION)])
    assert {ob.obligation_id: ob.allocated_price for ob in state.obligations} == {
        "ln0": usd("0.00"), "ln1": usd("0.00"), "ln3": usd("2.02")}
    assert state.obligation("ln3").revisions[-1].cause == "606-10-32-43"
    assert balances(state, jan5).recognised == usd("1.02")
    assert balances(state, date(2026, 1, 6)).recognised == usd("2.02") == state.transaction_price
