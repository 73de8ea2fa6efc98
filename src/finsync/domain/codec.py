"""The one codec of canonical events: domain objects to JSON and back, exactly.

Rules (docs/events.md §2-3):
- Type-driven: a frozen dataclass is an object of its fields, read back through its type
  hints, so `decode(type(x), encode(x)) == x` for every canonical document and event (a
  hypothesis test proves it per event class). Each wire rule below is written once, its
  writer beside its reader.
- Money is a decimal string in the currency in scope: the `currency` field of the object
  (or of an enclosing one). An object with money and no currency in scope carries its own
  `currency` key (payments, refunds, rated usage). A journal line names the currency of
  each amount (`currency`, `transaction_currency`). A bare amount, outside any object, is
  `{amount, currency}`.
- The amount string is strict (`domain.amount`): a document amount is at its currency's
  minor units; a contract price (`_PRICES`) may be finer (billing restates annual prices
  per quarter). Money is written in the same plain notation. The configured `amount_max`
  is checked later, on the typed event (`domain.limits`).
- Dates are ISO dates; enums travel by value; tuples as lists; `ExternalRefs` as the object
  `external_refs` (system -> id). Strings are non-empty; integers are never booleans.
- A field with a default may be absent or null; a tuple absent is empty; anything else
  missing or malformed is a `MappingError` naming its path, never a default. A domain rule
  that a payload breaks is that payload's mapping error. A field added to a document after
  events were stored (`fingerprint.ADDED_LATER`) is written only when it differs from its
  default, so a stored event encodes to the payload it was stored with.
- Old payload versions are upcast on read (each event class lists its steps), so every later
  stage sees the current shape; a newer version than finsync knows is refused.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from datetime import date
from decimal import Decimal
from enum import Enum
from typing import Any, TypeVar, cast

from finsync.domain.aggregate import AggregateRef
from finsync.domain.amount import (
    check_document_amount,
    check_price_digits,
    parse_amount,
    plain,
)
from finsync.domain.clock import parse_date, parse_utc
from finsync.domain.commercial import CommercialLine, CommercialRampStep, OrderLine
from finsync.domain.contract import ContractLine, RampStep
from finsync.domain.envelope import DraftEnvelope, Envelope
from finsync.domain.errors import DomainError, MappingError
from finsync.domain.events import AnyEvent, event_class
from finsync.domain.fingerprint import added_later
from finsync.domain.journal import JournalLine, Side
from finsync.domain.money import Money, exponent
from finsync.domain.refs import ExternalRefs

JsonValue = dict[str, "JsonValue"] | list["JsonValue"] | str | int | bool | None
JsonObject = dict[str, JsonValue]
T = TypeVar("T")

_REFS_KEY = "external_refs"
# Money fields that are prices, not document amounts: they may be finer than minor units
# (a usage price per API call, 0.002; CPQ's unit price scale).
_PRICES = frozenset({(ContractLine, "unit_price"), (RampStep, "unit_price"),
                     (CommercialLine, "list_unit_price"), (CommercialLine, "net_unit_price"),
                     (CommercialRampStep, "net_unit_price"), (OrderLine, "unit_price")})


# -- values ---------------------------------------------------------------------------------

def encode(value: object, currency: str | None = None) -> JsonValue:
    """A domain value as JSON data (`currency` is the one in scope for its money)."""
    kind = type(value)
    writer = _WRITERS.get(kind)
    if writer is None:
        writer = _WRITERS[kind] = _writer(kind)
    return writer(value, currency)


Writer = Callable[[Any, "str | None"], JsonValue]
# The writer of each type met, worked out once (the checks below, in this order, hold for
# every value of a type): a walk of the same event types again and again.
_WRITERS: dict[type, Writer] = {}


def _writer(kind: type) -> Writer:
    if issubclass(kind, Money):
        return _write_money
    if issubclass(kind, ExternalRefs):
        return lambda value, _: dict(value.pairs)
    if issubclass(kind, JournalLine):
        return lambda value, _: _write_journal_line(value)
    if dataclasses.is_dataclass(kind) and not issubclass(kind, type):
        return _write_object
    if issubclass(kind, Enum):
        return lambda value, _: cast(JsonValue, value.value)
    if issubclass(kind, date):
        return lambda value, _: value.isoformat()
    if issubclass(kind, Decimal):
        return lambda value, _: str(value)
    if issubclass(kind, tuple | list):
        return lambda value, currency: [encode(v, currency) for v in value]
    if kind is type(None) or issubclass(kind, str | int | bool):
        return lambda value, _: cast(JsonValue, value)
    return _unwritable


def _unwritable(value: object, _: str | None) -> JsonValue:
    raise TypeError(f"the codec has no wire shape for {type(value).__name__}")


def decode(tp: type[T], data: object, path: str, currency: str | None = None) -> T:
    """The value of type `tp` that `encode` wrote; `path` names it in errors."""
    return cast(T, _read(tp, data, path, currency))


def _read(tp: Any, data: object, path: str, currency: str | None,
          price: bool = False) -> object:
    return _reader_of(tp, price)(data, path, currency)


def _reader_of(tp: Any, price: bool = False) -> Reader:
    reader = _READERS.get((tp, price))
    if reader is None:
        reader = _READERS[(tp, price)] = _reader(tp, price)
    return reader


Reader = Callable[[object, str, "str | None"], object]
# The reader of each (type hint, is a price) met, worked out once: hints are looked into
# (origin, arguments, dataclass or not) per type, not per value read.
_READERS: dict[tuple[Any, bool], Reader] = {}


def _reader(tp: Any, price: bool) -> Reader:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        return _optional_reader(args, price)
    if origin is tuple:
        return _tuple_reader(args)
    if tp is Money:
        return lambda data, path, currency: _read_money(data, path, currency, price)
    if tp is ExternalRefs:
        return lambda data, path, _: _read_refs(data, path)
    if tp is JournalLine:
        return lambda data, path, _: _read_journal_line(data, path)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return lambda data, path, currency: _read_object(tp, data, path, currency)
    if tp is str:
        return _read_str
    if isinstance(tp, type) and issubclass(tp, Enum):
        return lambda data, path, _: _read_enum(tp, data, path)
    return lambda data, path, _: _read_scalar(tp, data, path)


def _read_str(data: object, path: str, _: str | None) -> object:
    if not isinstance(data, str) or not data:
        raise MappingError(f"{path} must be a non-empty string")
    return data


def _optional_reader(args: tuple[Any, ...], price: bool) -> Reader:
    nullable = type(None) in args
    others = [a for a in args if a is not type(None)]

    def read(data: object, path: str, currency: str | None) -> object:
        if data is None and nullable:
            return None
        (inner,) = others
        return _reader_of(inner, price)(data, path, currency)
    return read


def _tuple_reader(args: tuple[Any, ...]) -> Reader:
    """A tuple's reader; its items' readers are looked up at its first read (a type may
    hold tuples of itself), and published whole: a thread that reads at the same time sees
    none (and looks them up too) or all of them, never part."""
    items: list[Reader] = []

    def read(data: object, path: str, currency: str | None) -> object:
        if not items:
            items[:] = [_reader_of(a) for a in args if a is not Ellipsis]
        return _read_tuple(args, items, data, path, currency)
    return read


def _read_tuple(args: tuple[Any, ...], items: list[Reader], data: object, path: str,
                currency: str | None) -> tuple[object, ...]:
    if not isinstance(data, list):
        raise MappingError(f"{path} must be a list")
    if len(args) == 2 and args[1] is Ellipsis:
        read = items[0]
        return tuple([read(v, f"{path}[{i}]", currency) for i, v in enumerate(data)])
    if len(data) != len(args):
        raise MappingError(f"{path} must be a list of {len(args)} items")
    return tuple([read(v, f"{path}[{i}]", currency)
                  for i, (read, v) in enumerate(zip(items, data, strict=True))])


def _read_enum(tp: type[Enum], data: object, path: str) -> object:
    try:
        return tp(data)
    except ValueError:
        known = ", ".join(str(m.value) for m in tp)
        raise MappingError(f"{path} {data!r} is not known (one of: {known})") from None


def _read_scalar(tp: Any, data: object, path: str) -> object:
    """A scalar other than a string or an enum (`_reader` reads those itself)."""
    if tp is bool:
        if not isinstance(data, bool):
            raise MappingError(f"{path} must be true or false")
        return data
    if tp is int:
        if not isinstance(data, int) or isinstance(data, bool):
            raise MappingError(f"{path} must be an integer")
        return data
    if tp is date:
        try:
            return parse_date(str(_read_str(data, path, None)))
        except DomainError as exc:
            raise MappingError(f"{path}: {exc}") from exc
    if tp is Decimal:
        return Decimal(str(_read_str(data, path, None)))
    raise TypeError(f"the codec cannot read {tp!r}")


# -- money ---------------------------------------------------------------------------------

def _write_money(value: Money, currency: str | None) -> JsonValue:
    if currency is None:  # a bare amount: it carries its own currency
        return {"amount": plain(value.amount), "currency": value.currency}
    if value.currency != currency:
        raise TypeError(f"{value} is not in {currency}, the currency in scope")
    return plain(value.amount)


def _read_money(data: object, path: str, currency: str | None, price: bool) -> Money:
    if currency is None:
        obj = _object(data, path)
        currency = _field(obj, "currency", str, path, None)
        data = obj.get("amount")
        path = f"{path}.amount"
    amount = parse_amount(data, path)
    try:
        places = exponent(currency)
    except DomainError as exc:
        raise MappingError(f"{path}: {exc}") from exc
    if price:
        check_price_digits(amount, path)
    else:
        check_document_amount(amount, path, currency, places)
    return Money(amount, currency)


def _read_refs(data: object, path: str) -> ExternalRefs:
    if not isinstance(data, Mapping) or not all(isinstance(v, str) for v in data.values()):
        raise MappingError(f"{path} must map system to id")
    return ExternalRefs.of(data)


def _write_journal_line(line: JournalLine) -> JsonObject:
    moved = line.transaction_amount
    return {"account": line.account, "side": line.side.value, "amount": plain(line.amount.amount),
            "currency": line.amount.currency, "dimensions": encode(line.dimensions),
            "transaction_amount": None if moved is None else plain(moved.amount),
            "transaction_currency": None if moved is None else moved.currency}


def _read_journal_line(data: object, path: str) -> JournalLine:
    obj = _object(data, path)
    moved = _field(obj, "transaction_currency", str | None, path, None)
    return built(path, lambda: JournalLine(
        _field(obj, "account", str, path, None),
        _field(obj, "side", Side, path, None),
        _field(obj, "amount", Money, path, _field(obj, "currency", str, path, None)),
        _field(obj, "dimensions", tuple[tuple[str, str], ...], path, None),
        None if moved is None else _field(obj, "transaction_amount", Money, path, moved)))


# -- objects -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class _Slot:
    name: str
    key: str
    tp: Any
    default: Callable[[], object] | None
    price: bool  # a contract price, finer than minor units (`_PRICES`)
    later: bool  # added later: not written while it holds its default
    read: Reader  # the reader of `tp` (`_reader_of`)


_SLOTS: dict[type, tuple[_Slot, ...]] = {}


def _slots(cls: type) -> tuple[_Slot, ...]:
    """A dataclass's fields as the wire has them (worked out once per class)."""
    found = _SLOTS.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls)
        found = _SLOTS[cls] = tuple(
            _Slot(f.name, _REFS_KEY if hints[f.name] is ExternalRefs else f.name,
                  hints[f.name], _default_of(f), (cls, f.name) in _PRICES, added_later(f),
                  _reader_of(hints[f.name], (cls, f.name) in _PRICES))
            for f in dataclasses.fields(cls) if f.init)
    return found


