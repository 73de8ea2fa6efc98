"""Customer options and material rights (606-10-55-41 to 55-45): identified, priced,
recognised on exercise or lapse, refused when used wrongly (issue 16, item 6)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finsync.domain.clock import Period
from finsync.domain.money import total
from finsync.systems.revrec import (
    ContractBooked,
    ModificationFacts,
    PriceChangeKind,
    RecognitionPattern,
    RecognitionTerms,
    RevenueContractState,
    TransactionPriceChanged,
    apply_event,
    book_contract,
    obligation_schedule,
)
from finsync.systems.revrec.casefile import CaseFileError, load_case
from finsync.systems.revrec.errors import CustomerOptionError
from finsync.systems.revrec.event import OptionExercised, OptionLapsed
from finsync.systems.revrec.option import CustomerOption, OptionMethod
from finsync.systems.revrec.schedule import recognised_to
from finsync.systems.revrec.serial import dumps_state, loads_state
from tests.unit.revrec.builders import START, booked, line, modified, ssp, usd
from tests.unit.revrec.casecheck import CASES

EXPIRY = date(2026, 3, 1)
VOUCHER = CustomerOption("opt_v", EXPIRY, discount_percent=Decimal(40),
                         discount_available_anyway_percent=Decimal(10),
                         expected_purchases=usd("50.00"), likelihood_percent=Decimal(80))


def _with(*options: CustomerOption) -> RevenueContractState:
    event = booked(line("ln_a", 1, "100.00", "prod_a"),
                   patterns={"prod_a": RecognitionPattern.POINT_IN_TIME})
    terms = replace(event.terms, options=options)
    return book_contract(replace(event, terms=terms))


def test_voucher_is_a_material_right_priced_by_55_44() -> None:
    state = _with(VOUCHER)
    right = state.obligation("opt_v")
    # 50 x (40 % - 10 %) x 80 % = 12.00; 100 by 100 : 12 -> 89.29 and 10.71.
    assert right.standalone_selling_price == usd("12.00")
    assert (state.obligation("ln_a").allocated_price, right.allocated_price) == (
        usd("89.29"), usd("10.71"))
    # Unexercised and no event: forecast to lapse on its expiry, so the schedule sums.
    [only] = obligation_schedule(state, "opt_v").lines
    assert (only.period.start, only.amount) == (date(2026, 3, 1), usd("10.71"))


def test_discounts_that_combine_give_the_difference_on_top() -> None:
    stacked = replace(VOUCHER, stacks=True)
    # 40 % on top of 10 %: 40 x (100 - 10)/100 = 36 %; 50 x 36 % x 80 % = 14.40.
    assert _with(stacked).obligation("opt_v").standalone_selling_price == usd("14.40")


def test_no_incremental_discount_is_no_material_right() -> None:
    offer = replace(VOUCHER, discount_percent=Decimal(10))  # what everyone gets: 55-43
    state = _with(offer)
    assert [ob.obligation_id for ob in state.obligations] == ["ln_a"]
    after = apply_event(state, OptionExercised("evt_x", "opt_v", date(2026, 2, 1)))
    assert after.obligations == state.obligations and "evt_x" in after.applied_event_ids


def test_exercise_recognises_the_right_over_the_goods_bought() -> None:
    span = Period(date(2026, 2, 1), date(2026, 4, 1))  # 28 + 31 days
    state = apply_event(_with(VOUCHER), OptionExercised("evt_x", "opt_v", date(2026, 2, 1),
                                                        service_period=span))
    lines = {li.period.start.month: li.amount for li in obligation_schedule(state,
                                                                            "opt_v").lines}
    # 10.71 x 28/59 = 5.0827 -> 5.08; the rest in March.
    assert lines == {2: usd("5.08"), 3: usd("5.63")}


def test_lapse_recognises_the_right_at_once_and_closes_the_option() -> None:
    state = apply_event(_with(VOUCHER), OptionLapsed("evt_l", "opt_v", date(2026, 2, 10)))
    assert recognised_to(state, date(2026, 2, 11)) == usd("100.00")
    with pytest.raises(CustomerOptionError, match="opt_v has been exercised or has lapsed"):
        apply_event(state, OptionExercised("evt_x", "opt_v", date(2026, 2, 11)))


def test_a_price_change_shares_with_the_right_and_leaves_it_open() -> None:
    state = apply_event(_with(VOUCHER), TransactionPriceChanged(
        "evt_tp", date(2026, 1, 15), usd("-11.20"), PriceChangeKind.PRICE_CONCESSION))
    # Same basis as at inception (606-10-32-43), 100 : 12: -10.00 and -1.20.
    assert state.obligation("opt_v").allocated_price == usd("9.51")
    state = apply_event(state, OptionExercised("evt_x", "opt_v", date(2026, 2, 1)))
    assert recognised_to(state, date(2026, 2, 2)) == usd("88.80")


def test_options_used_wrongly_are_refused_naming_them() -> None:
    state = _with(VOUCHER)
    with pytest.raises(CustomerOptionError, match="no customer option 'opt_nope'"):
        apply_event(state, OptionLapsed("evt_l", "opt_nope", date(2026, 2, 1)))
    with pytest.raises(CustomerOptionError, match="expired on 2026-03-01"):
        apply_event(state, OptionExercised("evt_x", "opt_v", EXPIRY))
    used = apply_event(state, OptionExercised("evt_x", "opt_v", date(2026, 2, 1)))
    with pytest.raises(CustomerOptionError, match="exercised or has lapsed already"):
        apply_event(used, OptionExercised("evt_y", "opt_v", date(2026, 2, 2)))


@pytest.mark.parametrize(("option", "problem"), [
    (replace(VOUCHER, likelihood_percent=Decimal(101)), "a percentage outside 0..100"),
    (replace(VOUCHER, expected_purchases=None), "needs the purchases expected"),
    (replace(VOUCHER, option_id="ln_a"), "its id is taken"),
    (replace(VOUCHER, expires_on=START), "not after the contract starts"),
    (replace(VOUCHER, method=OptionMethod.PRACTICAL_ALTERNATIVE), "606-10-55-45"),
])
def test_options_that_cannot_be_accounted_for_are_refused(option: CustomerOption,
                                                          problem: str) -> None:
    with pytest.raises(CustomerOptionError, match=problem):
        _with(option)


def _example_51() -> RevenueContractState:
    case = load_case((CASES / "options_renewal_practical_alternative.json").read_text())
    return case.state()


def test_renewal_keeps_the_rest_of_the_right_for_the_third_year() -> None:
    case = load_case((CASES / "options_renewal_practical_alternative.json").read_text())
    state = book_contract(case.booked)
    assert state.obligation("opt_renewal").allocated_price == usd("22014.39")  # 220 a contract
    for item in case.events[:2]:
        state = apply_event(state, item.event)
    # 190,000 - 77,985.61 - 87,733.81 = 24,280.58 (the Example: 24,300).
    assert state.obligation("opt_renewal").allocated_price == usd("24280.58")


def test_more_renewals_than_expected_catch_up_the_first_year() -> None:
    case = load_case((CASES / "options_renewal_practical_alternative.json").read_text())
    state = book_contract(case.booked)
    state = apply_event(state, OptionExercised("evt_r1", "opt_renewal", date(2026, 12, 31), 95))
    # Expected now: 100,000 + 95,000 + 85,500 = 280,500 by 60,000 : 71,250 : 85,500
    # (216,750): year 1 280,500 x 60,000/216,750 = 77,647.06, 338.55 less, caught up
    # on 31 December; year 2 92,205.88.
    assert state.obligation("ln_maint").allocated_price == usd("77647.06")
    assert state.obligation("ln_maint+r1").allocated_price == usd("92205.88")
    december = obligation_schedule(state, "ln_maint").lines[-1]
    assert december.amount == usd("6623.44") - usd("338.55")
    right = state.obligation("opt_renewal").allocated_price
    assert right == usd("195000.00") - usd("77647.06") - usd("92205.88")


def test_renewal_terms_are_exercised_in_order_and_in_time() -> None:
    state = book_contract(load_case(
        (CASES / "options_renewal_practical_alternative.json").read_text()).booked)
    with pytest.raises(CustomerOptionError, match="starts on 2027-01-01, exercised on"):
        apply_event(state, OptionExercised("evt_r", "opt_renewal", date(2027, 1, 2)))
    with pytest.raises(CustomerOptionError, match="at least one unit"):
        apply_event(state, OptionExercised("evt_r", "opt_renewal", date(2026, 12, 1), 0))
    done = _example_51()
    with pytest.raises(CustomerOptionError, match="every renewal term is exercised"):
        apply_event(done, OptionExercised("evt_r3", "opt_renewal", date(2028, 12, 31)))


def test_renewal_lapsed_recognises_the_right_at_once() -> None:
    state = book_contract(load_case(
        (CASES / "options_renewal_practical_alternative.json").read_text()).booked)
    state = apply_event(state, OptionLapsed("evt_l", "opt_renewal", date(2027, 1, 1)))
    assert recognised_to(state, date(2027, 1, 2)) == usd("100000.00")


def test_a_modification_leaves_the_material_right_as_it_is() -> None:
    state = _with(VOUCHER)
    before = state.obligation("opt_v")
    state = apply_event(state, modified(
        "evt_m", date(2026, 1, 15), line("ln_a", 1, "100.00", "prod_a"),
        line("ln_b", 1, "30.00", "prod_b"), facts=ModificationFacts(True, False),
        ssps=(ssp("prod_a", "100.00"), ssp("prod_b", "40.00"))))
    assert state.obligation("opt_v") == before


def test_a_state_stored_before_options_existed_reads_back() -> None:
    state = _with()
    text = dumps_state(state)
    assert '"options"' not in text  # left out while empty: stored states are unchanged
    old = json.loads(text)
    assert loads_state(json.dumps(old)).terms.options == ()
    assert loads_state(dumps_state(_with(VOUCHER))) == _with(VOUCHER)


def test_case_file_refuses_an_option_event_for_an_unknown_option() -> None:
    doc = json.loads((CASES / "options_voucher_exercised.json").read_text())
    doc["events"][1]["option"] = "opt_nope"
    with pytest.raises(CaseFileError, match=r"events\[1\]\.option: no option 'opt_nope'"):
        load_case(json.dumps(doc))
    doc["events"][1]["option"] = "opt_voucher"
    doc["options"][0]["likelihood"] = "180"
    with pytest.raises(CaseFileError, match=r"options\[0\]\.likelihood: must be between"):
        load_case(json.dumps(doc))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(discount=st.integers(0, 100), anyway=st.integers(0, 100), likely=st.integers(0, 100),
       purchases=st.integers(1, 10**6), price=st.integers(1, 10**6),
       outcome=st.sampled_from(["exercised", "lapsed", "none"]), day=st.integers(1, 58))
def test_every_schedule_sums_and_the_contract_recognises_its_price(
        discount: int, anyway: int, likely: int, purchases: int, price: int, outcome: str,
        day: int) -> None:
    option = CustomerOption("opt_v", EXPIRY, discount_percent=Decimal(discount),
                            discount_available_anyway_percent=Decimal(anyway),
                            expected_purchases=usd(purchases), likelihood_percent=Decimal(likely))
    event = booked(line("ln_a", 1, f"{price}.00", "prod_a"),
                   patterns={"prod_a": RecognitionPattern.POINT_IN_TIME})
    state = book_contract(ContractBooked(event.event_id, event.contract,
                                         event.standalone_selling_prices,
                                         RecognitionTerms(event.terms.patterns,
                                                          options=(option,))))
    on = START + timedelta(days=day)
    if outcome == "exercised":
        state = apply_event(state, OptionExercised("evt_x", "opt_v", on))
    elif outcome == "lapsed":
        state = apply_event(state, OptionLapsed("evt_l", "opt_v", on))
    assert state.transaction_price == usd(price)
    for ob in state.obligations:
        lines = obligation_schedule(state, ob.obligation_id).lines
        assert total([li.amount for li in lines], "USD") == ob.allocated_price
    assert recognised_to(state, date(2027, 1, 1)) == usd(price)
