"""finsync's CPQ JSON: what `encode` writes `translate` reads; envelopes; refusals."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from finsync.connectors.cpq import document
from finsync.connectors.cpq.document import DocumentSettings
from finsync.connectors.cpq.limits import CpqLimits
from finsync.domain.errors import MappingError
from finsync.domain.events import CommercialContractApproved, CustomerUpserted
from finsync.domain.limits import InputLimits
from tests.unit.cpq.cpqkit import APPROVED_AT, contract, customer, upgrade

SETTINGS = DocumentSettings()


def refusal(body: bytes, settings: DocumentSettings = SETTINGS) -> str:
    with pytest.raises(MappingError) as error:
        document.translate(settings, "crm", body)
    return error.value.code


def edited(body: bytes, **changes: Any) -> bytes:
    data = json.loads(body)
    data["commercial_contract"].update(changes)
    return json.dumps(data).encode()


@pytest.mark.parametrize("value", [contract(), upgrade(), customer(), customer(3, "Acme")])
def test_translate_reads_back_what_encode_wrote(value: Any) -> None:
    (draft,) = document.translate(SETTINGS, "crm", document.encode(value, APPROVED_AT))
    assert draft.event.document == value
    assert draft.occurred_at == APPROVED_AT


def test_translate_is_pure_same_bytes_same_draft() -> None:
    body = document.encode(upgrade(), APPROVED_AT)
    assert document.translate(SETTINGS, "crm", body) == document.translate(SETTINGS, "crm", body)


def test_a_contract_version_is_correlated_by_its_quote_and_named_by_its_version() -> None:
    (draft,) = document.translate(SETTINGS, "crm", document.encode(upgrade(), APPROVED_AT))
    assert isinstance(draft.event, CommercialContractApproved)
    assert draft.source_event_id == "commercial_contract:ct-acme:v2"
    assert draft.correlation_id == draft.business_key == "q-acme-2"
    assert (draft.claimed.type, draft.claimed.id, draft.claimed.version) == (
        "commercial_contract", "ct-acme", 2)


def test_a_customer_is_correlated_by_its_own_id() -> None:
    (draft,) = document.translate(SETTINGS, "crm", document.encode(customer(4), APPROVED_AT))
    assert isinstance(draft.event, CustomerUpserted)
    assert (draft.source_event_id, draft.correlation_id) == ("customer:acc-acme:v4", "acc-acme")


def test_a_document_without_legal_entity_takes_the_sources_default() -> None:
    data = json.loads(document.encode(contract(), APPROVED_AT))
    del data["commercial_contract"]["legal_entity"]
    body = json.dumps(data).encode()
    assert refusal(body) == "mapping_error"  # no default: the field is missing
    (draft,) = document.translate(DocumentSettings("le_eu"), "crm", body)
    assert isinstance(draft.event, CommercialContractApproved)
    assert draft.event.commercial_contract.legal_entity == "le_eu"


def test_a_document_naming_its_legal_entity_keeps_it_over_the_default() -> None:
    body = document.encode(contract(), APPROVED_AT)
    (draft,) = document.translate(DocumentSettings("le_eu"), "crm", body)
    assert isinstance(draft.event, CommercialContractApproved)
    assert draft.event.commercial_contract.legal_entity == "le_us"


@pytest.mark.parametrize("body, code", [
    (b"not json", "invalid_json"),
    (b"[]", "invalid_document"),
    (b'{"type": "invoice.issued", "occurred_at": "2026-05-15T10:00:00Z"}', "unsupported_type"),
    (b'{"type": ["x"], "occurred_at": "2026-05-15T10:00:00Z"}', "unsupported_type"),
    (b'{"type": "customer.upserted", "occurred_at": "2026-05-15T10:00:00"}',
     "invalid_timestamp"),
    (b'{"type": "customer.upserted", "occurred_at": 5}', "invalid_timestamp"),
    (b"[" * 100 + b"]" * 100, "json_too_deep"),
])
def test_translate_refuses_a_body_that_is_not_a_cpq_document(body: bytes, code: str) -> None:
    assert refusal(body) == code


def test_translate_refuses_broken_contract_rules_with_their_code() -> None:
    body = document.encode(contract(), APPROVED_AT)
    assert refusal(edited(body, end_date="2025-01-01")) == "mapping_error"
    assert refusal(edited(body, version=2)) == "mapping_error"  # version 2 is no new order
    assert refusal(edited(body, currency="XYZ")) == "mapping_error"


def test_translate_refuses_a_float_amount() -> None:
    data = json.loads(document.encode(contract(), APPROVED_AT))
    data["commercial_contract"]["lines"][0]["net_unit_price"] = 9.0
    assert refusal(json.dumps(data).encode()) == "invalid_amount"


def test_translate_bounds_lines_and_ramp_steps() -> None:
    body = document.encode(upgrade(), APPROVED_AT)  # 2 lines, one with 1 ramp step
    one_line = DocumentSettings(cpq_limits=CpqLimits(lines_max=1))
    assert refusal(body, one_line) == "too_many_lines"
    few_steps = DocumentSettings(cpq_limits=CpqLimits(ramp_steps_max=0))
    assert refusal(body, few_steps) == "too_many_ramp_steps"


def test_translate_bounds_the_json_before_parsing() -> None:
    body = document.encode(upgrade(), APPROVED_AT)
    small = DocumentSettings(limits=InputLimits(json_items_max=10))
    assert refusal(body, small) == "json_too_large"


def test_occurred_at_is_utc_whatever_the_offset() -> None:
    data = json.loads(document.encode(customer(), APPROVED_AT))
    data["occurred_at"] = "2026-05-15T12:30:00+02:00"
    (draft,) = document.translate(SETTINGS, "crm", json.dumps(data).encode())
    assert draft.occurred_at == datetime(2026, 5, 15, 10, 30, tzinfo=UTC)