def fields(value: object) -> Iterator[tuple[str, object]]:
    """A domain object's fields as the wire names them (`external_refs`), with their
    values: the one walk of an object's fields, for checks that must see every value."""
    for slot in _slots(type(value)):
        yield slot.key, getattr(value, slot.name)


def _default_of(f: dataclasses.Field[Any]) -> Callable[[], object] | None:
    if f.default is not dataclasses.MISSING:
        value = f.default
        return lambda: value
    if f.default_factory is not dataclasses.MISSING:
        return cast(Callable[[], object], f.default_factory)
    return None


def _carries_currency(cls: type) -> bool:
    """Whether this object's money needs a `currency` key of its own (none in scope)."""
    found = _CARRIES.get(cls)
    if found is None:
        found = _CARRIES[cls] = _needs_currency(cls)
    return found


_CARRIES: dict[type, bool] = {}
_NAMES_CURRENCY: dict[type, bool] = {}  # classes with a `currency` field of their own


def _names_currency(cls: type) -> bool:
    found = _NAMES_CURRENCY.get(cls)
    if found is None:
        found = _NAMES_CURRENCY[cls] = any(s.name == "currency" for s in _slots(cls))
    return found


def _needs_currency(cls: type) -> bool:
    slots = _slots(cls)
    if any(s.name == "currency" for s in slots):
        return False
    return any(s.tp in (Money, Money | None) for s in slots)


