"""Concessions on what was already delivered, progress from costs, unpriced change orders:
the rules and their refusals (docs/revrec/engine.md; the golden cases delivered_*.json)."""

from __future__ import annotations

import copy
import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from finsync.domain.errors import DomainError
from finsync.domain.invoice import CreditMemo, DeliveredPart, DocumentLine
from finsync.domain.money import Money
from finsync.systems.revrec import (
    ModificationTreatment,
    PriceChangeKind,
    RecognitionTerms,
    TransactionPriceChanged,
    apply_event,
    obligation_schedule,
)
from finsync.systems.revrec.caseevent import DELIVERED_FIELDS, DOCUMENT_LINE_FIELDS
from finsync.systems.revrec.casefile import CaseFileError, load_case
from finsync.systems.revrec.errors import AllocationError, RevenueError
from finsync.systems.revrec.serial import dumps_state, encode, loads_state
from tests.unit.revrec.casecheck import CASES

SCHEMA = json.loads((Path(__file__).parents[3] / "docs/revrec/case.schema.json").read_text())
UNITS = json.loads((CASES / "delivered_per_unit_concession.json").read_text())
COSTS = json.loads((CASES / "delivered_change_order.json").read_text())


def _with_event(doc: dict[str, Any], index: int, **fields: Any) -> dict[str, Any]:
    changed = copy.deepcopy(doc)
    changed["events"][index].update(fields)
    return changed


def _refusal(doc: dict[str, Any]) -> str:
    with pytest.raises(CaseFileError) as caught:
        load_case(json.dumps(doc)).state()
    return str(caught.value)


def _months(doc: dict[str, Any], obligation: str) -> dict[str, str]:
    state = load_case(json.dumps(doc)).state()
    return {f"{li.period.start:%Y-%m}": str(li.amount.amount)
            for li in obligation_schedule(state, obligation).lines if not li.amount.is_zero}


# -- concessions on what was delivered ------------------------------------------------------

MEMO = 6  # events[6]: the credit memo of delivered_per_unit_concession.json
CHANGE = 7  # events[7]: the price change with a delivered part


def _memo_line(**line: Any) -> dict[str, Any]:
    return _with_event(UNITS, MEMO, lines=[{"obligation": "ln_widgets", **line}])


def test_a_concession_on_delivered_units_lands_at_once_and_the_rest_keeps_its_price() -> None:
    # 5 % of the 60 units delivered: -30.00 in April, the 40 units left at 10.00 each.
    assert _months(UNITS, "ln_widgets") == {"2026-02": "400.00", "2026-03": "200.00",
                                            "2026-04": "-30.00", "2026-05": "400.00"}


def test_the_same_credit_without_a_delivered_part_is_caught_up_by_the_units_delivered() -> None:
    # 606-10-32-43: 60 % of 30.00 at once (-18.00), 40 % (12.00) over the 40 units to come.
    doc = _memo_line(amount="30.00")
    assert _months(doc, "ln_widgets")["2026-04"] == "-18.00"
    assert _months(doc, "ln_widgets")["2026-05"] == "388.00"


def test_more_units_than_were_delivered_are_refused() -> None:
    message = _refusal(_memo_line(amount="30.00", delivered={"quantity": 61}))
    assert "events[6]: allocation_error" in message
    assert "61 units named, 60 delivered by 2026-04-15" in message


def test_a_delivered_part_larger_than_its_line_is_refused_naming_the_field() -> None:
    message = _refusal(_memo_line(amount="30.00", delivered={"amount": "30.01"}))
    assert message.startswith("events[6].lines[0].delivered: amount 30.01 USD is not a part")


def test_a_reduction_at_once_beyond_the_revenue_recognised_is_refused() -> None:
    message = _refusal(_memo_line(amount="600.01", delivered={"quantity": "all"}))
    assert "600.01 USD credited on what was delivered, more than the 600.00 USD" in message
    assert "606-10-32-43" in message


def test_a_rest_beyond_what_remains_of_the_price_is_refused() -> None:
    doc = _with_event(UNITS, CHANGE, amount="-430.01")
    assert "400.01 USD off what remains to be delivered, more than the 400.00 USD" in (
        _refusal(doc))


