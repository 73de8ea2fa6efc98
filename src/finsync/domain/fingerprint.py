"""A stable digest of a domain value: what a target stores beside an idempotency key to
tell "the same request again" from "another request under the same key".

Rule: the shape hashed is frozen. Ledgers and ERPs keep these digests for every posting, so
a change here would make every replay look like a different request. It is not a wire
format (nothing reads it back): money is `{amount, currency}`, dataclasses are objects of
their fields, enums their values, dates ISO, tuples lists, `ExternalRefs` a plain object.
A field added to a document after its digests were kept is declared with `ADDED_LATER` in
its metadata: it is left out of the shape while it holds its default, so every document
that does not use it keeps the digest it had (the codec leaves it out of a payload alike,
so a stored event encodes to the payload it was stored with).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import Enum
from json.encoder import encode_basestring_ascii as _quoted
from types import MappingProxyType
from typing import Any, cast

from finsync.domain.money import Money
from finsync.domain.refs import ExternalRefs

Plain = dict[str, "Plain"] | list["Plain"] | str | int | bool | None

# `field(default=None, metadata=ADDED_LATER)`: see the module's rule.
ADDED_LATER: Mapping[str, bool] = MappingProxyType({"added_later": True})

# How each type met so far becomes its shape, decided once per type: what `plain` does
# depends on a value's type alone, and asking `dataclasses` (or walking the checks below)
# for every value was most of the cost of a fingerprint; ledgers take one per posting.
_SHAPES: dict[type, _Shape] = {}
# Each shape's text writer by type alone, one look-up from a value to its text.
_TEXTS: dict[type, Callable[[Any], str]] = {}


@dataclass(frozen=True, slots=True)
class _Shape:
    """A type's shape twice over: as plain values (`plain`), and as the very text
    `json.dumps(plain(value), sort_keys=True)` writes of them, keys sorted once per type
    (`fingerprint`: building the plain values and then encoding them cost twice as much)."""

    plain: Callable[[Any], Plain]
    text: Callable[[Any], str]


def plain(value: object) -> Plain:
    """The value in the frozen shape that `fingerprint` hashes."""
    return _shape(type(value)).plain(value)


def _text(value: object) -> str:
    write = _TEXTS.get(type(value))
    if write is None:
        write = _TEXTS[type(value)] = _shape(type(value)).text
    return write(value)


def _shape(kind: type) -> _Shape:
    shape = _SHAPES.get(kind)
    if shape is None:
        shape = _SHAPES[kind] = _shape_of(kind)
    return shape


def _shape_of(kind: type) -> _Shape:
    """How values of `kind` are shaped; the checks in the order the frozen shape was first
    written in (a Money before a dataclass, `ExternalRefs` before a dataclass or a mapping,
    an enum before its value's type)."""
    if kind is bool:
        return _Shape(_itself, _boolean)
    if kind is type(None):
        return _Shape(_itself, _null)
    if issubclass(kind, Money):
        return _Shape(_money, _money_text)
    if kind is date:
        return _Shape(_iso, _iso_text)
    if issubclass(kind, ExternalRefs):
        return _Shape(_refs, _refs_text)
    if dataclasses.is_dataclass(kind):
        return _object(kind)
    if issubclass(kind, Enum):
        return _Shape(_enum, _enum_text)
    if issubclass(kind, date):
        return _Shape(_iso, _iso_text)
    if issubclass(kind, tuple | list):
        return _Shape(_list, _list_text)
    if issubclass(kind, Mapping):
        return _Shape(_mapping, _mapping_text)
    if issubclass(kind, Decimal):
        return _Shape(str, _decimal_text)
    if issubclass(kind, str):
        return _Shape(_itself, _quoted)
    if issubclass(kind, int):
        return _Shape(_itself, int.__repr__)
    return _Shape(_refused, _refused)


def _itself(value: Any) -> Plain:
    return cast(Plain, value)


def _boolean(value: bool) -> str:
    return "true" if value else "false"


def _null(value: None) -> str:
    return "null"


def _money(value: Money) -> Plain:
    return {"amount": str(value.amount), "currency": value.currency}


def _money_text(value: Money) -> str:
    return f'{{"amount": {_quoted(str(value.amount))}, "currency": {_quoted(value.currency)}}}'


def _list(value: Any) -> Plain:
    return [plain(v) for v in value]


def _list_text(value: Any) -> str:
    return "[" + ", ".join([_text(v) for v in value]) + "]"


def _iso(value: date) -> Plain:
    return value.isoformat()


def _iso_text(value: date) -> str:
    return _quoted(value.isoformat())


def _refs(value: ExternalRefs) -> Plain:
    return dict(value.pairs)


def _refs_text(value: ExternalRefs) -> str:
    return json.dumps(_refs(value), sort_keys=True) if value.pairs else "{}"


def _enum(value: Enum) -> Plain:
    return plain(value.value)


def _enum_text(value: Enum) -> str:
    return _text(value.value)


def _mapping(value: Mapping[object, object]) -> Plain:
    return {str(k): plain(v) for k, v in value.items()}


def _mapping_text(value: Mapping[object, object]) -> str:
    return json.dumps(_mapping(value), sort_keys=True)


def _decimal_text(value: Decimal) -> str:
    return _quoted(str(value))


def _refused(value: object) -> Any:
    raise TypeError(f"cannot fingerprint {type(value).__name__}")


def _object(kind: type) -> _Shape:
    """A dataclass as the object of its fields, a field added later left out while it
    holds its default."""
    fields = dataclasses.fields(kind)
    names = tuple(f.name for f in fields)
    later = {f.name: f.default for f in fields if added_later(f)}
    # The text's keys in sorted order, each written once: (name, '"name": ').
    keys = tuple((name, f"{_quoted(name)}: ") for name in sorted(names))

    def shaped(value: Any) -> Plain:
        result: dict[str, Plain] = {}
        for name in names:
            item = getattr(value, name)
            if name in later and item == later[name]:
                continue
            result[name] = plain(item)
        return result

    def text(value: Any) -> str:
        parts = []
        for name, key in keys:
            item = getattr(value, name)
            if name in later and item == later[name]:
                continue
            write = _TEXTS.get(type(item))  # `_text`, inline: a call less per field
            parts.append(key + (_text(item) if write is None else write(item)))
        return "{" + ", ".join(parts) + "}"

    return _Shape(shaped, text)


def added_later(f: dataclasses.Field[object]) -> bool:
    """Whether a dataclass field was declared with `ADDED_LATER`."""
    return bool(f.metadata.get("added_later"))


def fingerprint(value: object) -> str:
    """sha256 of the value's frozen shape as JSON (`json.dumps(plain(value),
    sort_keys=True)`, written directly)."""
    return hashlib.sha256(_text(value).encode()).hexdigest()
