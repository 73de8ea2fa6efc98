"""A usage source that takes Stripe's meter events: the account's meters and metered
subscription items read through Stripe's API (`StripeClient`) and kept a while.

Rules:
- The meters (`GET /v1/billing/meters`) and each customer's subscriptions
  (`GET /v1/subscriptions?customer=…&status=all`, items completed when a page is partial)
  are kept for `keep_s` and then read again when next needed.
- Within one batch (`translator()`), a meter event that names an event name or a customer's
  item finsync does not know reads the meters, or that customer's subscriptions, again:
  once per batch each, so a batch of unknown names costs one read, not one per item. Past
  `customer_reads_max` customers read in one batch, the account's subscriptions are read in
  one listing instead (bounded by the client's `pages_max`): a batch of many new customers
  costs a bounded number of calls, never one per customer.
- Stripe unreachable is a `TransientError` (the batch is refused whole and sent again); a
  refusal by Stripe (`PermanentError`) refuses the batch too: an account without meters
  cannot take meter events.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from finsync.connectors.stripe import meters
from finsync.connectors.stripe.meters import Meter, MeteredItem, MeterIndex
from finsync.connectors.stripe.objects import child, text
from finsync.domain.errors import MappingError
from finsync.domain.meter import Translate

CUSTOMER_READS_MAX = 20  # customers' subscriptions read one by one per batch


class Lister(Protocol):
    def list_all(self, path: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]: ...
    def fetch(self, object_type: str, external_id: str) -> Mapping[str, object]: ...


@dataclass
class _Kept:
    at: datetime
    items: list[MeteredItem] = field(default_factory=list)


@dataclass
class _Batch:
    """What one batch has read from Stripe already (each at most once)."""

    meters: bool = False
    customers: set[str] = field(default_factory=set)
    everyone: bool = False  # every subscription of the account


class StripeMeters:
    """The meters and metered items of one Stripe account, for its usage source."""

    def __init__(self, client: Lister, clock: Callable[[], datetime], keep_s: float = 300.0,
                 customer_reads_max: int = CUSTOMER_READS_MAX) -> None:
        self._client, self._clock, self._keep_s = client, clock, keep_s
        self._reads_max = customer_reads_max
        self._meters: dict[str, Meter] = {}
        self._meters_at: datetime | None = None
        self._customers: dict[str, _Kept] = {}

    def translator(self) -> Translate:
        """A translator for one batch (see the module's rules)."""
        self._forget_stale()
        batch = _Batch()

        def translate(event: object) -> object:
            name = _event_name(event)
            if name not in self._current_meters(batch) and not batch.meters:
                self._read_meters(batch)
            customer = _customer(event, self._meters.get(name))
            try:
                return meters.usage_item(event, self._index(customer, batch))
            except MappingError as exc:
                if (exc.code != "no_subscription_item" or customer is None
                        or customer in batch.customers or batch.everyone):
                    raise
            self._read(customer, batch)  # a subscription made since it was read?
            return meters.usage_item(event, self._index(customer, batch))
        return translate

    def _current_meters(self, batch: _Batch) -> Mapping[str, Meter]:
        if self._meters_at is None or self._stale(self._meters_at):
            self._read_meters(batch)
        return self._meters

    def _read_meters(self, batch: _Batch) -> None:
        found = self._client.list_all("/v1/billing/meters", [])
        self._meters = {m.event_name: m for m in (meters.meter(obj) for obj in found)}
        self._meters_at = self._clock()
        batch.meters = True

    def _index(self, customer: str | None, batch: _Batch) -> MeterIndex:
        items: list[MeteredItem] = []
        if customer is not None:
            kept = self._customers.get(customer)
            if kept is None or self._stale(kept.at):
                kept = self._read(customer, batch)
            items = kept.items
        return MeterIndex(self._meters.values(), items)

    def _read(self, customer: str, batch: _Batch) -> _Kept:
        """The customer's subscriptions; past `customer_reads_max` customers in one batch,
        every subscription of the account in one listing instead."""
        if batch.everyone:
            return self._customers.setdefault(customer, _Kept(self._clock()))
        if len(batch.customers) >= self._reads_max:
            self._read_everyone(batch)
            return self._customers.setdefault(customer, _Kept(self._clock()))
        batch.customers.add(customer)
        subs = self._client.list_all("/v1/subscriptions", [("customer", customer),
                                                           ("status", "all")])
        kept = self._customers[customer] = _Kept(self._clock(), self._items(subs))
        return kept

    def _read_everyone(self, batch: _Batch) -> None:
        at = self._clock()
        by_customer: dict[str, list[MeteredItem]] = {c: [] for c in self._customers}
        for item in self._items(self._client.list_all("/v1/subscriptions",
                                                      [("status", "all")])):
            by_customer.setdefault(item.customer_id, []).append(item)
        self._customers = {c: _Kept(at, items) for c, items in by_customer.items()}
        batch.everyone = True

    def _items(self, subs: list[dict[str, Any]]) -> list[MeteredItem]:
        items: list[MeteredItem] = []
        for sub in subs:
            if child(sub, "items").get("has_more"):
                sub = dict(self._client.fetch("subscription", text(sub, "id", "subscription")))
            items += meters.metered_items(sub)
        return items

    def _forget_stale(self) -> None:
        self._customers = {c: k for c, k in self._customers.items() if not self._stale(k.at)}

    def _stale(self, at: datetime) -> bool:
        return (self._clock() - at).total_seconds() >= self._keep_s


def _event_name(event: object) -> str:
    name = event.get("event_name") if isinstance(event, Mapping) else None
    return name if isinstance(name, str) else ""


def _customer(event: object, meter: Meter | None) -> str | None:
    """The customer a meter event names, when its meter is known (else the pure mapping
    refuses it with its own code)."""
    if meter is None or not isinstance(event, Mapping):
        return None
    value = child(event, "payload").get(meter.customer_key)
    return value if isinstance(value, str) and value else None