def test_a_delivery_of_another_obligation_is_refused_naming_the_field() -> None:
    doc = _with_event(UNITS, CHANGE, delivered={"amount": "-30.00", "delivery": "w1"})
    assert _refusal(doc).startswith(
        "events[7].delivered.delivery: no earlier delivery 'w1' of ln_parts")


def test_a_delivered_part_on_an_invoice_line_is_refused_naming_the_field() -> None:
    doc = copy.deepcopy(UNITS)
    doc["events"][5]["lines"][0]["delivered"] = {"quantity": 60}
    assert _refusal(doc).startswith("events[5].lines[0].delivered: only a credit memo line")


def test_a_quantity_that_is_neither_units_nor_all_is_refused() -> None:
    message = _refusal(_memo_line(amount="30.00", delivered={"quantity": "some"}))
    assert message == 'events[6].lines[0].delivered.quantity: must be a number of units or "all"'


def test_units_named_on_a_progress_obligation_are_refused() -> None:
    doc = json.loads((CASES / "delivered_progress_concession.json").read_text())
    doc["events"][3]["lines"][0]["delivered"] = {"quantity": 10}
    assert "measured by progress, not in units" in _refusal(doc)


def test_the_engine_refuses_a_delivery_it_has_not_recorded() -> None:
    state = load_case(json.dumps(UNITS)).state()
    change = TransactionPriceChanged(
        "evt_x", date(2026, 6, 1), Money.of("-5.00", "USD"), PriceChangeKind.PRICE_CONCESSION,
        frozenset({"ln_parts"}), None, DeliveredPart(Money.of("-5.00", "USD"), None, "w9"))
    with pytest.raises(AllocationError, match="no delivery 'w9' recorded by 2026-06-01"):
        apply_event(state, change)


def test_a_billing_correction_ignores_the_delivered_part() -> None:
    doc = _memo_line(amount="30.00", delivered={"quantity": 60})
    doc["events"][MEMO]["treatment"] = "billing_correction"
    assert "2026-04" not in _months(doc, "ln_widgets")


def test_a_credit_line_refuses_a_delivered_part_that_is_not_part_of_it() -> None:
    usd = Money.of("10.00", "USD")
    line = DocumentLine("l1", "prod_widget", "Widgets", 1, usd, Money.zero("USD"),
                        date(2026, 1, 1), date(2027, 1, 1),
                        delivered=DeliveredPart(Money.of("10.01", "USD")))
    with pytest.raises(DomainError, match=r"delivered part 10\.01 USD is not a part"):
        CreditMemo("cm", "cm", "inv", "cus", "le_us", "USD", date(2026, 4, 1), "defect",
                   (line,), usd, Money.zero("USD"), usd)


# -- progress from costs --------------------------------------------------------------------

def test_the_measure_is_rounded_down_so_it_never_reaches_complete_early() -> None:
    # 999,600 / 1,000,000 = 99.96 %: half-up to 0.1 % would say 100.0 % and recognise all.
    doc = copy.deepcopy(COSTS)
    doc["terms"] = {"progress_rounding": "0.1"}
    doc["events"] = [{"type": "progress", "id": "c1", "date": "2026-03-31",
                      "obligation": "ln_build", "costs_incurred": "999600.00",
                      "total_expected_costs": "1000000.00"}]
    state = load_case(json.dumps(doc)).state()
    assert state.obligation("ln_build").progress_reports == ((date(2026, 3, 31),
                                                             Decimal("0.999")),)
    assert _months(doc, "ln_build")["2026-03"] == "999000.00"


def test_a_percent_reported_is_rounded_by_the_same_step() -> None:
    doc = copy.deepcopy(COSTS)
    doc["terms"] = {"progress_rounding": "1"}
    doc["events"] = [{"type": "progress", "id": "p1", "date": "2026-03-31",
                      "obligation": "ln_build", "percent_complete": "42.9"}]
    assert _months(doc, "ln_build")["2026-03"] == "420000.00"


def test_a_rounding_step_that_does_not_divide_100_is_refused_naming_the_field() -> None:
    doc = copy.deepcopy(COSTS)
    doc["terms"] = {"progress_rounding": "0.3"}
    assert _refusal(doc).startswith("terms.progress_rounding: progress_rounding must be a "
                                    "step in percent that divides 100")
    with pytest.raises(RevenueError):
        RecognitionTerms(progress_rounding=Decimal(0))