def _own_currency(value: object) -> str:
    first = next(getattr(value, s.name) for s in _slots(type(value))
                 if isinstance(getattr(value, s.name), Money))
    return cast(Money, first).currency


def _write_object(value: object, currency: str | None) -> JsonObject:
    cls = type(value)
    written: JsonObject = {}
    own = getattr(value, "currency", None)
    if isinstance(own, str):
        currency = own
    elif currency is None and _carries_currency(cls):
        currency = written["currency"] = _own_currency(value)
    for slot in _slots(cls):
        field_value = getattr(value, slot.name)
        if slot.later and slot.default is not None and field_value == slot.default():
            continue
        written[slot.key] = encode(field_value, currency)
    return written


def _read_object(cls: type[T], data: object, path: str, currency: str | None) -> T:
    obj = _object(data, path)
    if _names_currency(cls) or (currency is None and _carries_currency(cls)):
        currency = _field(obj, "currency", str, path, None)
    values: dict[str, object] = {}
    for s in _slots(cls):
        value = obj.get(s.key)
        values[s.name] = (_absent(s.key, s.tp, path, s.default) if value is None
                          else s.read(value, f"{path}.{s.key}", currency))
    return built(path, lambda: cls(**values))


def _field(obj: Mapping[str, object], key: str, tp: Any, path: str, currency: str | None,
           default: Callable[[], object] | None = None, price: bool = False) -> Any:
    """One field: absent or null is its default, an empty tuple or None where the type
    allows, and otherwise a mapping error naming it."""
    value = obj.get(key)
    if value is None:
        return _absent(key, tp, path, default)
    return _read(tp, value, f"{path}.{key}", currency, price)


