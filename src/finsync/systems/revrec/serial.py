"""A revenue contract's state as JSON and back, exactly (the service stores it this way).

Rules:
- Frozen dataclasses become objects by field name, read back through their type hints, so a
  decoded state equals the encoded one (a round-trip test runs over every golden case).
- Decimal and Money amounts travel as decimal strings, never floats; dates and instants as
  ISO text; enums by value; tuples as lists; frozensets as sorted lists.
- Only the types a state and an event are made of are supported; anything else is a
  programmer error. A field missing from the stored text takes its default (a state or an
  event stored before the field existed).
- An event is stored with its type's name (`dumps_event`/`loads_event`), so the service
  can replay a contract's events (`revrec_events`).
- A document field added later (`fingerprint.ADDED_LATER`) is left out while it holds its
  default: a request hashed before the field existed hashes the same today, and a state
  stored before it existed reads back with the default (a missing field takes its default).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any, TypeVar

from finsync.domain.fingerprint import added_later
from finsync.systems.revrec.event import RevenueEvent
from finsync.systems.revrec.state import RevenueContractState

T = TypeVar("T")
Json = Any  # a value json.dumps accepts


def encode(value: object) -> Json:
    kind: Any = type(value)  # a class is hashable; mypy's object.__hash__ says otherwise
    fields = _encoded_fields(kind)
    if fields is not None:  # an instance: a dataclass's class is of type `type`
        return {name: encode(getattr(value, name)) for name, later, default in fields
                if not (later and getattr(value, name) == default)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, date):  # datetime included
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, frozenset):
        return sorted(encode(v) for v in value)
    if isinstance(value, tuple | list):
        return [encode(v) for v in value]
    if value is None or isinstance(value, str | int | bool):
        return value
    raise TypeError(f"cannot encode {type(value).__name__}")


@cache
def _encoded_fields(cls: Any) -> tuple[tuple[str, bool, Any], ...] | None:
    """A dataclass's (name, added later, default) per field, None for any other class:
    worked out once per class, as a state holds thousands of values of a few classes."""
    if not dataclasses.is_dataclass(cls):
        return None
    return tuple((f.name, added_later(f), f.default) for f in dataclasses.fields(cls))


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def decode(tp: Any, data: Json) -> Any:
    return _decoder(tp)(data)


Decoder = Callable[[Json], Any]


@cache
def _decoder(tp: Any) -> Decoder:
    """How to read a value of type `tp`, worked out once per type (the type hints walked
    once, not for every value of a state)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        return _optional(args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item = _decoder(args[0])
            return lambda data: tuple(item(v) for v in data)
        items = tuple(_decoder(a) for a in args)
        return lambda data: tuple(d(v) for d, v in zip(items, data, strict=True))
    if origin is frozenset:
        member = _decoder(args[0])
        return lambda data: frozenset(member(v) for v in data)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass_decoder(tp)
    return _scalar(tp)


def _optional(args: tuple[Any, ...]) -> Decoder:
    inner = [a for a in args if a is not type(None)]
    nullable = type(None) in args

    def read(data: Json) -> Any:
        if data is None and nullable:
            return None
        (one,) = inner
        return _decoder(one)(data)
    return read


def _dataclass_decoder(cls: type) -> Decoder:
    """Fields are looked up at the first value read, so a class that (indirectly) holds
    itself does not recurse here; the list is published whole, so a thread reading at the
    same moment never sees part of it."""
    known: list[tuple[str, Decoder]] | None = None

    def read(data: Json) -> Any:
        nonlocal known
        fields = known
        if fields is None:
            hints = _hints(cls)
            fields = known = [(f.name, _decoder(hints[f.name]))
                              for f in dataclasses.fields(cls) if f.init]
        # A field missing from the stored text was added later: it takes its default.
        return cls(**{name: field(data[name]) for name, field in fields if name in data})
    return read


def _scalar(tp: Any) -> Decoder:
    if isinstance(tp, type) and issubclass(tp, Enum):
        return tp
    if tp is datetime:
        return datetime.fromisoformat
    if tp is date:
        return date.fromisoformat
    if tp is Decimal:
        return Decimal
    if tp in (str, int, bool):
        def checked(data: Json) -> Any:
            if not isinstance(data, tp):
                raise TypeError(f"expected {tp.__name__}, got {data!r}")
            return data
        return checked

    def refused(data: Json) -> Any:
        raise TypeError(f"cannot decode {tp!r}")
    return refused


def dumps_state(state: RevenueContractState) -> str:
    return json.dumps(encode(state), separators=(",", ":"), sort_keys=True)


def loads_state(text: str) -> RevenueContractState:
    state: RevenueContractState = decode(RevenueContractState, json.loads(text))
    return state


# Every kind the engine applies, by class name (the union is the one list of them).
EVENT_TYPES: dict[str, type[Any]] = {cls.__name__: cls for cls in typing.get_args(RevenueEvent)}


def dumps_event(event: RevenueEvent) -> tuple[str, str]:
    """(type name, JSON) of an event, as `revrec_events` keeps it."""
    return type(event).__name__, json.dumps(encode(event), separators=(",", ":"),
                                           sort_keys=True)


def loads_event(type_name: str, text: str) -> RevenueEvent:
    event: RevenueEvent = decode(EVENT_TYPES[type_name], json.loads(text))
    return event
