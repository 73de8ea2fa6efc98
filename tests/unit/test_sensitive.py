"""Sensitive fields: classified once, redacted in views, scrubbed from texts."""

from __future__ import annotations

import dataclasses
import json
import typing

from hypothesis import given, settings
from hypothesis import strategies as st

from finsync.domain import codec
from finsync.domain.events import AnyEvent
from finsync.domain.sensitive import (
    CANONICAL_FIELDS,
    PUBLIC_FIELDS,
    Sensitivity,
    classify,
    classify_path,
    payload_values,
    redact,
    redact_text,
    sensitive_values,
)
from tests.strategies import EVENTS

STRIPE_CUSTOMER = {
    "id": "evt_1", "type": "customer.updated",
    "data": {"object": {
        "object": "customer", "id": "cus_1", "name": "Jane Planted-Doe",
        "email": "jane@example.org", "phone": "+44 20 7946 0000",
        "address": {"line1": "1 Secret Street", "city": "London", "country": "GB"},
        "tax_ids": {"data": [{"type": "eu_vat", "value": "DE123456789"}]},
        "invoice_settings": {"default_payment_method": "pm_1"},
        "metadata": {"note": "VIP since 2019"},
    }},
}
CHARGE = {"object": "charge", "amount": 1000,
          "billing_details": {"name": "Jane Planted-Doe", "email": None},
          "payment_method_details": {"card": {"last4": "4242", "brand": "visa"}}}


def _document_types() -> set[type]:
    """Every dataclass reachable from a canonical event's document."""
    found: set[type] = set()
    todo = [typing.get_type_hints(cls)[f.name] for cls in EVENTS
            for f in dataclasses.fields(cls)]
    while todo:
        hint = todo.pop()
        for arg in typing.get_args(hint):
            todo.append(arg)
        if dataclasses.is_dataclass(hint) and isinstance(hint, type) and hint not in found:
            found.add(hint)
            todo.extend(typing.get_type_hints(hint)[f.name] for f in dataclasses.fields(hint))
    return found


def test_every_string_field_of_the_canonical_model_is_classified_or_public() -> None:
    # A field added to the model must be put in CANONICAL_FIELDS or PUBLIC_FIELDS first.
    unclassified = []
    for cls in _document_types():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if str not in (hints[f.name], *typing.get_args(hints[f.name])):
                continue
            if (cls, f.name) not in CANONICAL_FIELDS and f.name not in PUBLIC_FIELDS:
                unclassified.append(f"{cls.__name__}.{f.name}")
    assert unclassified == []


def test_the_customer_name_and_every_note_are_sensitive() -> None:
    classes = {(cls.__name__, name): found for (cls, name), found in CANONICAL_FIELDS.items()}
    assert classes[("CustomerAccount", "name")] is Sensitivity.NAME
    assert classes[("Refund", "reason")] is Sensitivity.FREE_TEXT
    assert classes[("CreditMemo", "reason")] is Sensitivity.FREE_TEXT


@settings(max_examples=80, deadline=None)
@given(st.one_of(*EVENTS.values()))
def test_a_redacted_canonical_payload_holds_no_classified_value(event: AnyEvent) -> None:
    planted = _plant(event)
    payload = codec.encode_event(planted)  # type: ignore[arg-type]
    assert "PLANTED" not in json.dumps(redact(payload))
    if "PLANTED" in json.dumps(payload):
        assert any(v.startswith("PLANTED") for v in sensitive_values(payload))


def _plant(value: object) -> object:
    """`value` with every classified string field replaced by a marker."""
    if isinstance(value, tuple):
        return tuple(_plant(item) for item in value)
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        return value
    changes: dict[str, object] = {}
    for f in dataclasses.fields(value):
        if not f.init:
            continue
        inner = getattr(value, f.name)
        if (type(value), f.name) in CANONICAL_FIELDS and isinstance(inner, str):
            changes[f.name] = f"PLANTED-{f.name}"
        else:
            changes[f.name] = _plant(inner)
    return dataclasses.replace(value, **changes)  # type: ignore[type-var]


def test_a_stripe_customer_is_redacted_field_by_field_and_keeps_its_ids() -> None:
    shown = redact(STRIPE_CUSTOMER)["data"]["object"]
    assert shown["id"] == "cus_1"
    assert shown["name"] == "[redacted: name]"
    assert shown["email"] == "[redacted: email]"
    assert shown["address"] == "[redacted: address]"  # the whole object
    assert shown["tax_ids"] == "[redacted: tax_id]"
    assert shown["metadata"] == "[redacted: free_text]"
    assert shown["invoice_settings"] == {"default_payment_method": "pm_1"}
    text = json.dumps(redact(STRIPE_CUSTOMER))
    for planted in ("Jane Planted-Doe", "jane@example.org", "Secret Street", "DE123456789",
                    "7946", "VIP since"):
        assert planted not in text


def test_payment_method_details_and_billing_names_are_redacted() -> None:
    shown = redact(CHARGE)
    assert shown["payment_method_details"] == "[redacted: payment_method]"
    assert shown["billing_details"] == "[redacted: payment_method]"
    assert shown["amount"] == 1000


def test_a_name_is_personal_only_in_a_person_like_object() -> None:
    assert classify("name", "customer") is Sensitivity.NAME
    assert classify("name", None, {"email": "a@b.c"}) is Sensitivity.NAME
    assert classify("name", "product") is None
    assert classify("name", "entity") is None
    assert classify("EMAIL") is Sensitivity.EMAIL


def test_a_path_is_sensitive_below_a_sensitive_key() -> None:
    assert classify_path("customer.name") is Sensitivity.NAME
    assert classify_path("invoice.lines[0].description") is Sensitivity.FREE_TEXT
    assert classify_path("data.object.address.city") is Sensitivity.ADDRESS
    assert classify_path("payment.applications[0].amount") is None


def test_text_is_scrubbed_of_the_payload_values_emails_and_credentials() -> None:
    body = json.dumps(STRIPE_CUSTOMER).encode()
    message = ("data.object.balance must be a number, not 'DE123456789'; customer Jane "
               "Planted-Doe <jane.doe+x@example.co.uk> sent Bearer abcdef123456")
    told = redact_text(message, payload_values(body))
    for planted in ("DE123456789", "Jane Planted-Doe", "jane.doe+x@example.co.uk",
                    "abcdef123456"):
        assert planted not in told
    assert "data.object.balance must be a number" in told


def test_short_values_do_not_scrub_ordinary_words() -> None:
    assert redact_text("GB is a country", {"GB"}) == "GB is a country"


def test_json_lines_and_non_json_bodies() -> None:
    lines = b'{"email": "a1@example.org"}\n{"customer_name": "Planted Person"}\n'
    assert payload_values(lines) == {"a1@example.org", "Planted Person"}
    assert payload_values(b"\xff\xfe not text") == set()
    assert payload_values(b"{broken") == set()


def test_the_user_of_a_url_is_not_an_email_address() -> None:
    for url in ("postgresql://postgres@127.0.0.1:5432/test", "postgresql://app@db.example/x"):
        assert redact_text(url) == url
    assert redact_text("mail ZELDA.P@EXAMPLE.ORG now") == "mail [redacted: email] now"
