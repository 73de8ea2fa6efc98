from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from finsync.domain import codec
from finsync.domain.errors import MappingError
from finsync.domain.ids import event_id_for
from tests.builders import envelope, invoice_doc

NOW = datetime(2026, 11, 27, tzinfo=UTC)


def _invoice_v2() -> dict[str, Any]:
    return envelope("invoice.issued", "e1", ("invoice", "inv_1", 1),
                    {"invoice": invoice_doc("inv_1", "1234.50")}, correlation_id="c")


def test_event_id_derives_from_source_and_source_event_id() -> None:
    env = codec.draft_from_json(_invoice_v2()).stamp(NOW)
    assert env.event_id == event_id_for("billing", "e1")
    assert env.received_at == NOW


@pytest.mark.parametrize(("change", "message"), [
    ({"occurred_at": "2026-01-01T09:00:00"}, "UTC offset"),
    ({"aggregate": {"type": "invoice", "id": "x", "version": 0}}, "positive integer"),
    ({"payload": []}, "payload"),
    ({"source": ""}, "source"),
])
def test_malformed_envelope_is_a_mapping_error(change: dict[str, Any], message: str) -> None:
    with pytest.raises(MappingError, match=message):
        codec.draft_from_json({**_invoice_v2(), **change})


def test_text_that_is_not_json_has_code_invalid_json() -> None:
    with pytest.raises(MappingError) as caught:
        codec.draft_from_text(b"\xff{")
    assert caught.value.code == "invalid_json"


def test_invoice_v1_minor_units_upcast_to_v2_decimal_strings() -> None:
    v1 = {**_invoice_v2(), "schema_version": 1}
    v1_invoice = {k: v for k, v in invoice_doc("inv_1", "0").items()
                  if k not in {"subtotal", "tax_total", "total", "lines"}}
    v1["payload"] = {"invoice": {**v1_invoice, "subtotal_minor": 123450, "tax_total_minor": 0,
                                 "total_minor": 123450,
                                 "lines": [{**invoice_doc("inv_1", "0")["lines"][0],
                                            "amount_minor": 123450, "tax_amount_minor": 0}]}}
    for line in v1["payload"]["invoice"]["lines"]:
        line.pop("amount"), line.pop("tax_amount")
    upcast = codec.draft_from_json(v1).stamp(NOW)
    payload = codec.encode_event(upcast.event)
    assert upcast.schema_version == 2
    assert payload["invoice"]["total"] == "1234.50"
    assert payload["invoice"]["lines"][0]["amount"] == "1234.50"
    current = codec.encode_event(codec.draft_from_json(_invoice_v2()).event)
    assert json.dumps(payload, sort_keys=True) == json.dumps(current, sort_keys=True)


def test_schema_newer_than_known_is_refused() -> None:
    with pytest.raises(MappingError) as caught:
        codec.draft_from_json({**_invoice_v2(), "schema_version": 3})
    assert caught.value.code == "unknown_schema_version"
