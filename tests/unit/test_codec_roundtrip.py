"""Every canonical event reads back equal to itself, through JSON text and in its envelope;
and the wire rules the codec keeps (money as decimal strings, paths in errors, upcasts)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finsync.domain import codec
from finsync.domain.catalog import BillingFrequency
from finsync.domain.codec import JsonObject, JsonValue
from finsync.domain.contract import (
    CONTRACT_LEVEL,
    ChangeOp,
    ContractAmendment,
    ContractChange,
    ContractLine,
    SubscriptionContract,
)
from finsync.domain.errors import MappingError
from finsync.domain.events import (
    CATALOGUE,
    AnyEvent,
    ContractAmended,
    ContractCreated,
    EventType,
    InvoiceIssued,
    PaymentApplied,
)
from finsync.domain.invoice import DocumentLine, Invoice
from finsync.domain.money import Money
from finsync.domain.payment import Payment, PaymentApplication
from finsync.domain.proration import ProrationConvention
from tests.strategies import EVENTS, amendments, contract_changes, drafts

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
CLASSES = list(CATALOGUE.values())
NAMES = [cls.name.value for cls in CLASSES]


def _events(cls: type[AnyEvent]) -> st.SearchStrategy[AnyEvent]:
    strategy = EVENTS.get(cls)
    if strategy is None:
        pytest.fail(f"{cls.__name__} is in the catalogue but tests/strategies.py has no "
                    "strategy for it (add it to EVENTS)")
    return strategy


def _object(value: JsonValue) -> JsonObject:
    assert isinstance(value, dict)
    return value


# -- properties, for every class of the catalogue -------------------------------------------

def test_every_catalogue_class_has_a_strategy() -> None:
    assert set(EVENTS) == set(CATALOGUE.values())


@pytest.mark.parametrize("cls", CLASSES, ids=NAMES)
@SETTINGS
@given(data=st.data())
def test_event_decodes_to_itself(cls: type[AnyEvent], data: st.DataObject) -> None:
    event = data.draw(_events(cls))
    assert type(event) is cls
    payload = codec.encode_event(event)
    assert codec.decode_event(cls.name, cls.schema_version(), payload) == event


@pytest.mark.parametrize("cls", CLASSES, ids=NAMES)
@SETTINGS
@given(data=st.data())
def test_event_survives_json_text_and_writes_the_same_again(
        cls: type[AnyEvent], data: st.DataObject) -> None:
    event = data.draw(_events(cls))
    text = json.dumps(codec.encode_event(event), sort_keys=True)
    again = codec.decode_event(cls.name, cls.schema_version(), json.loads(text))
    assert again == event
    # What a ledger fingerprints must not change when an event is read and written again.
    assert json.dumps(codec.encode_event(again), sort_keys=True) == text


@pytest.mark.parametrize("op", list(ChangeOp), ids=[op.value for op in ChangeOp])
@settings(SETTINGS, max_examples=15)
@given(data=st.data())
def test_amendment_with_every_change_op_decodes_to_itself(op: ChangeOp,
                                                          data: st.DataObject) -> None:
    amendment = data.draw(amendments())
    change = data.draw(contract_changes(op))
    event = ContractAmended(replace(amendment, changes=(change, *amendment.changes)))
    text = json.dumps(codec.encode_event(event))
    assert codec.decode_event(event.name, event.schema_version(), json.loads(text)) == event


@pytest.mark.parametrize("cls", CLASSES, ids=NAMES)
@SETTINGS
@given(data=st.data())
def test_draft_envelope_decodes_to_itself(cls: type[AnyEvent], data: st.DataObject) -> None:
    draft = data.draw(drafts(_events(cls)))
    wire = codec.draft_to_json(draft)
    assert codec.draft_from_json(wire) == draft
    assert codec.draft_from_text(json.dumps(wire).encode()) == draft


# -- the wire rules, by example ---------------------------------------------------------------

def _contract(version: int) -> SubscriptionContract:
    seats = ContractLine("ln_seats", "prod_seat", "price_seat", 100, Money.of("120.00", "USD"),
                         date(2026, 1, 1), date(2027, 1, 1))
    return SubscriptionContract("con_1", "cus_1", "le_us", "USD", date(2026, 1, 1),
                                date(2027, 1, 1), BillingFrequency.ANNUAL, (seats,), version)


def _kwd_invoice() -> Invoice:
    # 1.250 + 0.750 = 2.000 KWD subtotal; tax 0.100 on the first line; total 2.100 KWD.
    first = DocumentLine("l1", "prod_seat", "Seats", 5, Money.of("1.250", "KWD"),
                         Money.of("0.100", "KWD"), date(2026, 1, 1), date(2027, 1, 1))
    second = DocumentLine("l2", "prod_support", "Support", 1, Money.of("0.750", "KWD"),
                          Money.of("0.000", "KWD"), date(2026, 1, 1), date(2027, 1, 1))
    return Invoice("inv_1", "INV-1", "cus_1", "con_1", 1, "le_kw", "KWD", date(2026, 1, 1),
                   date(2026, 1, 31), (first, second), Money.of("2.000", "KWD"),
                   Money.of("0.100", "KWD"), Money.of("2.100", "KWD"))


def _invoice_doc() -> JsonObject:
    return _object(codec.encode_event(InvoiceIssued(_kwd_invoice()))["invoice"])


def test_payment_carries_its_currency_at_top_level() -> None:
    payment = Payment("pay_1", "cus_1", "le_jp", Money.of("15000", "JPY"), date(2026, 1, 15),
                      (PaymentApplication("inv_1", Money.of("10000", "JPY")),))
    payload = codec.encode_event(PaymentApplied(payment))
    assert payload == {"payment": {
        "currency": "JPY", "id": "pay_1", "customer_id": "cus_1", "legal_entity": "le_jp",
        "amount": "15000", "received_on": "2026-01-15",
        "applications": [{"invoice_id": "inv_1", "amount": "10000"}], "external_refs": {}}}


def test_money_as_a_float_is_refused() -> None:
    invoice: dict[str, object] = {**_invoice_doc(), "total": 2.1}
    with pytest.raises(MappingError, match=r"invoice\.total must be a decimal string"):
        codec.decode_event(EventType.INVOICE_ISSUED, 2, {"invoice": invoice})


@pytest.mark.parametrize("written", ["absent", "null"])
def test_missing_required_field_names_its_path(written: str) -> None:
    invoice = {k: v for k, v in _invoice_doc().items() if k != "total"}
    if written == "null":
        invoice["total"] = None
    with pytest.raises(MappingError, match=r"^invoice\.total is required$"):
        codec.decode_event(EventType.INVOICE_ISSUED, 2, {"invoice": invoice})


@pytest.mark.parametrize(("v1_op", "change"), [
    ("set_quantity", ContractChange(ChangeOp.ATTRIBUTE_CHANGED, CONTRACT_LEVEL, "100", "200",
                                    "quantity")),
    ("cancel", ContractChange(ChangeOp.CANCELLED, CONTRACT_LEVEL, "100", "200")),
    ("replace_state", ContractChange(ChangeOp.STATE_REPLACED, CONTRACT_LEVEL, "100", "200")),
])
def test_v1_amendment_change_op_is_upcast(v1_op: str, change: ContractChange) -> None:
    amendment: JsonObject = {
        "id": "amd_2", "contract_id": "con_1", "version": 2, "effective_date": "2026-05-16",
        "reason": "upgrade", "contract": codec.encode(_contract(2)),
        "changes": [{"op": v1_op, "line_id": "", "before": "100", "after": "200"}]}
    event = codec.decode_event(EventType.CONTRACT_AMENDED, 1, {"amendment": amendment})
    assert event == ContractAmended(ContractAmendment(
        "amd_2", "con_1", 2, date(2026, 5, 16), "upgrade", (change,), _contract(2)))


def test_v1_invoice_in_minor_units_decodes() -> None:
    # KWD has 3 decimals: 1250 minor units are 1.250 KWD. A v1 line without
    # `tax_amount_minor` had no tax.
    lines: list[JsonValue] = [
        {"line_id": "l1", "product_id": "prod_seat", "description": "Seats", "quantity": 5,
         "amount_minor": 1250, "tax_amount_minor": 100, "service_start": "2026-01-01",
         "service_end": "2027-01-01"},
        {"line_id": "l2", "product_id": "prod_support", "description": "Support",
         "quantity": 1, "amount_minor": 750, "service_start": "2026-01-01",
         "service_end": "2027-01-01"},
    ]
    v1: JsonObject = {
        "id": "inv_1", "number": "INV-1", "customer_id": "cus_1", "contract_id": "con_1",
        "contract_version": 1, "legal_entity": "le_kw", "currency": "KWD",
        "issue_date": "2026-01-01", "due_date": "2026-01-31", "lines": lines,
        "subtotal_minor": 2000, "tax_total_minor": 100, "total_minor": 2100}
    event = codec.decode_event(EventType.INVOICE_ISSUED, 1, {"invoice": v1})
    assert event == InvoiceIssued(_kwd_invoice())


@pytest.mark.parametrize("cls", CLASSES, ids=NAMES)
def test_schema_version_newer_than_known_is_refused(cls: type[AnyEvent]) -> None:
    with pytest.raises(MappingError) as caught:
        codec.decode_event(cls.name, cls.schema_version() + 1, {})
    assert caught.value.code == "unknown_schema_version"


def test_unknown_event_type_is_refused() -> None:
    with pytest.raises(MappingError) as caught:
        codec.decode_event("invoice.paid", 1, {"invoice": _invoice_doc()})
    assert caught.value.code == "unknown_event_type"


def test_contract_without_billing_anchor_writes_the_payload_it_was_stored_with() -> None:
    # A contract stored before the billing anchor and proration convention existed has
    # neither key: it decodes to the defaults and encodes to the same payload again.
    payload = codec.encode_event(ContractCreated(_contract(1)))
    document = _object(payload["contract"])
    assert "billing_anchor" not in document and "proration" not in document
    decoded = codec.decode_event(ContractCreated.name, 1, payload)
    assert isinstance(decoded, ContractCreated)
    assert decoded.contract.billing_anchor is None
    assert decoded.contract.proration is ProrationConvention.BY_DAY
    assert codec.encode_event(decoded) == payload


def test_contract_with_billing_anchor_and_proration_decodes_to_itself() -> None:
    contract = replace(_contract(1), billing_anchor=date(2026, 2, 1),
                       proration=ProrationConvention.MONTHLY_EVEN)
    payload = codec.encode_event(ContractCreated(contract))
    document = _object(payload["contract"])
    assert document["billing_anchor"] == "2026-02-01"
    assert document["proration"] == "monthly_even"
    assert codec.decode_event(ContractCreated.name, 1, payload) == ContractCreated(contract)


def test_billing_anchor_on_the_start_date_is_spelled_none() -> None:
    contract = replace(_contract(1), billing_anchor=date(2026, 1, 1))
    assert contract.billing_anchor is None
    assert contract == _contract(1)


def test_unknown_proration_convention_names_its_path() -> None:
    payload = codec.encode_event(ContractCreated(_contract(1)))
    _object(payload["contract"])["proration"] = "by_fortnight"
    with pytest.raises(MappingError, match=r"contract\.proration"):
        codec.decode_event(ContractCreated.name, 1, payload)
