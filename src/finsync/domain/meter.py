"""Meter events: raw usage as a metering source sends it, read and checked one by one.

Rules:
- A meter event is a JSON object: `id` (the source's event id, unique per source), `subscription`
  (the subscription contract it is billed on), `product` (the usage line's product),
  `quantity` (a whole number of units, 0 .. `COUNT_MAX`) and `timestamp` (ISO 8601 with an
  offset). Other members are ignored.
- A batch is a JSON array of such objects, or JSON lines (one object a line). A body that is
  neither refuses the whole request; a bad item is refused alone, with its index and its own
  code, and the rest of the batch is kept (`MeterBatch.refused`).
- Everything is bounded by the source's `InputLimits`: ids at most `id_max_chars`, no control
  character, the timestamp within `years_back` / `years_ahead` of the day received.
- The usage day is the timestamp's UTC date: billing periods start on a day, so a day lies
  in exactly one period (usage is totalled per subscription, product and period).
- A source that sends another shape (Stripe's meter events) names a `Translate`: each item
  is translated to this shape first, and a translation that fails refuses that item alone
  (its code, and its `id` or the source's own `identifier` as the id shown).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from typing import NamedTuple, cast

from finsync.domain.errors import MappingError
from finsync.domain.limits import COUNT_MAX, InputLimits

FIELDS = ("id", "subscription", "product", "quantity", "timestamp")
_IDS = ("id", "subscription", "product")
_CONTROL = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
_STAMP_MAX_CHARS = 40
# A source's own item shape to this module's (raises `MappingError` to refuse the item).
Translate = Callable[[object], object]


class MeterEvent(NamedTuple):
    """One meter event, `occurred_at` in UTC. A named tuple rather than a frozen dataclass:
    it is built once per meter event, at tens of thousands a second, and a tuple is built
    several times faster; it is as immutable."""

    id: str
    subscription_id: str
    product_id: str
    quantity: int
    occurred_at: datetime

    @property
    def usage_day(self) -> date:
        return self.occurred_at.date()


# A named tuple built from a plain one, without the Python-level `__new__` of its fields
# (a third of the cost of reading a good meter event).
_meter_event = cast(Callable[[tuple[str, str, str, int, datetime]], MeterEvent],
                    partial(tuple.__new__, MeterEvent))


@dataclass(frozen=True, slots=True)
class RefusedItem:
    """One item of a batch that was refused: where it was, its id when it had one, why."""

    index: int
    event_id: str | None
    code: str
    message: str

    def as_json(self) -> dict[str, object]:
        return {"index": self.index, "event_id": self.event_id, "code": self.code,
                "message": self.message}


@dataclass(frozen=True, slots=True)
class MeterBatch:
    """The good events of a batch, the index each had in it (`indexes`, parallel to
    `events`), and the refused items."""

    events: tuple[MeterEvent, ...]
    refused: tuple[RefusedItem, ...]
    indexes: tuple[int, ...] = ()

    def index_of(self, position: int) -> int:
        """The batch index of `events[position]`."""
        return self.indexes[position] if self.indexes else position


def parse_batch(text: str, limits: InputLimits, received_on: date,
                translate: Translate | None = None) -> MeterBatch:
    """The meter events of a body (a JSON array, or JSON lines). Raises `MappingError` when
    the body as a whole is unreadable, or carries no item (`empty_batch`); refuses bad items
    one by one."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(text)
        except ValueError as exc:
            raise MappingError(f"body is not valid JSON: {exc}", code="invalid_json") from None
        batch = read_items(items, limits, received_on, translate)
    else:
        batch = read_lines(text.splitlines(), limits, received_on, translate=translate)
    if not batch.events and not batch.refused:
        raise MappingError("the batch carries no meter event", code="empty_batch")
    return batch


def read_lines(lines: list[str], limits: InputLimits, received_on: date,
               first_index: int = 0, translate: Translate | None = None) -> MeterBatch:
    """JSON lines; an item's index is its line's (from `first_index`), blank lines are
    skipped, and a line that is not JSON is refused alone."""
    items: list[tuple[int, object]] = []
    unreadable: list[RefusedItem] = []
    for offset, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            items.append((first_index + offset, json.loads(line)))
        except ValueError as exc:
            unreadable.append(RefusedItem(first_index + offset, None, "invalid_json",
                                          f"not JSON: {exc}"))
    batch = _read(items, limits, received_on, translate)
    return MeterBatch(batch.events, tuple(sorted((*batch.refused, *unreadable),
                                                 key=lambda r: r.index)), batch.indexes)


def read_items(items: object, limits: InputLimits, received_on: date,
               translate: Translate | None = None) -> MeterBatch:
    """The items of a JSON array, by their index in it."""
    if not isinstance(items, list):
        raise MappingError("a usage batch is a JSON array of meter events, or JSON lines",
                           code="invalid_batch")
    return _read(list(enumerate(items)), limits, received_on, translate)


def _read(items: list[tuple[int, object]], limits: InputLimits, received_on: date,
          translate: Translate | None = None) -> MeterBatch:
    bounds = _Bounds.of(limits, received_on)
    events: list[MeterEvent] = []
    indexes: list[int] = []
    refused: list[RefusedItem] = []
    for index, item in items:
        try:
            own = item if translate is None else translate(item)
            events.append(_good(own, bounds)
                          or read_event(own, limits, bounds.first_day, bounds.last_day))
            indexes.append(index)
        except MappingError as exc:
            event_id = item.get("id", item.get("identifier")) if isinstance(item, dict) else None
            shown = event_id[:limits.id_max_chars] if isinstance(event_id, str) else None
            refused.append(RefusedItem(index, shown, exc.code, str(exc)))
    return MeterBatch(tuple(events), tuple(refused), tuple(indexes))


