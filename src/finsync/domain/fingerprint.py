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
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from enum import Enum
from types import MappingProxyType
from typing import cast

from finsync.domain.money import Money
from finsync.domain.refs import ExternalRefs

Plain = dict[str, "Plain"] | list["Plain"] | str | int | bool | None

# `field(default=None, metadata=ADDED_LATER)`: see the module's rule.
ADDED_LATER: Mapping[str, bool] = MappingProxyType({"added_later": True})

# The field names of each dataclass met so far: asking `dataclasses` every time is most of
# the cost of a fingerprint, and ledgers take one per posting.
_FIELDS: dict[type, tuple[str, ...]] = {}
# The fields added later, with their defaults, per dataclass that has any.
_LATER: dict[type, dict[str, object]] = {}


def plain(value: object) -> Plain:
    """The value in the frozen shape that `fingerprint` hashes."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value  # type: ignore[return-value]
    if isinstance(value, Money):
        return {"amount": str(value.amount), "currency": value.currency}
    if kind is tuple:  # the commonest others by exact type, ahead of the general checks
        return [plain(v) for v in cast(tuple[object, ...], value)]
    if kind is date:
        return cast(date, value).isoformat()
    names = _FIELDS.get(kind)
    if names is None and isinstance(value, ExternalRefs):
        return dict(value.pairs)
    if names is None and dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = _learn(kind)
    if names is not None:
        later = _LATER.get(kind)
        if later is None:
            return {name: plain(getattr(value, name)) for name in names}
        return {name: plain(getattr(value, name)) for name in names
                if name not in later or getattr(value, name) != later[name]}
    if isinstance(value, Enum):
        return plain(value.value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, Decimal):
        return str(value)
    if value is None or isinstance(value, str | int | bool):
        return value
    raise TypeError(f"cannot fingerprint {type(value).__name__}")


def added_later(f: dataclasses.Field[object]) -> bool:
    """Whether a dataclass field was declared with `ADDED_LATER`."""
    return bool(f.metadata.get("added_later"))


def _learn(kind: type) -> tuple[str, ...]:
    fields = dataclasses.fields(kind)
    names = tuple(f.name for f in fields)
    later = {f.name: f.default for f in fields if added_later(f)}
    if later:
        _LATER[kind] = later
    _FIELDS[kind] = names
    return names


def fingerprint(value: object) -> str:
    """sha256 of the value's frozen shape (sorted keys)."""
    return hashlib.sha256(json.dumps(plain(value), sort_keys=True).encode()).hexdigest()
