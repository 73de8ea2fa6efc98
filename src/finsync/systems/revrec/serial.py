"""A revenue contract's state as JSON and back, exactly (the service stores it this way).

Rules:
- Frozen dataclasses become objects by field name, read back through their type hints, so a
  decoded state equals the encoded one (a round-trip test runs over every golden case).
- Decimal and Money amounts travel as decimal strings, never floats; dates and instants as
  ISO text; enums by value; tuples as lists; frozensets as sorted lists.
- Only the types a state is made of are supported; anything else is a programmer error.
- A document field added later (`fingerprint.ADDED_LATER`) is left out while it holds its
  default: a request hashed before the field existed hashes the same today.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any, TypeVar

from finsync.domain.fingerprint import added_later
from finsync.systems.revrec.state import RevenueContractState

T = TypeVar("T")
Json = Any  # a value json.dumps accepts


def encode(value: object) -> Json:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)
                if not (added_later(f) and getattr(value, f.name) == f.default)}
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
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def decode(tp: Any, data: Json) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        if data is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return decode(inner, data)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(decode(args[0], v) for v in data)
        return tuple(decode(a, v) for a, v in zip(args, data, strict=True))
    if origin is frozenset:
        return frozenset(decode(args[0], v) for v in data)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        return tp(**{f.name: decode(hints[f.name], data[f.name])
                     for f in dataclasses.fields(tp) if f.init and _present(f, data)})
    return _scalar(tp, data)


def _present(f: dataclasses.Field[Any], data: Json) -> bool:
    """A field added later is absent while it held its default: the default is taken."""
    return f.name in data or not added_later(f)


def _scalar(tp: Any, data: Json) -> Any:
    if isinstance(tp, type) and issubclass(tp, Enum):
        return tp(data)
    if tp is datetime:
        return datetime.fromisoformat(data)
    if tp is date:
        return date.fromisoformat(data)
    if tp is Decimal:
        return Decimal(data)
    if tp in (str, int, bool):
        if not isinstance(data, tp):
            raise TypeError(f"expected {tp.__name__}, got {data!r}")
        return data
    raise TypeError(f"cannot decode {tp!r}")


def dumps_state(state: RevenueContractState) -> str:
    return json.dumps(encode(state), separators=(",", ":"), sort_keys=True)


def loads_state(text: str) -> RevenueContractState:
    state: RevenueContractState = decode(RevenueContractState, json.loads(text))
    return state
