"""Stripe Billing meters: a meter event (or a meter's daily summary) as finsync's usage.

A Stripe meter event names a meter by its `event_name` and a customer by a key of its
`payload`; Stripe bills it on the customer's subscription item whose price is on that meter
(`price.recurring.meter`). finsync's usage names a subscription and a product, so a meter
event is read through a `MeterIndex`: the account's meters, and the subscription items on
them, from Stripe's own objects (current API shape).

Rules:
- A meter event is `{event_name, payload, identifier, timestamp}` as Stripe takes it at
  `POST /v1/billing/meter_events` (the `billing.meter_event` object has the same fields).
  finsync needs the `identifier` (its de-duplication key; Stripe's own is only kept for a
  day) and the `timestamp` (unix seconds), which Stripe would default: their absence is a
  `missing_field`.
- The meter is the one whose `event_name` matches (`unknown_meter` otherwise); the customer
  is `payload[customer_mapping.event_payload_key]` and the value
  `payload[value_settings.event_payload_key]` (Stripe's defaults `stripe_customer_id` and
  `value`). A meter that is not `active` takes no event (`meter_inactive`), as at Stripe.
- The value is a whole number of units (Stripe sends it as a string, "25"): finsync totals
  whole units, so a decimal value Stripe would take is refused (`invalid_quantity`), never
  rounded.
- The subscription item is the customer's item on the meter's price whose subscription had
  started at the event's time and had not ended (`ended_at`, exclusive). None is
  `no_subscription_item`; more than one is `ambiguous_subscription_item` (Stripe would bill
  every one of them: finsync will not choose). The usage is the item's subscription and the
  product of its price.
- A daily summary (`billing.meter_event_summary`, read for one customer and meter) becomes
  one usage item of the day it starts, whose id is derived from (meter, customer, start):
  the same summary read again is the same item, de-duplicated by the usage log.
- The result is finsync's meter-event item (`domain.meter`), which the usage intake then
  checks against the source's limits like any other.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from finsync.connectors.stripe.objects import Obj, child, id_of, instant, integer, listed, text
from finsync.domain.errors import MappingError

DEFAULT_CUSTOMER_KEY = "stripe_customer_id"
DEFAULT_VALUE_KEY = "value"
_WHOLE = re.compile(r"[0-9]{1,19}")


@dataclass(frozen=True, slots=True)
class Meter:
    """One Stripe meter: what its events are called and where their payload keeps the
    customer and the value."""

    id: str
    event_name: str
    customer_key: str
    value_key: str
    active: bool


@dataclass(frozen=True, slots=True)
class MeteredItem:
    """A subscription item on a meter's price, and when its subscription ran
    (`[started, ended)`, `ended` None while it runs)."""

    subscription_id: str
    item_id: str
    customer_id: str
    meter_id: str
    product_id: str
    started: int
    ended: int | None

    def runs_at(self, moment: int) -> bool:
        return self.started <= moment and (self.ended is None or moment < self.ended)


def meter(obj: Obj) -> Meter:
    path = "billing.meter"
    customer_key = child(obj, "customer_mapping").get("event_payload_key")
    value_key = child(obj, "value_settings").get("event_payload_key")
    return Meter(text(obj, "id", path), text(obj, "event_name", path),
                 str(customer_key or DEFAULT_CUSTOMER_KEY), str(value_key or DEFAULT_VALUE_KEY),
                 obj.get("status", "active") == "active")


def metered_items(sub: Obj) -> list[MeteredItem]:
    """The items of a subscription whose price is on a meter."""
    path = "subscription"
    sub_id = text(sub, "id", path)
    customer = id_of(sub.get("customer"))
    if customer is None:
        raise MappingError(f"{path} {sub_id} names no customer", code="missing_field")
    started = sub.get("start_date") or sub.get("created")
    if not isinstance(started, int) or isinstance(started, bool):
        raise MappingError(f"{path} {sub_id} has no start_date", code="missing_field")
    ended = sub.get("ended_at")
    found = []
    for n, item in enumerate(listed(sub, "items", path)):
        price = child(item, "price")
        meter_id = id_of(child(price, "recurring").get("meter"))
        if meter_id is None:
            continue
        product = id_of(price.get("product"))
        if product is None:
            raise MappingError(f"{path}.items[{n}].price names no product",
                               code="missing_field")
        found.append(MeteredItem(sub_id, text(item, "id", f"{path}.items[{n}]"), customer,
                                 meter_id, product, started,
                                 ended if isinstance(ended, int) else None))
    return found


class MeterIndex:
    """The meters of one Stripe account by event name, and the metered subscription items
    by (customer, meter)."""

    def __init__(self, meters: Iterable[Meter], items: Iterable[MeteredItem]) -> None:
        self.meters = {m.event_name: m for m in meters}
        self._items: dict[tuple[str, str], list[MeteredItem]] = {}
        for item in items:
            self._items.setdefault((item.customer_id, item.meter_id), []).append(item)

    @classmethod
    def of(cls, meters: Sequence[Obj], subscriptions: Sequence[Obj]) -> MeterIndex:
        """From Stripe's `billing.meter` and `subscription` objects."""
        return cls((meter(m) for m in meters),
                   (i for s in subscriptions for i in metered_items(s)))

    def item(self, customer: str, meter_id: str, moment: int) -> MeteredItem:
        running = [i for i in self._items.get((customer, meter_id), ()) if i.runs_at(moment)]
        if not running:
            raise MappingError(f"customer {customer} has no subscription item on meter "
                               f"{meter_id} at {_iso(moment)}", code="no_subscription_item")
        if len(running) > 1:
            names = ", ".join(sorted(i.item_id for i in running))
            raise MappingError(f"customer {customer} has {len(running)} subscription items "
                               f"on meter {meter_id} at {_iso(moment)} ({names}): Stripe "
                               "bills each; finsync will not choose one",
                               code="ambiguous_subscription_item")
        return running[0]


