"""Revenue case files: bad files are refused naming the field; the schema matches the loader."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from finsync.domain.money import Money
from finsync.systems.revrec import Granularity, ModificationTreatment, obligation_schedule
from finsync.systems.revrec.casecontract import LINE_FIELDS, SSP_FIELDS
from finsync.systems.revrec.caseevent import _COMMON, _FIELDS, EVENT_TYPES
from finsync.systems.revrec.casefile import _ROOT, CaseFileError, load_case
from finsync.systems.revrec.caseoption import OPTION_FIELDS

SCHEMA = json.loads((Path(__file__).parents[3] / "docs/revrec/case.schema.json").read_text())
BASE: dict[str, Any] = {
    "contract": {"id": "con_1", "currency": "USD", "start": "2026-01-01", "end": "2027-01-01"},
    "obligations": [{"id": "ln_s", "product": "prod_seat", "quantity": 500,
                     "unit_price": "120.00", "ssp": "120.00"}],
    "standalone_selling_prices": [{"product": "prod_analytics", "amount": "24000.00"}],
    "events": [
        {"type": "invoice", "id": "e0", "date": "2026-01-01", "document": "inv_1",
         "lines": [{"obligation": "ln_s", "amount": "60000.00"}]},
        {"type": "credit_memo", "id": "e1", "date": "2026-02-01", "invoice": "inv_1",
         "reason": "billing_error", "lines": [{"obligation": "ln_s", "amount": "0.01"}]},
        {"type": "modification", "id": "e2", "date": "2026-05-16",
         "obligations": [{"id": "ln_s", "product": "prod_seat", "quantity": 800,
                          "unit_price": "120.00"},
                         {"id": "ln_a", "product": "prod_analytics", "unit_price": "24000.00",
                          "start": "2026-05-16"}],
         "facts": {"added_goods_distinct": True, "priced_at_standalone_selling_price": True}},
    ],
}


def _case(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    doc.update(changes)
    return doc


def _refusal(doc: dict[str, Any]) -> str:
    with pytest.raises(CaseFileError) as caught:
        load_case(json.dumps(doc)).state()
    return str(caught.value)


def test_case_file_loads_the_reference_amendment() -> None:
    state = load_case(json.dumps(BASE)).state()
    assert state.decisions[0].treatment is ModificationTreatment.SEPARATE_CONTRACT
    assert state.transaction_price == Money.of("97808.22", "USD")


def test_missing_fact_is_refused_naming_its_path() -> None:
    doc = _case()
    del doc["events"][2]["facts"]["added_goods_distinct"]
    assert _refusal(doc) == "events[2].facts.added_goods_distinct: required"


def test_money_as_a_json_number_is_refused() -> None:
    doc = _case()
    doc["obligations"][0]["unit_price"] = 120.0
    assert _refusal(doc).startswith("obligations[0].unit_price: must be a decimal string")


def test_unknown_field_is_refused() -> None:
    doc = _case()
    doc["events"][0]["lines"][0]["ammount"] = "1.00"
    assert _refusal(doc) == "events[0].lines[0].ammount: unknown field"


def test_unknown_event_type_is_refused() -> None:
    doc = _case(events=[{"type": "shipment", "id": "x", "date": "2026-01-01"}])
    assert _refusal(doc).startswith("events[0].type: must be one of delivery")


def test_event_naming_an_unknown_obligation_is_refused() -> None:
    doc = _case()
    doc["events"][1]["lines"][0]["obligation"] = "ln_x"
    assert _refusal(doc) == ("events[1].lines[0].obligation: no obligation 'ln_x' in contract "
                             "version 1")


def test_event_id_used_twice_is_refused() -> None:
    doc = _case()
    doc["events"][1]["id"] = "e0"
    assert _refusal(doc) == "events[1].id: event id 'e0' is used twice"


def test_conflicting_ssps_are_refused() -> None:
    doc = _case(standalone_selling_prices=[{"product": "prod_seat", "amount": "100.00"}])
    assert _refusal(doc) == ("standalone_selling_prices[0]: conflicts with the SSP of "
                             "prod_seat stated at obligations[0].ssp")


def test_one_product_with_two_patterns_is_refused() -> None:
    doc = _case()
    doc["events"][2]["obligations"][0]["pattern"] = "point_in_time"
    assert "events[2].obligations[0].pattern: product 'prod_seat' is already ratable" in \
        _refusal(doc)


def test_bad_date_and_bad_json_are_refused() -> None:
    doc = _case()
    doc["contract"]["end"] = "2027-13-01"
    assert _refusal(doc).startswith("contract.end: not an ISO date")
    with pytest.raises(CaseFileError, match=r"^\(case\): not JSON"):
        load_case("{")


def test_engine_refusal_names_its_event() -> None:
    doc = _case(standalone_selling_prices=[])
    assert _refusal(doc).startswith("events[2]: missing_standalone_selling_price: no SSP for "
                                    "prod_analytics")


def test_credit_memo_naming_an_unknown_invoice_is_refused() -> None:
    doc = _case()
    doc["events"].append({"type": "credit_memo", "id": "e3", "date": "2026-06-01",
                          "invoice": "inv_9", "reason": "sla_credit",
                          "lines": [{"obligation": "ln_s", "amount": "10.00"}]})
    assert _refusal(doc) == "events[3].invoice: no earlier invoice 'inv_9' in this case"


def test_granularity_override_changes_the_schedule() -> None:
    doc = _case(events=[])
    by_day = load_case(json.dumps(doc)).state()
    by_month = load_case(json.dumps(doc)).with_granularity(Granularity.MONTH).state()
    feb = [obligation_schedule(s, "ln_s").lines[1].amount for s in (by_day, by_month)]
    assert feb == [Money.of("4602.74", "USD"), Money.of("5000.00", "USD")]


def test_schema_lists_the_fields_the_loader_reads() -> None:
    defs = SCHEMA["$defs"]
    assert set(SCHEMA["properties"]) == set(_ROOT)
    assert set(defs["obligation"]["properties"]) == set(LINE_FIELDS)
    assert set(defs["ssp"]["properties"]) == set(SSP_FIELDS)
    assert set(defs["option"]["properties"]) == set(OPTION_FIELDS)
    assert defs["event"]["properties"]["type"]["enum"] == list(EVENT_TYPES)
    common = set(defs["event_base"]["properties"]) | {"type"}
    for kind in EVENT_TYPES:
        declared = set(defs[kind]["properties"]) | common
        assert declared == {*_COMMON, *_FIELDS[kind]}, kind


def _anchored(**contract: str) -> dict[str, Any]:
    return _case(contract={**BASE["contract"], **contract}, events=[])


def test_billing_anchor_outside_the_term_is_refused() -> None:
    assert _refusal(_anchored(billing_anchor="2027-01-01")) == (
        "contract.billing_anchor: must lie in the term [2026-01-01, 2027-01-01)")


def test_unknown_proration_convention_is_refused() -> None:
    assert _refusal(_anchored(proration="by_fortnight")).startswith("contract.proration: ")


def test_billing_anchor_and_proration_reach_the_contract() -> None:
    # 500 seats x 120.00 a year from 1 Jan, billed on 1 Feb by the month (partial months):
    # the stub [1 Jan, 1 Feb) is a whole month, 60,000 / 12 = 5,000.00; the year from 1 Feb
    # is cut by the term end to 11 whole months, 55,000.00: 60,000.00 in all.
    state = load_case(json.dumps(_anchored(billing_anchor="2026-02-01",
                                           proration="partial_months"))).state()
    assert state.contract.billing_anchor is not None
    assert state.transaction_price == Money.of("60000.00", "USD")
