"""JSON depth and element count, checked before anything parses the text (finding 1)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from finsync.connectors.stripe.delivery import parse
from finsync.domain import json_limits
from finsync.domain.errors import MappingError
from finsync.domain.limits import InputLimits
from finsync.storage import jsonutil

SMALL = InputLimits(json_depth_max=3, json_items_max=5)
NESTED_100K = b"[" * 100_000 + b"]" * 100_000


def _code(text: str, limits: InputLimits = SMALL) -> str | None:
    try:
        json_limits.check(text, limits)
    except MappingError as exc:
        return exc.code
    return None


@pytest.mark.parametrize(("text", "code"), [
    ("[[[1]]]", None),  # depth 3: at the limit
    ("[[[[1]]]]", "json_too_deep"),
    ('{"a": {"b": {"c": {}}}}', "json_too_deep"),
    ("[[[[", "json_too_deep"),  # unterminated still counts: the parser would recurse
    ('["[[[[[[", "]]]]]]"]', None),  # brackets inside strings are text
    ('["\\"[[[[[[", "\\\\"]', None),  # an escaped quote does not end the string
    ("[1, 2, 3, 4]", None),  # 5 elements: the array and its four items
    ("[1, 2, 3, 4, 5]", "json_too_large"),
    ('{"a": 1, "b": 2, "c": 3, "d": 4}', None),  # members count once, keys are not values
    ("[[], [], [], []]", None),  # an empty container is one element
    ("[[], [], [], [], []]", "json_too_large"),
    ('"a,b,c,d,e,f"', None),  # commas inside a string are text
])
def test_depth_and_elements_are_counted_on_the_structure_only(
        text: str, code: str | None) -> None:
    assert _code(text) == code


def _values(value: Any) -> int:
    if isinstance(value, list):
        return 1 + sum(_values(v) for v in value)
    if isinstance(value, dict):
        return 1 + sum(_values(v) for v in value.values())
    return 1


def _depth(value: Any) -> int:
    if isinstance(value, list | dict):
        inner = value if isinstance(value, list) else list(value.values())
        return 1 + max((_depth(v) for v in inner), default=0)
    return 0


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='ab"\\[]{},: \n'),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner,
                                                                max_size=4),
    max_leaves=30)


@given(JSON)
def test_the_count_is_exact_for_valid_json(value: Any) -> None:
    """Elements = every value (containers included); depth = containers nested."""
    text = json.dumps(value, indent=1)
    exact = InputLimits(json_depth_max=_depth(value) or 1, json_items_max=_values(value))
    json_limits.check(text, exact)  # at the limits: accepted
    if _values(value) > 1:
        tighter = InputLimits(json_depth_max=1000, json_items_max=_values(value) - 1)
        assert _code(text, tighter) == "json_too_large"
    if _depth(value) > 1:
        shallower = InputLimits(json_depth_max=_depth(value) - 1, json_items_max=10**6)
        assert _code(text, shallower) == "json_too_deep"


def test_100k_nested_arrays_are_refused_before_the_parser_recurses() -> None:
    """Finding 1: 100,000 nested arrays raised `RecursionError` inside `json.loads`."""
    with pytest.raises(MappingError) as caught:
        jsonutil.loads(NESTED_100K, InputLimits())
    assert caught.value.code == "json_too_deep"
    assert "32 levels (json_depth_max)" in str(caught.value)
    with pytest.raises(MappingError) as stored:
        jsonutil.loads(NESTED_100K)  # no source's limits: the stored ceiling still holds
    assert stored.value.code == "json_too_deep"


def test_a_utf16_body_cannot_hide_its_brackets() -> None:
    body = ("[" * 40 + "]" * 40).encode("utf-16")
    with pytest.raises(MappingError) as caught:
        json_limits.check_body(body)
    assert caught.value.code == "json_too_deep"


def test_many_elements_are_refused_naming_the_limit() -> None:
    body = ("[" + "0," * 20_000 + "0]").encode()
    with pytest.raises(MappingError) as caught:
        jsonutil.loads(body, InputLimits())
    assert caught.value.code == "json_too_large"
    assert str(caught.value) == ("JSON of 20,002 elements exceeds the limit of 20,000 "
                                 "elements (json_items_max)")


def test_stripe_parse_refuses_deep_bodies_with_a_code() -> None:
    with pytest.raises(MappingError) as caught:
        parse(NESTED_100K)
    assert caught.value.code == "json_too_deep"
    with pytest.raises(MappingError) as broken:
        parse(b"\xff\xfe\x00")
    assert broken.value.code == "invalid_json"


def test_a_body_that_is_no_text_is_left_to_the_parser() -> None:
    json_limits.check_body(b"\xff\x00\xff")  # not JSON in any encoding: the parser says so
    with pytest.raises(ValueError):
        jsonutil.loads(b"\xff\x00\xff")


@given(st.text(alphabet='ab"[]{},: \n\\', max_size=40))
def test_the_structure_of_any_text_is_what_the_string_pattern_leaves(text: str) -> None:
    # Without a backslash the structure is cut on quotes; it must be the pattern's exactly.
    assert json_limits.structure(text) == json_limits._STRING.sub("0", text)


def _walked(text: str, limits: InputLimits) -> str | None:
    try:
        json_limits.walk(text, limits)
    except MappingError as exc:
        return exc.code
    return None


@given(st.text(alphabet='ab"[]{},: \n\\', max_size=40), st.integers(0, 8), st.integers(1, 45))
def test_a_text_passed_at_sight_passes_the_walk_too(text: str, depth: int, items: int) -> None:
    # `check` walks only a text that its counts cannot clear; one they clear never fails.
    limits = InputLimits(json_depth_max=depth, json_items_max=items)
    assert _code(text, limits) == _walked(text, limits)
