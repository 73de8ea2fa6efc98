from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from finsync.domain import codec
from finsync.domain.errors import MappingError
from finsync.domain.invoice import Invoice
from tests.builders import contract_doc, envelope, invoice_doc

NOW = datetime(2026, 11, 27, tzinfo=UTC)


def _decode(doc: dict[str, Any]) -> Any:
    return codec.draft_from_json(envelope("invoice.issued", "e1", ("invoice", doc["id"], 1),
                                          {"invoice": doc}, correlation_id="c")).event.document


def test_invoice_payload_decodes_to_the_domain_object() -> None:
    invoice = _decode(invoice_doc("inv_1", "60000.00"))
    assert isinstance(invoice, Invoice)
    assert str(invoice.total) == "60000.00 USD"


@pytest.mark.parametrize(("change", "message"), [
    ({"total": "59999.99"}, "subtotal \\+ tax differs"),
    ({"subtotal": "1.00", "total": "1.00"}, "lines do not sum"),
    ({"currency": "XYZ"}, "unknown ISO 4217"),
    ({"total": 60000.0}, "decimal string"),
    ({"issue_date": "2026-13-01"}, r"invoice\.issue_date"),
])
def test_bad_invoice_payload_names_the_problem(change: dict[str, Any], message: str) -> None:
    with pytest.raises(MappingError, match=message):
        _decode({**invoice_doc("inv_1", "60000.00"), **change})


def test_document_id_must_match_the_aggregate() -> None:
    sent = envelope("invoice.issued", "e1", ("invoice", "inv_other", 1),
                    {"invoice": invoice_doc("inv_1", "1.00")}, correlation_id="c")
    with pytest.raises(MappingError, match=r"but aggregate\.id is inv_other"):
        codec.draft_from_json(sent)


def test_line_amounts_must_be_in_minor_units() -> None:
    doc = invoice_doc("inv_1", "10.00")
    doc["lines"] = [{**doc["lines"][0], "amount": "5.005"}, {**doc["lines"][0], "line_id": "l2",
                                                            "amount": "4.995"}]
    with pytest.raises(MappingError, match="minor units"):
        _decode(doc)


def test_proration_flag_must_be_a_boolean() -> None:
    doc = invoice_doc("inv_1", "10.00")
    doc["lines"][0]["proration"] = "false"
    with pytest.raises(MappingError, match="true or false"):
        _decode(doc)


@pytest.mark.parametrize(("aggregate", "message"), [
    (("subscription_contract", "con_other", 2), "aggregate.id is con_other"),
    (("subscription_contract", "con_1", 7), "aggregate.version is 7"),
])
def test_amendment_must_be_the_aggregate_and_version_it_claims(
        aggregate: tuple[str, str, int], message: str) -> None:
    amendment = {"id": "amd_2", "contract_id": "con_1", "version": 2,
                 "effective_date": "2026-05-16", "reason": "upgrade", "changes": [],
                 "contract": contract_doc("con_1", 2, 800, "120.00")}
    sent = envelope("contract.amended", "e2", aggregate, {"amendment": amendment},
                    correlation_id="c")
    with pytest.raises(MappingError, match=message):
        codec.draft_from_json(sent)