def _absent(key: str, tp: Any, path: str, default: Callable[[], object] | None) -> Any:
    """An absent or null field's value (`_field`)."""
    if default is not None:
        return default()
    if typing.get_origin(tp) is tuple:
        return ()
    if type(None) in typing.get_args(tp):
        return None
    raise MappingError(f"{path}.{key} is required")


def _object(data: object, path: str) -> Mapping[str, object]:
    if not isinstance(data, Mapping):
        raise MappingError(f"{path} must be an object")
    return data


def built(path: str, factory: Callable[[], T]) -> T:
    """Domain rules broken by a payload are mapping errors of that payload."""
    try:
        return factory()
    except MappingError:
        raise
    except DomainError as exc:
        raise MappingError(f"{path}: {exc}") from exc


# -- events --------------------------------------------------------------------------------

def encode_event(event: AnyEvent) -> JsonObject:
    """The payload of an event: its document under the document's key."""
    return _write_object(event, None)


def decode_event(name: str, schema_version: int, payload: object) -> AnyEvent:
    """The typed event a payload of this type and version carries (upcast first)."""
    cls = event_class(name)
    current = cls.schema_version()
    if schema_version > current:
        raise MappingError(f"{name} schema v{schema_version} is newer than v{current}",
                           code="unknown_schema_version")
    if schema_version < 1:
        raise MappingError(f"{name} schema v{schema_version} does not exist",
                           code="unknown_schema_version")
    data = _object(payload, "payload")
    for step in cls.upcasters[schema_version - 1:]:
        data = step(data)
    values = {s.name: _top(data, s) for s in _slots(cls)}
    return built(name, lambda: cls(**values))


