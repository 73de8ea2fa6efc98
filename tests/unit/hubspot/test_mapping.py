"""HubSpot snapshots mapped purely: a deal to a commercial contract version, a company to a
customer account; webhook arrays to nothing. Objects come from the fixtures built from
HubSpot's object reference (tests/fixtures/cpq/hubspot)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from finsync.connectors.hubspot import snapshot, webhook
from finsync.connectors.hubspot.mapping import HubSpotSettings, fingerprint, translate
from finsync.connectors.hubspot.snapshot import COMPANY, DEAL, Snapshot
from finsync.connectors.hubspot.state import ObjectRef
from finsync.domain.catalog import BillingFrequency
from finsync.domain.commercial import CommercialContract, CommercialKind
from finsync.domain.errors import MappingError
from finsync.domain.events import CommercialContractApproved, CustomerUpserted
from finsync.domain.limits import InputLimits
from finsync.domain.money import Money
from tests.hubspotkit import AMENDMENT, WEBHOOK, api_shape, objects

SETTINGS = HubSpotSettings("le_us")
FETCHED = datetime(2026, 5, 15, 10, 0, tzinfo=UTC)


def deal_snapshot(version: int | None, crm: dict[str, Any] | None = None,
                  **deal_props: str) -> Snapshot:
    crm = crm or objects()
    deal = api_shape(crm["deals"]["9001"])
    deal["properties"] = {**deal["properties"], **deal_props}
    links = deal["associations"]
    items = tuple(api_shape(crm["line_items"][r["id"]]) for r in links["line_items"]["results"])
    quotes = tuple(api_shape(crm["quotes"][r["id"]]) for r in links["quotes"]["results"])
    company = api_shape(crm["companies"]["7001"])
    return Snapshot(DEAL, version, FETCHED, deal, items, (company,), quotes)


def amended() -> dict[str, Any]:
    crm = objects()
    for kind, items in objects(AMENDMENT).items():
        crm[kind] = {**crm[kind], **items}
    return crm


def contract_of(snap: Snapshot) -> CommercialContract:
    (draft,) = translate(SETTINGS, "crm", snapshot.body(snap))
    assert isinstance(draft.event, CommercialContractApproved)
    return draft.event.commercial_contract


def test_the_approved_deal_is_version_1_the_new_order() -> None:
    snap = deal_snapshot(1)
    (draft,) = translate(SETTINGS, "crm", snapshot.body(snap))
    contract = contract_of(snap)
    assert (draft.source_event_id, draft.correlation_id) == ("deal:9001:v1",
                                                             "hubspot-deal-9001-v1")
    assert contract.kind is CommercialKind.NEW and contract.quote_id == "hubspot-deal-9001-v1"
    assert (contract.sold_to_id, contract.bill_to_id) == ("7001", "7001")
    assert dict(contract.refs) == {"hubspot": "9001", "hubspot_quote": "3001"}
    # Term: the seats' billing start 2026-01-01 for P12M -> ends 2027-01-01 (exclusive).
    assert (contract.start_date, contract.end_date) == (date(2026, 1, 1), date(2027, 1, 1))
    # Closed 2025-12-20, before the term: the order takes effect when the term starts.
    assert contract.effective_date == date(2026, 1, 1)
    assert contract.billing_frequency is BillingFrequency.ANNUAL
    (seats,) = contract.lines
    # The reference workflow's order: 500 seats at 120.00 a seat a year, no discount.
    assert (seats.line_id, seats.product_code, seats.quantity) == ("4001", "SEATS-ANNUAL", 500)
    assert seats.list_unit_price == seats.net_unit_price == Money.of("120.00", "USD")
    assert seats.discount_percent == Decimal(0)


def test_a_discount_percentage_rounds_the_net_price_half_up() -> None:
    crm = objects()
    crm["line_items"]["4001"]["properties"]["hs_discount_percentage"] = "12.5"
    (seats,) = contract_of(deal_snapshot(1, crm)).lines
    # 120.00 less 12.5 % = 105.00 exactly; 0.125 % more would be 104.85.
    assert (seats.discount_percent, seats.net_unit_price) == (Decimal("12.5"),
                                                              Money.of("105.00", "USD"))
    crm["line_items"]["4001"]["properties"]["price"] = "99.99"
    crm["line_items"]["4001"]["properties"]["hs_discount_percentage"] = "15"
    (seats,) = contract_of(deal_snapshot(1, crm)).lines
    # 99.99 x 0.85 = 84.9915 -> 84.99 (half up at the cent).
    assert seats.net_unit_price == Money.of("84.99", "USD")


def test_the_upgrade_is_version_2_an_amendment_co_terminated() -> None:
    contract = contract_of(deal_snapshot(2, amended()))
    assert contract.kind is CommercialKind.AMENDMENT
    assert contract.quote_id == "hubspot-deal-9001-v2"
    assert dict(contract.refs)["hubspot_quote"] == "3002"  # the approved quote changed last
    assert contract.effective_date == date(2026, 5, 15)
    seats, analytics = contract.lines
    assert seats.quantity == 800
    assert (analytics.product_code, analytics.net_unit_price) == (
        "PREMIUM-ANALYTICS", Money.of("24000.00", "USD"))
    # Starts with the approval, ends with the term (co-termination).
    assert (analytics.start_date, analytics.end_date) == (date(2026, 5, 15), date(2027, 1, 1))


def test_a_per_unit_discount_gives_the_percentage() -> None:
    crm = amended()
    crm["line_items"]["4002"]["properties"]["discount"] = "2400.00"
    _, analytics = contract_of(deal_snapshot(2, crm)).lines
    # 24,000.00 list less 2,400.00 a unit = 21,600.00, a 10.0000 % discount.
    assert analytics.net_unit_price == Money.of("21600.00", "USD")
    assert analytics.discount_percent == Decimal("10.0000")
    crm["line_items"]["4002"]["properties"]["hs_discount_percentage"] = "5"
    with pytest.raises(MappingError) as refused:
        contract_of(deal_snapshot(2, crm))
    assert refused.value.code == "ambiguous_discount"


def test_a_renewal_is_said_by_the_kind_property() -> None:
    settings = HubSpotSettings("le_us", kind_property="contract_change_kind")
    snap = deal_snapshot(3, contract_change_kind="renewal")
    (draft,) = translate(settings, "crm", snapshot.body(snap))
    assert isinstance(draft.event, CommercialContractApproved)
    assert draft.event.commercial_contract.kind is CommercialKind.RENEWAL
    bad = deal_snapshot(3, contract_change_kind="upsell")
    with pytest.raises(MappingError) as refused:
        translate(settings, "crm", snapshot.body(bad))
    assert (refused.value.code, refused.value.subject) == ("invalid_kind", "deal:9001")


def test_the_company_is_a_customer_account() -> None:
    company = api_shape(objects()["companies"]["7001"])
    company["properties"]["vat_number"] = "DE123456789"
    (draft,) = translate(SETTINGS, "crm", snapshot.body(Snapshot(COMPANY, 4, FETCHED, company)))
    assert isinstance(draft.event, CustomerUpserted)
    customer = draft.event.customer
    assert (customer.id, customer.name, customer.version) == ("7001", "Acme Analytics Inc.", 4)
    assert (customer.billing_country, customer.billing_region, customer.tax_id) == (
        "US", "NY", "DE123456789")
    assert customer.address is not None
    assert customer.address.street == ("1 Main Street", "Floor 12")
    assert (customer.address.city, customer.address.postal_code) == ("New York", "10001")
    assert dict(customer.refs) == {"hubspot": "7001"}
    assert draft.source_event_id == "company:7001:v4"


@pytest.mark.parametrize(("change", "code"), [
    ({"dealstage": "presentationscheduled"}, "deal_not_approved"),
    ({"deal_currency_code": "EUR"}, "currency_mismatch"),
])
def test_deal_refusals_name_the_deal(change: dict[str, str], code: str) -> None:
    with pytest.raises(MappingError) as refused:
        translate(SETTINGS, "crm", snapshot.body(deal_snapshot(1, **change)))
    assert (refused.value.code, refused.value.subject) == (code, "deal:9001")


@pytest.mark.parametrize(("field", "value", "code"), [
    ("quantity", "12.5", "invalid_quantity"),
    ("quantity", "-1", "invalid_quantity"),
    ("price", "1e999999", "invalid_amount"),
    ("price", "NaN", "invalid_amount"),
    ("recurringbillingfrequency", "per_six_months", "unsupported_frequency"),
    ("hs_sku", "", "master_data_mismatch"),
    ("hs_recurring_billing_start_date", "2026-13-01", "invalid_date"),
])
def test_line_item_refusals(field: str, value: str, code: str) -> None:
    crm = objects()
    crm["line_items"]["4001"]["properties"][field] = value
    if field == "hs_sku":
        crm["line_items"]["4001"]["properties"]["hs_product_id"] = ""
    with pytest.raises(MappingError) as refused:
        translate(SETTINGS, "crm", snapshot.body(deal_snapshot(1, crm)))
    assert refused.value.code == code


def test_company_without_an_iso_country_is_master_data_mismatch() -> None:
    company = api_shape(objects()["companies"]["7001"])
    company["properties"]["country"] = "United States"
    with pytest.raises(MappingError) as refused:
        translate(SETTINGS, "crm", snapshot.body(Snapshot(COMPANY, 1, FETCHED, company)))
    assert (refused.value.code, refused.value.subject) == ("master_data_mismatch",
                                                           "company:7001")


def test_an_unnumbered_snapshot_is_a_mapping_error_saying_why() -> None:
    with pytest.raises(MappingError) as refused:
        translate(SETTINGS, "crm", snapshot.body(deal_snapshot(None)))
    assert refused.value.code == "invalid_snapshot"  # it maps: a fetcher's defect
    broken = snapshot.body(deal_snapshot(None, dealstage="appointmentscheduled"))
    with pytest.raises(MappingError) as refused:
        translate(SETTINGS, "crm", broken)
    assert refused.value.code == "deal_not_approved"


def test_webhook_arrays_map_to_nothing_and_name_what_to_fetch() -> None:
    body = WEBHOOK.read_bytes()
    assert translate(SETTINGS, "crm", body) == []
    named = webhook.named(webhook.events(body, InputLimits()))
    # The contact event names nothing finsync reads.
    assert named == [ObjectRef("deal", "9001"), ObjectRef("company", "7001")]


@pytest.mark.parametrize("body", [b"{}", b"[]", b'[{"objectId": 1}]', b"not json",
                                  b'[{"subscriptionType": "deal.creation", "objectId": "1 OR 1"}]',
                                  b"[" * 100 + b"]" * 100])
def test_bodies_that_are_neither_webhook_nor_snapshot_are_refused(body: bytes) -> None:
    with pytest.raises(MappingError):
        translate(SETTINGS, "crm", body)
        webhook.named(webhook.events(body, InputLimits()))


def test_associations_name_both_ends_and_deletions_nothing() -> None:
    items = [{"subscriptionType": "object.associationChange", "fromObjectTypeId": "0-8",
              "fromObjectId": 4002, "toObjectTypeId": "0-3", "toObjectId": 9001},
             {"subscriptionType": "deal.deletion", "objectId": 9003},
             {"subscriptionType": "object.propertyChange", "objectTypeId": "0-14",
              "objectId": 3002}]
    assert webhook.named(items) == [ObjectRef("line_item", "4002"), ObjectRef("deal", "9001"),
                                    ObjectRef("quote", "3002")]


def test_fingerprint_ignores_what_billing_does_not_read() -> None:
    base = fingerprint(SETTINGS, deal_snapshot(None))
    assert fingerprint(SETTINGS, deal_snapshot(None, dealname="Renamed",
                                               hs_lastmodifieddate="2026-06-01T00:00:00Z")) \
        == base
    assert fingerprint(SETTINGS, deal_snapshot(None, amended())) != base


@given(version=st.one_of(st.none(), st.integers(1, 2**31 - 1)),
       name=st.text(max_size=40))
def test_snapshot_round_trip(version: int | None, name: str) -> None:
    snap = deal_snapshot(version, dealname=name)
    again = snapshot.parse(json.loads(snapshot.body(snap)))
    assert again == snap


@given(kind=st.sampled_from(snapshot.FAILED_KINDS), error=st.text(max_size=80))
def test_a_failed_reads_snapshot_round_trips(kind: str, error: str) -> None:
    snap = Snapshot(kind, None, FETCHED, {"id": "9001", "properties": {}}, error=error)
    assert snapshot.parse(json.loads(snapshot.body(snap))) == snap


@pytest.mark.parametrize("kind", snapshot.FAILED_KINDS)
def test_a_failed_read_is_refused_naming_the_object_and_the_error(kind: str) -> None:
    failed = Snapshot(kind, None, FETCHED, {"id": "9001", "properties": {}},
                      error="HubSpot did not return line items ['4999']")
    with pytest.raises(MappingError) as refused:
        translate(SETTINGS, "crm", snapshot.body(failed))
    assert (refused.value.code, refused.value.subject) == ("fetch_failed", f"{kind}:9001")
    assert "line items ['4999']" in str(refused.value)


@pytest.mark.parametrize("change", [{"error": 7}, {"error": "x" * 501}, {"version": 3},
                                    {"error": None, "kind": "line_item"}])
def test_a_misshapen_failed_read_is_refused(change: dict[str, Any]) -> None:
    failed = Snapshot("line_item", None, FETCHED, {"id": "4001", "properties": {}}, error="no")
    data = json.loads(snapshot.body(failed)) | change
    with pytest.raises(MappingError) as refused:
        translate(SETTINGS, "crm", json.dumps(data).encode())
    assert refused.value.code == "invalid_snapshot"


def test_a_deal_naming_too_many_line_items_is_refused_before_they_are_read() -> None:
    snap = deal_snapshot(None)
    links = [{"id": str(5000 + n), "type": "deal_to_line_item"} for n in range(501)]
    deal = {**snap.main, "associations": {**snap.main["associations"],
                                          "line_items": {"results": links}}}
    with pytest.raises(MappingError) as refused:
        translate(SETTINGS, "crm", snapshot.body(Snapshot(DEAL, None, FETCHED, deal)))
    assert refused.value.code == "too_many_associations"
    assert "501 line_items, over the limit of 500" in str(refused.value)