def usage_item(event: object, index: MeterIndex) -> dict[str, object]:
    """finsync's meter-event item (`domain.meter`) for one Stripe meter event."""
    if not isinstance(event, Mapping):
        raise MappingError("a Stripe meter event is a JSON object", code="invalid_meter_event")
    path = "billing.meter_event"
    name = text(event, "event_name", path)
    found = index.meters.get(name)
    if found is None:
        raise MappingError(f"no Stripe meter has event_name {name[:100]!r}",
                           code="unknown_meter")
    if not found.active:
        raise MappingError(f"meter {found.id} ({name[:100]}) is not active", code="meter_inactive")
    payload = child(event, "payload")
    customer = text(payload, found.customer_key, f"{path}.payload")
    moment = integer(event, "timestamp", path)
    _iso(moment)  # a timestamp no calendar holds is refused before any look-up
    item = index.item(customer, found.id, moment)
    return {"id": text(event, "identifier", path), "subscription": item.subscription_id,
            "product": item.product_id, "timestamp": _iso(moment),
            "quantity": _whole(payload.get(found.value_key), f"{path}.payload.{found.value_key}")}


def summary_item(summary: Obj, customer: str, index: MeterIndex) -> dict[str, object]:
    """finsync's meter-event item for one daily summary of `customer`'s usage on a meter."""
    path = "billing.meter_event_summary"
    meter_id = text(summary, "meter", path)
    start = integer(summary, "start_time", path)
    item = index.item(customer, meter_id, start)
    return {"id": f"mtrsum:{meter_id}:{customer}:{start}", "subscription": item.subscription_id,
            "product": item.product_id, "timestamp": _iso(start),
            "quantity": _whole(summary.get("aggregated_value"), f"{path}.aggregated_value")}


def _whole(value: object, path: str) -> int:
    """A whole number of units, as Stripe sends a value: a string of digits or a number."""
    if isinstance(value, bool):
        value = None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str) and _WHOLE.fullmatch(value):
        return int(value)
    if value is None:
        raise MappingError(f"{path} is required", code="missing_field")
    raise MappingError(f"{path} {str(value)[:40]!r} is not a whole number of units of 0 or "
                       "more (finsync totals whole units)", code="invalid_quantity")


def _iso(moment: int) -> str:
    return instant(moment, "timestamp").isoformat()  # one no calendar holds: date_out_of_range
