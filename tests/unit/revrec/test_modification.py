from __future__ import annotations

from datetime import date

from finsync.systems.revrec import (
    ModificationFacts,
    ModificationTreatment,
    apply_event,
    book_contract,
    obligation_schedule,
)
from finsync.systems.revrec.modification import LineChange, LineChangeKind, decide
from tests.unit.revrec.builders import booked, line, modified, usd

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
    assert state.obligation("ln_seats@v2").allocated_price == usd("22684.93")
    assert state.obligation("ln_seats@v2").group == "amd_evt_up"
