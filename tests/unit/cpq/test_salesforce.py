"""The Salesforce CPQ mapper on fixtures built from Salesforce's object and CDC references
(tests/fixtures/cpq/salesforce): a CDC bundle of an approved quote, a Platform Event of an
amendment, the CDC Order of the same amendment, an MDQ (ramp) quote."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from finsync.connectors.cpq.limits import CpqLimits
from finsync.connectors.cpq.salesforce import SalesforceSettings, translate
from finsync.domain.commercial import CommercialContract, CommercialKind
from finsync.domain.envelope import DraftEnvelope
from finsync.domain.errors import MappingError
from finsync.domain.events import CommercialContractApproved
from finsync.domain.money import Money

FIXTURES = Path(__file__).parents[2] / "fixtures" / "cpq" / "salesforce"
SETTINGS = SalesforceSettings("le_us")
Q1, Q2 = "a0x5g000000QtE1AAK", "a0x5g000000QtE2AAK"
SEAT_LINE = "a0w5g000001LnA1AAK"  # the original quote line: the seats' id in every version


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return loaded


def body(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


def mapped(data: dict[str, Any], settings: SalesforceSettings = SETTINGS) -> DraftEnvelope:
    (draft,) = translate(settings, "sfdc", body(data))
    return draft


def approved(draft: DraftEnvelope) -> CommercialContract:
    assert isinstance(draft.event, CommercialContractApproved)
    return draft.event.commercial_contract


def refusal(data: dict[str, Any], settings: SalesforceSettings = SETTINGS) -> MappingError:
    with pytest.raises(MappingError) as error:
        translate(settings, "sfdc", body(data))
    return error.value


def pe_snapshot(data: dict[str, Any]) -> dict[str, Any]:
    snapshot: dict[str, Any] = json.loads(data["data"]["payload"]["Snapshot__c"])
    return snapshot


def with_snapshot(data: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any]:
    data["data"]["payload"]["Snapshot__c"] = json.dumps(snapshot)
    return data


def usd(amount: str) -> Money:
    return Money(Decimal(amount), "USD")


def test_an_approved_quote_is_version_1_of_a_contract_named_by_the_quote() -> None:
    draft = mapped(fixture("quote_approved_cdc.json"))
    contract = approved(draft)
    assert (contract.id, contract.version, contract.kind) == (Q1, 1, CommercialKind.NEW)
    assert (draft.source_event_id, draft.correlation_id, draft.business_key) == (
        f"quote:{Q1}", Q1, Q1)
    # commitTimestamp 1767258000000 ms = 2026-01-01 09:00 UTC
    assert draft.occurred_at == datetime(2026, 1, 1, 9, tzinfo=UTC)
    # SBQQ__EndDate__c 2026-12-31 is inclusive: the term ends (exclusive) on 2027-01-01
    assert (contract.start_date, contract.end_date) == (date(2026, 1, 1), date(2027, 1, 1))
    assert contract.sold_to_id == contract.bill_to_id == "0015g00000XyZaBAAV"
    assert (contract.legal_entity, contract.currency) == ("le_us", "USD")
    assert contract.renewal_uplift_percent == Decimal("3.0")
    (line,) = contract.lines  # the optional TRAINING line is not bought
    assert (line.line_id, line.product_code, line.quantity) == (SEAT_LINE, "SEAT", 500)
    assert (line.list_unit_price, line.discount_percent, line.net_unit_price) == (
        usd("10.00"), Decimal("10.0"), usd("9.00"))


def test_an_amendment_changes_the_contract_of_the_original_quote() -> None:
    draft = mapped(fixture("amendment_platform_event.json"))
    contract = approved(draft)
    assert (contract.id, contract.version, contract.kind) == (Q1, 2, CommercialKind.AMENDMENT)
    assert contract.quote_id == draft.correlation_id == Q2
    assert dict(contract.refs) == {"sfdc": "8005g000000CtR1AAK"}
    # the contract's term stays; the change takes effect on the amendment's start
    assert (contract.start_date, contract.end_date, contract.effective_date) == (
        date(2026, 1, 1), date(2027, 1, 1), date(2026, 5, 15))
    seats, analytics = contract.lines
    # the seats line upgrades subscription a0s…S1, which the original quote line created
    assert (seats.line_id, seats.quantity, seats.net_unit_price) == (SEAT_LINE, 800, usd("9.00"))
    assert (analytics.product_code, analytics.quantity) == ("ANALYTICS-PREMIUM", 1)
    # no SBQQ__Discount__c: 2000.00 net of 2500.00 list is 20 % off
    assert analytics.discount_percent == Decimal("20.0000")
    assert draft.occurred_at == datetime(2026, 5, 15, 10, 30, 4, tzinfo=UTC)


def test_the_order_of_an_amendment_is_the_same_version_as_its_platform_event() -> None:
    order = mapped(fixture("amendment_order_cdc.json"))
    event = mapped(fixture("amendment_platform_event.json"))
    assert order.source_event_id == event.source_event_id == f"quote:{Q2}"
    assert approved(order) == approved(event)


def test_mdq_segments_are_one_line_with_ramp_steps_in_date_order() -> None:
    contract = approved(mapped(fixture("mdq_ramp_quote_cdc.json")))
    # no end date: start + 36 months (SBQQ__SubscriptionTerm__c)
    assert (contract.end_date, contract.currency) == (date(2029, 1, 1), "EUR")
    (line,) = contract.lines
    assert (line.line_id, line.quantity, line.start_date, line.end_date) == (
        "a0w5g000001LnR1AAK", 200, date(2026, 1, 1), date(2029, 1, 1))
    assert [(s.starts_on, s.quantity, s.net_unit_price.amount) for s in line.ramp] == [
        (date(2027, 1, 1), 300, Decimal("8.50")), (date(2028, 1, 1), 400, Decimal("8.00"))]


def test_translate_is_pure_same_bytes_same_drafts() -> None:
    raw = (FIXTURES / "amendment_platform_event.json").read_bytes()
    assert translate(SETTINGS, "sfdc", raw) == translate(SETTINGS, "sfdc", raw)


def test_an_amendment_to_zero_on_every_line_is_a_cancellation() -> None:
    data = fixture("amendment_platform_event.json")
    snapshot = pe_snapshot(data)
    for line in snapshot["SBQQ__QuoteLine__c"]:
        line["SBQQ__Quantity__c"] = 0
    contract = approved(mapped(with_snapshot(data, snapshot)))
    assert contract.kind is CommercialKind.CANCELLATION


@pytest.mark.parametrize("status", ["Draft", "In Review", "Denied", "Presented"])
def test_a_quote_that_is_not_approved_maps_to_nothing(status: str) -> None:
    data = fixture("quote_approved_cdc.json")
    data["records"]["SBQQ__Quote__c"]["SBQQ__Status__c"] = status
    assert translate(SETTINGS, "sfdc", body(data)) == []


def test_a_deleted_quote_maps_to_nothing() -> None:
    data = fixture("quote_approved_cdc.json")
    data["change_event"]["data"]["payload"]["ChangeEventHeader"]["changeType"] = "DELETE"
    assert translate(SETTINGS, "sfdc", body(data)) == []


def test_an_amendment_without_its_version_is_refused_naming_the_quote() -> None:
    data = fixture("amendment_order_cdc.json")
    del data["records"]["SBQQ__Quote__c"]["Finsync_Contract_Version__c"]
    error = refusal(data)
    assert (error.code, error.subject) == ("version_missing", f"quote:{Q2}")


def test_an_amendment_without_its_contract_is_refused() -> None:
    data = fixture("amendment_order_cdc.json")
    del data["records"]["Contract"]
    assert refusal(data).code == "snapshot_missing"


def test_a_change_event_about_another_record_than_the_snapshot_is_refused() -> None:
    data = fixture("quote_approved_cdc.json")
    header = data["change_event"]["data"]["payload"]["ChangeEventHeader"]
    header["recordIds"] = ["a0x5g000000QtZZAAK"]
    assert refusal(data).code == "snapshot_mismatch"
    header["entityName"] = "Opportunity"
    assert refusal(data).code == "unsupported_entity"


@pytest.mark.parametrize("field, value, code", [
    ("SBQQ__Quantity__c", 2.5, "invalid_quantity"),
    ("SBQQ__Quantity__c", -1, "invalid_quantity"),
    ("SBQQ__Quantity__c", "500", "invalid_field"),
    ("SBQQ__NetPrice__c", 9.005, "price_precision"),
    ("SBQQ__NetPrice__c", 1e300, "number_out_of_range"),
    ("SBQQ__NetPrice__c", None, "field_missing"),
    ("SBQQ__EffectiveEndDate__c", "2026-13-01", "invalid_field"),
    ("SBQQ__EffectiveStartDate__c", "2026-01-01T00:00:00Z", "invalid_field"),
])
def test_a_line_field_out_of_its_rules_is_refused_with_a_code(field: str, value: object,
                                                               code: str) -> None:
    data = fixture("quote_approved_cdc.json")
    data["records"]["SBQQ__QuoteLine__c"][0][field] = value
    assert refusal(data).code == code


@pytest.mark.parametrize("field, value, code", [
    ("SBQQ__BillingFrequency__c", "Semiannual", "unsupported_billing_frequency"),
    ("SBQQ__Type__c", "Re-quote", "unsupported_quote_type"),
    ("CurrencyIsoCode", "XXQ", "unknown_currency"),
    ("SBQQ__Account__c", None, "field_missing"),
])
def test_a_quote_field_out_of_its_rules_is_refused_with_a_code(field: str, value: object,
                                                                code: str) -> None:
    data = fixture("quote_approved_cdc.json")
    data["records"]["SBQQ__Quote__c"][field] = value
    assert refusal(data).code == code


def test_a_quote_with_more_lines_than_allowed_is_refused() -> None:
    settings = SalesforceSettings("le_us", cpq_limits=CpqLimits(lines_max=1))
    assert refusal(fixture("amendment_order_cdc.json"), settings).code == "too_many_lines"


def test_a_record_of_the_wrong_type_is_refused() -> None:
    data = fixture("quote_approved_cdc.json")
    data["records"]["SBQQ__QuoteLine__c"][0]["attributes"]["type"] = "OpportunityLineItem"
    assert refusal(data).code == "snapshot_mismatch"


def test_a_platform_event_without_its_snapshot_is_refused() -> None:
    data = fixture("amendment_platform_event.json")
    del data["data"]["payload"]["Snapshot__c"]
    assert refusal(data).code == "field_missing"
    data["data"]["payload"]["Snapshot__c"] = "[" * 100 + "]" * 100
    assert refusal(data).code == "json_too_deep"