@pytest.mark.parametrize(("fields", "problem"), [
    ({"costs_incurred": "800000.00"}, "an overrun is a new estimate"),
    ({"uninstalled_materials": "500000.00"}, "must lie between 0 and the costs incurred"),
])
def test_costs_that_cannot_be_a_measure_are_refused(fields: dict[str, str],
                                                    problem: str) -> None:
    message = _refusal(_with_event(COSTS, 1, **fields))
    assert message.startswith("events[1]: measure_error") and problem in message


def test_cost_reports_listed_out_of_date_order_are_applied_in_date_order() -> None:
    """The engine applies events in canonical order (engine.md, "Order of events"): a file
    listing a later report first gives the schedule of the file in date order."""
    doc = copy.deepcopy(COSTS)
    reversed_doc = copy.deepcopy(COSTS)
    reversed_doc["events"] = list(reversed(reversed_doc["events"]))
    assert _months(reversed_doc, "ln_build") == _months(doc, "ln_build")


def test_uninstalled_materials_may_not_fall() -> None:
    doc = json.loads((CASES / "delivered_uninstalled_materials.json").read_text())
    doc["events"][1]["uninstalled_materials"] = "1000000.00"
    assert "fall below the 1500000.00 USD already recognised at cost" in _refusal(doc)


def test_percent_and_costs_together_are_refused() -> None:
    doc = _with_event(COSTS, 0, percent_complete="60")
    assert _refusal(doc).startswith("events[0].costs_incurred: state percent_complete or "
                                    "costs, not both")


def test_costs_on_a_per_unit_obligation_are_refused() -> None:
    doc = copy.deepcopy(UNITS)
    doc["events"] = [{"type": "progress", "id": "c1", "date": "2026-03-31",
                      "obligation": "ln_widgets", "costs_incurred": "1.00",
                      "total_expected_costs": "2.00"}]
    assert "a measure of progress needs a progress obligation" in _refusal(doc)


# -- unpriced change orders -----------------------------------------------------------------

def test_a_change_order_wholly_constrained_is_still_a_13b_modification() -> None:
    doc = _with_event(COSTS, 2, estimate="0.00")
    state = load_case(json.dumps(doc)).state()
    decision = state.decisions[-1]
    assert decision.treatment is ModificationTreatment.CUMULATIVE_CATCH_UP
    assert decision.paragraph == "606-10-25-13(b)" and "606-10-25-11" in decision.reason
    assert dict(decision.catch_up)["ln_build"] == Money.of("40000.00", "USD")  # measure only


def test_a_change_order_on_distinct_units_is_refused_naming_the_paragraph() -> None:
    doc = copy.deepcopy(UNITS)
    doc["events"] = [{"type": "change_order", "id": "co", "date": "2026-03-01",
                      "obligation": "ln_widgets", "estimate": "100.00"}]
    message = _refusal(doc)
    assert "events[0]: modification_error" in message and "606-10-25-13(b)" in message


# -- storage and schema ---------------------------------------------------------------------

def test_a_state_stored_before_these_fields_existed_still_decodes() -> None:
    state = load_case(json.dumps(UNITS)).state()
    stored = json.loads(dumps_state(state))
    assert "progress_rounding" not in stored["terms"]  # added later: left out at its default
    for ob in stored["obligations"]:
        del ob["cost_reports"]
    assert loads_state(json.dumps(stored)) == state


def test_schema_lists_the_delivered_and_document_line_fields_the_loader_reads() -> None:
    defs = SCHEMA["$defs"]
    assert set(defs["delivered"]["properties"]) == set(DELIVERED_FIELDS)
    assert set(defs["document_line"]["properties"]) == set(DOCUMENT_LINE_FIELDS)
    assert "progress_rounding" in defs["terms"]["properties"]


def test_a_price_change_without_a_delivered_part_hashes_as_before_the_field() -> None:
    # A receipt stored before `delivered` existed must still match its request.
    change = TransactionPriceChanged("evt", date(2026, 6, 1), Money.of("-5.00", "USD"),
                                     PriceChangeKind.PRICE_CONCESSION)
    assert "delivered" not in encode(change)
