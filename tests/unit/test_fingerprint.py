"""The frozen shape `fingerprint` hashes stays what it was first written as: every canonical
event (and the odd values a document may hold) gives the shape of the first implementation,
kept here as it was, whatever `plain` does to be fast."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum, IntEnum, StrEnum
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finsync.domain.events import CATALOGUE, AnyEvent
from finsync.domain.fingerprint import added_later, fingerprint, plain
from finsync.domain.money import Money
from finsync.domain.refs import ExternalRefs
from tests.strategies import EVENTS

CLASSES = list(CATALOGUE.values())


def first_plain(value: object) -> Any:
    """The shape as first written (before `plain` decided per type): the reference."""
    if value is None or type(value) in (str, int, bool):
        return value
    if isinstance(value, Money):
        return {"amount": str(value.amount), "currency": value.currency}
    if isinstance(value, ExternalRefs):
        return dict(value.pairs)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: first_plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                if not added_later(f) or getattr(value, f.name) != f.default}
    if isinstance(value, Enum):
        return first_plain(value.value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [first_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): first_plain(v) for k, v in value.items()}
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, str | int | bool):
        return value
    raise TypeError(f"cannot fingerprint {type(value).__name__}")


def first_fingerprint(value: object) -> str:
    text = json.dumps(first_plain(value), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("cls", CLASSES, ids=[cls.name.value for cls in CLASSES])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_event_has_the_shape_and_digest_first_written(cls: type[AnyEvent],
                                                            data: st.DataObject) -> None:
    event = data.draw(EVENTS[cls])
    assert plain(event) == first_plain(event)
    assert fingerprint(event) == first_fingerprint(event)
    assert fingerprint(event.document) == first_fingerprint(event.document)


class Colour(StrEnum):
    RED = "red"


class Level(IntEnum):
    HIGH = 3


class Label(str):
    pass


@dataclasses.dataclass(frozen=True)
class Odd:
    when: datetime
    colour: Colour
    level: Level
    label: Label
    ratio: Decimal
    names: list[str]
    table: Mapping[Any, Any]
    refs: ExternalRefs
    flag: bool = False
    later: tuple[str, ...] = dataclasses.field(default=(), metadata={"added_later": True})


def test_odd_values_have_the_shape_first_written() -> None:
    odd = Odd(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), Colour.RED, Level.HIGH, Label("x"),
              Decimal("1.50"), ["b", "a"], MappingProxyType({2: Money.of("1.00", "USD"),
                                                              "a": (date(2026, 1, 1),)}),
              ExternalRefs((("stripe", "in_1"), ("tryton", "7"))), True)
    for value in (odd, dataclasses.replace(odd, later=("kept",)), [odd, None, 2]):
        assert plain(value) == first_plain(value)
        assert fingerprint(value) == first_fingerprint(value)
    assert "later" not in plain(odd)  # type: ignore[operator]


def test_a_value_without_a_shape_is_refused() -> None:
    with pytest.raises(TypeError, match="float"):
        plain({"a": 1.5})
    with pytest.raises(TypeError, match="type"):
        plain(Odd)
