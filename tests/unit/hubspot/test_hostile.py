"""What a careless or hostile sender (or a misbehaving API) could hand the HubSpot mapper
and webhook reader: anything but a mapping is refused as a `MappingError`, never another
exception (which would stop the fetcher or the pipeline on one object)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from finsync.connectors.hubspot import snapshot, webhook
from finsync.connectors.hubspot.mapping import HubSpotSettings, fingerprint, translate
from finsync.domain.errors import MappingError
from finsync.domain.limits import InputLimits
from tests.unit.hubspot.test_mapping import deal_snapshot

SETTINGS = HubSpotSettings("le_us")
DEAL_FIELDS = ("dealstage", "closedate", "deal_currency_code", "contract_start_date",
               "contract_end_date", "hs_lastmodifieddate")
LINE_FIELDS = ("quantity", "price", "discount", "hs_discount_percentage", "hs_sku",
               "hs_product_id", "recurringbillingfrequency", "hs_recurring_billing_period",
               "hs_recurring_billing_start_date", "hs_line_item_currency_code")
COMPANY_FIELDS = ("name", "country", "state", "city", "address", "zip", "vat_number")

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=30),
                         st.sampled_from(["", "0", "-1", "1e9999", "NaN", "Infinity",
                                          "2026-02-30", "P0M", "P99999M", "1" * 40,
                                          "closedwon", "annually", "monthly", "US", "EUR",
                                          "100", "99.99999", "1767225600000"]))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8)


def refused_or_mapped(body: bytes) -> None:
    with contextlib.suppress(MappingError):
        translate(SETTINGS, "crm", body)


@settings(max_examples=300, deadline=None)
@given(deal=st.dictionaries(st.sampled_from(DEAL_FIELDS), json_scalars, max_size=4),
       line=st.dictionaries(st.sampled_from(LINE_FIELDS), json_scalars, max_size=5),
       company=st.dictionaries(st.sampled_from(COMPANY_FIELDS), json_scalars, max_size=4))
# Epoch milliseconds beyond what the C library's time takes: OSError, not ValueError.
@example(deal={"closedate": "67768036191676796000"}, line={}, company={})
def test_any_property_values_map_or_are_refused(deal: dict[str, Any], line: dict[str, Any],
                                                company: dict[str, Any]) -> None:
    snap = deal_snapshot(2)
    data = json.loads(snapshot.body(snap))
    data["deal"]["properties"].update(deal)
    data["line_items"][0]["properties"].update(line)
    data["companies"][0]["properties"].update(company)
    body = json.dumps(data).encode()
    refused_or_mapped(body)
    company_body = json.dumps({"object": snapshot.OBJECT, "kind": "company", "version": 1,
                               "fetched_at": data["fetched_at"],
                               "company": data["companies"][0]}).encode()
    refused_or_mapped(company_body)
    with contextlib.suppress(MappingError):
        fingerprint(SETTINGS, snapshot.parse(data))


@settings(max_examples=300, deadline=None)
@given(value=json_values)
def test_any_json_is_a_webhook_a_snapshot_or_refused(value: Any) -> None:
    body = json.dumps(value).encode()
    refused_or_mapped(body)
    shaped = {"object": snapshot.OBJECT, "kind": "deal", "version": 1,
              "fetched_at": "2026-05-15T10:00:00+00:00", "deal": value,
              "line_items": value}
    refused_or_mapped(json.dumps(shaped).encode())
    with contextlib.suppress(MappingError):
        webhook.named(webhook.events(body, InputLimits()))


@settings(max_examples=200, deadline=None)
@given(items=st.lists(st.dictionaries(
    st.sampled_from(["subscriptionType", "objectId", "objectTypeId", "fromObjectId",
                     "toObjectId", "fromObjectTypeId", "toObjectTypeId", "associationType"]),
    st.one_of(json_scalars, st.sampled_from(["deal.associationChange", "0-3", "0-8",
                                             "object.associationChange", "DEAL_TO_COMPANY",
                                             "line_item.creation", "company.deletion"]))),
    min_size=1, max_size=5))
def test_any_webhook_events_name_objects_or_are_refused(items: list[dict[str, Any]]) -> None:
    body = json.dumps(items).encode()
    try:
        refs = webhook.named(webhook.events(body, InputLimits()))
    except MappingError:
        return
    assert all(r.object_id.isdigit() and len(r.object_id) <= 64 for r in refs)
