"""Limits on what a source may send: everything from outside is bounded (STYLE: "put a
limit on everything").

Rules:
- One `InputLimits` per intake source, from `[limits]` in the configuration (defaults suit a
  real webhook source); a refusal names the limit and its value.
- Body size, JSON nesting and element count are checked before a body is parsed; rates of
  requests at the HTTP boundary; string lengths, amounts and dates on the typed event
  (`check_draft`, `check_event`), after the codec's own wire rules (`domain.codec`: the
  amount grammar, decimal places, `AMOUNT_CEILING`). Each refusal is a `MappingError` with
  its own code, naming the path the wire gives the value (`invoice.lines[0].description`).
- The check sees every value: it walks the event by the codec's walk of an object's fields
  (`codec.fields`), so a field added to a document is bounded without a change here.
- Amounts (`amount_out_of_range`): at most `amount_max` in absolute value, in any
  currency's major units; contract prices included.
- Dates (`date_out_of_range`): within `[received - years_back, received + years_ahead]`,
  where `received` is the day the hub stored the raw event; the envelope's `occurred_at`
  too. A payment dated 9999 or 1900 names no period that exists.
- Strings (`string_too_long`): a field named in `TEXT_FIELDS` is free text, at most
  `text_max_chars`; every other string (ids, codes, keys, both sides of an external
  reference or a dimension, the envelope's header) at most `id_max_chars`.
- Characters: no C0 control character but tab, line feed and carriage return
  (`control_character`; PostgreSQL cannot store NUL in text, and one such value used to fail
  its whole batch), and no unpaired UTF-16 surrogate, which a JSON escape can spell but no
  database can store as UTF-8 (`unpaired_surrogate`).
- Integers (`integer_out_of_range`): a version (`VERSION_FIELDS`, the envelope's aggregate
  version) at most `VERSION_MAX`, the hub's 32-bit version column; any other integer (a
  quantity, a count) at most `COUNT_MAX` in absolute value, so a quantity times a price
  stays exact. A number that is no amount (a tax rate) is finite, at most `COUNT_MAX`,
  with at most `DECIMAL_PLACES_MAX` decimal places (`number_out_of_range`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import MAXYEAR, MINYEAR, date
from decimal import Decimal
from enum import Enum
from typing import Any

from finsync.domain import amount, codec
from finsync.domain.envelope import DraftEnvelope
from finsync.domain.errors import MappingError
from finsync.domain.events import AnyEvent
from finsync.domain.money import Money
from finsync.domain.refs import ExternalRefs

# The hub's id columns hold 255 characters: no source may allow longer ids (config caps
# `id_max_chars` here), and what the hub itself writes into an id field stays within it.
ID_MAX_CHARS = 255


@dataclass(frozen=True, slots=True)
class InputLimits:
    body_max_bytes: int = 1 << 20
    json_depth_max: int = 32
    json_items_max: int = 20_000
    id_max_chars: int = ID_MAX_CHARS  # ids, codes, keys
    text_max_chars: int = 4_000  # names, descriptions, memos, reasons
    amount_max: Decimal = Decimal("1000000000000")  # 1e12 major units
    years_back: int = 30
    years_ahead: int = 30
    requests_per_s: float = 100.0  # sustained, per source
    burst: int = 200  # requests above the sustained rate that are let through at once


# Fields of free text, by the name the wire gives them; every other string is an id.
TEXT_FIELDS = frozenset({"name", "description", "memo", "reason", "before", "after",
                         "attribute"})
VERSION_FIELDS = frozenset({"version", "contract_version"})
VERSION_MAX = 2**31 - 1
COUNT_MAX = 10**12

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_REFUSED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")  # either of the two


@dataclass(frozen=True, slots=True)
class _Rules:
    limits: InputLimits
    received_on: date
    first_day: date
    last_day: date


SYSTEM_NAME_MAX = 64


def check_draft(draft: DraftEnvelope, limits: InputLimits, received_on: date) -> None:
    """Refuse an envelope with a header value or an event value out of bounds."""
    rules = _rules(limits, received_on)
    aggregate = draft.claimed
    headers = {"source": draft.source, "source_event_id": draft.source_event_id,
               "correlation_id": draft.correlation_id, "causation_id": draft.causation_id,
               "business_key": draft.business_key, "aggregate.type": aggregate.type,
               "aggregate.id": aggregate.id}
    for key, value in headers.items():
        if value is None:
            continue
        if key == "source":  # a system's name: the hub's columns hold 64 characters
            _check_string(value, "envelope.source", SYSTEM_NAME_MAX, "SYSTEM_NAME_MAX")
        _check_string(value, f"envelope.{key}", rules.limits.id_max_chars, "id_max_chars")
    if aggregate.version is not None:
        _check_integer(aggregate.version, "envelope.aggregate.version", "version")
    _check_date(draft.occurred_at.date(), "envelope.occurred_at", rules)
    _check_value(draft.event, "", "", rules)


def check_event(event: AnyEvent, limits: InputLimits, received_on: date) -> None:
    """Refuse an event with a value out of bounds (see the module rules)."""
    _check_value(event, "", "", _rules(limits, received_on))


def _rules(limits: InputLimits, received_on: date) -> _Rules:
    return _Rules(limits, received_on, _years_from(received_on, -limits.years_back),
                  _years_from(received_on, limits.years_ahead))


def _years_from(day: date, years: int) -> date:
    """The same day `years` later (earlier when negative); 29 February becomes the 28th."""
    year = min(max(day.year + years, MINYEAR), MAXYEAR)
    try:
        return day.replace(year=year)
    except ValueError:
        return day.replace(year=year, day=28)


def _check_value(value: object, path: str, name: str, rules: _Rules) -> None:
    """One value, by its kind; `name` is the field that holds it (a tuple's items share it)."""
    kind = type(value)
    check = _CHECKS.get(kind)
    if check is None:
        check = _CHECKS[kind] = _check_of(kind)
    check(value, path, name, rules)


Check = Callable[[Any, str, str, _Rules], None]
# The check of each type met, worked out once (the tests below, in this order, hold for
# every value of a type).
_CHECKS: dict[type, Check] = {}


def _check_of(kind: type) -> Check:
    if kind is type(None) or issubclass(kind, bool | Enum):
        return _unchecked  # enums hold known values only
    if issubclass(kind, Money):
        return lambda value, path, _, rules: _check_amount(value, path, rules.limits)
    if issubclass(kind, ExternalRefs):
        return _check_refs
    if issubclass(kind, str):
        return _check_text
    if issubclass(kind, int):
        return lambda value, path, name, _: _check_integer(value, path, name)
    if issubclass(kind, Decimal):
        return lambda value, path, _, __: _check_decimal(value, path)
    if issubclass(kind, date):
        return lambda value, path, _, rules: _check_date(value, path, rules)
    if issubclass(kind, tuple):
        return _check_items
    if dataclasses.is_dataclass(kind) and not issubclass(kind, type):
        return _check_fields
    return _no_rule


def _unchecked(value: object, path: str, name: str, rules: _Rules) -> None:
    return None


def _no_rule(value: object, path: str, name: str, rules: _Rules) -> None:
    raise TypeError(f"{path}: the input check has no rule for {type(value).__name__}")


def _check_refs(value: ExternalRefs, path: str, name: str, rules: _Rules) -> None:
    for system, ref in value.pairs:
        _check_string(system, f"{path} (system name)", rules.limits.id_max_chars,
                      "id_max_chars")
        _check_string(ref, f"{path}.{system}", rules.limits.id_max_chars, "id_max_chars")


def _check_text(value: str, path: str, name: str, rules: _Rules) -> None:
    if name in TEXT_FIELDS:
        _check_string(value, path, rules.limits.text_max_chars, "text_max_chars")
    else:
        _check_string(value, path, rules.limits.id_max_chars, "id_max_chars")


def _check_items(value: tuple[object, ...], path: str, name: str, rules: _Rules) -> None:
    for n, item in enumerate(value):
        _check_value(item, f"{path}[{n}]", name, rules)


def _check_fields(value: object, path: str, name: str, rules: _Rules) -> None:
    for key, inner in codec.fields(value):
        _check_value(inner, f"{path}.{key}" if path else key, key, rules)


DECIMAL_PLACES_MAX = 12  # a number that is no amount (a tax rate): its decimal places


def _check_decimal(value: Decimal, path: str) -> None:
    """A number that is no amount (a tax rate): finite, at most `COUNT_MAX` in absolute
    value, at most `DECIMAL_PLACES_MAX` decimal places."""
    exponent = value.as_tuple().exponent
    if not value.is_finite() or abs(value) > COUNT_MAX or (
            isinstance(exponent, int) and exponent < -DECIMAL_PLACES_MAX):
        raise MappingError(f"{path} {value} is out of range: a finite number of at most "
                           f"{DECIMAL_PLACES_MAX} decimal places (DECIMAL_PLACES_MAX), at "
                           f"most {COUNT_MAX} (COUNT_MAX)", code="number_out_of_range")


def _check_amount(money: Money, path: str, limits: InputLimits) -> None:
    if abs(money.amount) > limits.amount_max:
        raise MappingError(f"{path} {amount.plain(money.amount)} {money.currency} is out of "
                           f"range: at most {limits.amount_max:,f} in absolute value "
                           "(amount_max)", code="amount_out_of_range")


def _check_date(day: date, path: str, rules: _Rules) -> None:
    if not rules.first_day <= day <= rules.last_day:
        limits = rules.limits
        raise MappingError(f"{path} {day} is outside {rules.first_day} .. {rules.last_day}: "
                           f"within {limits.years_back} years before (years_back) and "
                           f"{limits.years_ahead} after (years_ahead) the day it was "
                           f"received, {rules.received_on}", code="date_out_of_range")


def _check_integer(value: int, path: str, name: str) -> None:
    if name in VERSION_FIELDS:
        bound, limit = VERSION_MAX, "VERSION_MAX"
    else:
        bound, limit = COUNT_MAX, "COUNT_MAX"
    if abs(value) > bound:
        raise MappingError(f"{path} {amount.shown(value)} is out of range: at most {bound:,} in "
                           f"absolute value ({limit})", code="integer_out_of_range")


def _check_string(value: str, path: str, chars_max: int, limit: str) -> None:
    if len(value) > chars_max:
        raise MappingError(f"{path} has {len(value):,} characters: at most {chars_max:,} "
                           f"({limit})", code="string_too_long")
    if _REFUSED.search(value) is None:
        return  # the common case: one scan finds neither kind of character
    control = _CONTROL.search(value)
    if control is not None:
        raise MappingError(f"{path} holds the control character "
                           f"U+{ord(control.group()):04X} at position {control.start()}: "
                           "only tab, line feed and carriage return are allowed",
                           code="control_character")
    surrogate = _SURROGATE.search(value)
    if surrogate is not None:
        raise MappingError(f"{path} holds an unpaired surrogate "
                           f"U+{ord(surrogate.group()):04X} at position {surrogate.start()}, "
                           "which is no character", code="unpaired_surrogate")