@dataclass(frozen=True, slots=True)
class _Bounds:
    """A batch's limits as `_good` compares them: its first and last day as UTC moments
    (`first` <= moment < `after`)."""

    id_max: int
    first_day: date
    last_day: date
    first: datetime
    after: datetime

    @classmethod
    def of(cls, limits: InputLimits, received_on: date) -> _Bounds:
        first_day = _shifted(received_on, -limits.years_back)
        last_day = _shifted(received_on, limits.years_ahead)
        # The first moment after the last day (the last day 9999-12-31 has none: its end).
        after = (datetime.combine(last_day + timedelta(days=1), time(), UTC)
                 if last_day < date.max else datetime.max.replace(tzinfo=UTC))
        return cls(limits.id_max_chars, first_day, last_day,
                   datetime.combine(first_day, time(), UTC), after)


def _good(item: object, bounds: _Bounds) -> MeterEvent | None:
    """The meter event of an item that passes every check of `read_event`, read in one
    pass of plain comparisons (the common case, at tens of thousands a second); None for
    any other item, which `read_event` then reads to say what is wrong."""
    if type(item) is not dict:
        return None
    try:
        event_id = item["id"]
        subscription = item["subscription"]
        product = item["product"]
        quantity = item["quantity"]
        stamp = item["timestamp"]
    except KeyError:
        return None
    if not (type(event_id) is str and type(subscription) is str and type(product) is str
            and 0 < len(event_id) <= bounds.id_max and 0 < len(subscription) <= bounds.id_max
            and 0 < len(product) <= bounds.id_max
            # printable: no control character and no unpaired surrogate (`_CONTROL`)
            and (event_id + subscription + product).isprintable()
            and type(quantity) is int and 0 <= quantity <= COUNT_MAX
            and type(stamp) is str and len(stamp) <= _STAMP_MAX_CHARS):
        return None
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if moment.tzinfo is None or not bounds.first <= moment < bounds.after:
        return None
    return _meter_event((event_id, subscription, product, quantity, moment.astimezone(UTC)))


def read_event(item: object, limits: InputLimits, first_day: date,
               last_day: date) -> MeterEvent:
    """One meter event, checked; raises `MappingError` with the item's code. (The common
    case, a good item, takes one pass; the slow path finds out which field is wrong.)"""
    if not isinstance(item, dict):
        raise MappingError("a meter event is a JSON object", code="invalid_meter_event")
    try:
        ids = (item["id"], item["subscription"], item["product"])
        quantity = item["quantity"]
        stamp = item["timestamp"]
    except KeyError:
        missing = [name for name in FIELDS if name not in item]
        raise MappingError(f"meter event lacks {', '.join(missing)}",
                           code="missing_field") from None
    event_id, subscription, product = ids
    if (type(event_id) is not str or type(subscription) is not str
            or type(product) is not str
            or max(len(event_id), len(subscription), len(product)) > limits.id_max_chars
            or not (event_id and subscription and product)
            or _CONTROL.search(event_id + subscription + product)):
        for name, value in zip(_IDS, ids, strict=True):
            _check_id(name, value, limits)
    if type(quantity) is not int or quantity < 0:
        raise MappingError(f"quantity {str(quantity)[:40]} is not a whole number of units "
                           "of 0 or more", code="invalid_quantity")
    if quantity > COUNT_MAX:
        raise MappingError(f"quantity {quantity} is out of range: at most {COUNT_MAX:,} "
                           "(COUNT_MAX)", code="integer_out_of_range")
    occurred_at = _timestamp(stamp)
    if not first_day <= occurred_at.date() <= last_day:
        raise MappingError(f"timestamp {occurred_at.isoformat()} is outside {first_day} .. "
                           f"{last_day} (years_back {limits.years_back}, years_ahead "
                           f"{limits.years_ahead})", code="date_out_of_range")
    return MeterEvent(event_id, subscription, product, quantity, occurred_at)


def _check_id(name: str, value: object, limits: InputLimits) -> None:
    if not isinstance(value, str) or not value:
        raise MappingError(f"{name} must be a non-empty string", code="invalid_meter_event")
    if len(value) > limits.id_max_chars:
        raise MappingError(f"{name} has {len(value):,} characters: at most "
                           f"{limits.id_max_chars:,} (id_max_chars)", code="string_too_long")
    if _CONTROL.search(value):
        raise MappingError(f"{name} holds a control character or an unpaired surrogate",
                           code="control_character")


def _timestamp(value: object) -> datetime:
    if not isinstance(value, str) or len(value) > _STAMP_MAX_CHARS:
        raise MappingError("timestamp must be an ISO 8601 string", code="invalid_timestamp")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise MappingError(f"timestamp {value!r} is not ISO 8601",
                           code="invalid_timestamp") from None
    if moment.tzinfo is None:
        raise MappingError(f"timestamp {value!r} needs a UTC offset", code="invalid_timestamp")
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00-05:00 has no UTC moment
        raise MappingError(f"timestamp {value!r} is out of range in UTC",
                           code="date_out_of_range") from None


def _shifted(day: date, years: int) -> date:
    year = min(max(day.year + years, 1), 9999)
    try:
        return day.replace(year=year)
    except ValueError:
        return day.replace(year=year, day=28)