def _top(payload: Mapping[str, object], slot: _Slot) -> object:
    """A payload's document, named by its key alone in errors (`invoice.total`)."""
    if payload.get(slot.key) is None:
        raise MappingError(f"payload.{slot.key} is required")
    return slot.read(payload[slot.key], slot.key, None)


# -- envelopes -----------------------------------------------------------------------------

def draft_to_json(draft: DraftEnvelope) -> JsonObject:
    """A source's envelope on the wire (the hub adds `event_id` and `received_at`)."""
    aggregate = draft.claimed
    return {
        "type": draft.event.name.value,
        "schema_version": draft.event.schema_version(),
        "source": draft.source,
        "source_event_id": draft.source_event_id,
        "occurred_at": draft.occurred_at.isoformat(),
        "correlation_id": draft.correlation_id,
        "causation_id": draft.causation_id,
        "business_key": draft.business_key,
        "aggregate": {"type": aggregate.type, "id": aggregate.id, "version": aggregate.version},
        "payload": encode_event(draft.event),
    }


def envelope_to_json(envelope: Envelope) -> JsonObject:
    """An envelope as the hub keeps it, with its hub fields."""
    aggregate = envelope.aggregate
    return {
        "event_id": envelope.event_id,
        "type": envelope.type.value,
        "schema_version": envelope.schema_version,
        "source": envelope.source,
        "source_event_id": envelope.source_event_id,
        "occurred_at": envelope.occurred_at.isoformat(),
        "received_at": envelope.received_at.isoformat(),
        "correlation_id": envelope.correlation_id,
        "causation_id": envelope.causation_id,
        "business_key": envelope.business_key,
        "aggregate": {"type": aggregate.type, "id": aggregate.id, "version": aggregate.version},
        "payload": encode_event(envelope.event),
    }


def draft_from_text(text: str | bytes) -> DraftEnvelope:
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MappingError(f"not JSON: {exc}", code="invalid_json") from exc
    return draft_from_json(obj)


def draft_from_json(obj: object) -> DraftEnvelope:
    """A canonical envelope as a source sent it: header checked, payload upcast and decoded,
    the aggregate checked against the document. `event_id` and `received_at` in it are the
    hub's to set and are ignored."""
    env = _envelope_object(obj)
    version = env.get("schema_version", 1)
    if not isinstance(version, int) or isinstance(version, bool):
        raise MappingError("schema_version must be an integer", code="invalid_envelope")
    if not isinstance(env.get("payload"), Mapping):
        raise MappingError("envelope field 'payload' must be an object", code="invalid_envelope")
    try:
        occurred_at = parse_utc(_header(env, "occurred_at"))
    except DomainError as exc:
        raise MappingError(str(exc), code="invalid_envelope") from exc
    name, source = _header(env, "type"), _header(env, "source")
    source_event_id = _header(env, "source_event_id")
    correlation_id = _header(env, "correlation_id")
    causation_id = _header(env, "causation_id", required=False) or None
    # The previous version called the business key `idempotency_key`.
    legacy_key = _header(env, "idempotency_key", required=False)
    key = _header(env, "business_key", required=False) or legacy_key or None
    aggregate = _aggregate(env)
    event = decode_event(name, version, env["payload"])
    return built("envelope", lambda: DraftEnvelope(
        event, source, source_event_id, occurred_at, correlation_id, causation_id, key,
        aggregate))


def _envelope_object(obj: object) -> Mapping[str, object]:
    if not isinstance(obj, Mapping):
        raise MappingError("an envelope must be a JSON object", code="invalid_envelope")
    return obj


def _header(env: Mapping[str, object], key: str, *, required: bool = True) -> str:
    value = env.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value:
        raise MappingError(f"envelope field {key!r} must be a non-empty string",
                           code="invalid_envelope")
    return value


def _aggregate(env: Mapping[str, object]) -> AggregateRef:
    agg = env.get("aggregate")
    if not isinstance(agg, Mapping):
        raise MappingError("envelope field 'aggregate' must be an object", code="invalid_envelope")
    version = agg.get("version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)
                                or version < 1):
        raise MappingError("aggregate.version must be a positive integer", code="invalid_envelope")
    return AggregateRef(_header(agg, "type"), _header(agg, "id"), version)
