"""Redacted excerpts: the shape and the identifiers stay, personal data and credentials go."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from finsync.connectors.excerpt import EXCERPT_MAX, ITEMS_MAX, redacted


def test_identifiers_amounts_and_shape_stay_personal_strings_go() -> None:
    customer = {"id": "cus_123", "object": "customer", "name": "Ada Lovelace",
                "email": "ada@example.com", "address": {"line1": "12 Analytical Row"},
                "balance": 1200, "livemode": False, "metadata": {"note": "VIP, call Ada"}}
    shown = json.loads(redacted(customer))
    assert shown["id"] == "cus_123" and shown["object"] == "customer"
    assert shown["balance"] == 1200 and shown["livemode"] is False
    assert shown["name"] == "<str:12>" and shown["email"] == "<str:15>"
    assert shown["address"] == {"line1": "<str:17>"}
    text = redacted(customer)
    for planted in ("Ada", "Lovelace", "example.com", "Analytical", "VIP"):
        assert planted not in text


def test_an_email_is_masked_even_under_an_identifier_key() -> None:
    assert json.loads(redacted({"customer": "ada@example.com"})) == {"customer": "<str:15>"}


def test_secrets_are_redacted_by_key_and_by_look() -> None:
    sent = {"password": "hunter2", "params": ["admin", {"password": "hunter2"}],
            "Authorization": "Session YWRtaW46MTox", "api_key": 42,
            "id": "sk_test_4eC39HqLyjWDarjtT1zdp7dc", "note": "Bearer fsk_abcdefghijkl",
            "token": {"nested": "x"}}
    text = redacted(sent)
    for planted in ("hunter2", "YWRtaW46MTox", "sk_test_4eC39", "fsk_abcdefghijkl"):
        assert planted not in text
    shown = json.loads(text)
    assert shown["password"] == shown["Authorization"] == shown["api_key"] == "<redacted>"
    assert shown["id"] == shown["note"] == shown["token"] == "<redacted>"
    assert shown["params"] == ["<str:5>", {"password": "<redacted>"}]


def test_tryton_tagged_values_and_python_values_keep_amounts_and_dates() -> None:
    sent = [{"debit": {"__class__": "Decimal", "decimal": "120.00"},
             "date": date(2026, 5, 15), "credit": Decimal("0.00"),
             "description": "finsync:evt_1:ledger#ab12"}]
    assert json.loads(redacted(sent)) == [{
        "debit": {"__class__": "Decimal", "decimal": "120.00"}, "date": "2026-05-15",
        "credit": "0.00", "description": "<str:25>"}]


def test_json_bytes_are_parsed_and_other_bytes_only_counted() -> None:
    assert json.loads(redacted(b'{"id": "in_1", "customer_name": "Ada"}')) == {
        "id": "in_1", "customer_name": "<str:3>"}
    assert json.loads(redacted(b"\xff\x00not json")) == "<10 bytes, not JSON>"


def test_lists_depth_and_size_are_bounded() -> None:
    listing = {"data": [{"id": f"in_{n}"} for n in range(ITEMS_MAX + 3)]}
    shown = json.loads(redacted(listing))["data"]
    assert len(shown) == ITEMS_MAX + 1 and shown[-1] == "+3 more"
    deep: object = "leaf"
    for _ in range(20):
        deep = {"a": deep}
    assert '"…"' in redacted(deep)
    wide = [{f"key_{n:04}": n for n in range(40)} for _ in range(5)]
    assert len(redacted(wide)) == EXCERPT_MAX


@given(st.recursive(st.text(min_size=8).filter(lambda t: t.isprintable()) | st.integers(),
                    lambda children: st.lists(children, max_size=4)
                    | st.dictionaries(st.sampled_from(["name", "email", "line1", "memo"]),
                                      children, max_size=4),
                    max_leaves=12))
def test_no_string_under_a_personal_key_survives(value: object) -> None:
    """Whatever the nesting, strings of eight characters or more under keys that are not
    identifiers never appear in the excerpt."""
    text = json.loads(redacted(value))

    def strings(node: object) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, dict):
            return [s for v in node.values() for s in strings(v)]
        if isinstance(node, list):
            return [s for v in node for s in strings(v)]
        return []

    assert all(s.startswith("<") or s.startswith("+") or s == "…" for s in strings(text))


def test_an_object_keeps_its_first_keys_and_counts_the_rest() -> None:
    shown = json.loads(redacted({f"k{n}": n for n in range(100)}))
    assert len(shown) == 41 and shown["k0"] == 0 and shown["…"] == "+60 more keys"
