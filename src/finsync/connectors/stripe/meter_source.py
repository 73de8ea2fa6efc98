"""A usage source that takes Stripe's meter events: the account's meters and metered
subscription items read through Stripe's API (`StripeClient`) and kept a while.

Rules:
- The meters (`GET /v1/billing/meters`) and each customer's subscriptions
  (`GET /v1/subscriptions?customer=…&status=all`, items completed when a page is partial)
  are kept for `keep_s` and then read again when next needed.
- Within one batch (`translator()`), a meter event that names an event name or a customer's
  item finsync does not know reads the meters, or that customer's subscriptions, again:
  once per batch each, so a batch of unknown names costs one read, not one per item.
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


class Lister(Protocol):
    def list_all(self, path: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]: ...
    def fetch(self, object_type: str, external_id: str) -> Mapping[str, object]: ...


@dataclass
class _Kept:
    at: datetime
    items: list[MeteredItem] = field(default_factory=list)


class StripeMeters:
    """The meters and metered items of one Stripe account, for its usage source."""

    def __init__(self, client: Lister, clock: Callable[[], datetime], keep_s: float = 300.0
                 ) -> None:
        self._client, self._clock, self._keep_s = client, clock, keep_s
        self._meters: dict[str, Meter] = {}
        self._meters_at: datetime | None = None
        self._customers: dict[str, _Kept] = {}

    def translator(self) -> Translate:
        """A translator for one batch (see the module's rules)."""
        read_meters = False
        read_customers: set[str] = set()

        def translate(event: object) -> object:
            nonlocal read_meters
            name = _event_name(event)
            before = self._meters_at
            known = self._current_meters()  # read when never read, or kept too long
            read_meters = read_meters or self._meters_at is not before
            if name not in known and not read_meters:
                read_meters = True
                self._read_meters()
            customer = _customer(event, self._meters.get(name))
            try:
                return meters.usage_item(event, self._index(customer))
            except MappingError as exc:
                if (exc.code != "no_subscription_item" or customer is None
                        or customer in read_customers):
                    raise
            read_customers.add(customer)
            self._read_customer(customer)
            return meters.usage_item(event, self._index(customer))
        return translate

    def _current_meters(self) -> Mapping[str, Meter]:
        if self._meters_at is None or self._stale(self._meters_at):
            self._read_meters()
        return self._meters

    def _read_meters(self) -> None:
        found = self._client.list_all("/v1/billing/meters", [])
        self._meters = {m.event_name: m for m in (meters.meter(obj) for obj in found)}
        self._meters_at = self._clock()

    def _index(self, customer: str | None) -> MeterIndex:
        items: list[MeteredItem] = []
        if customer is not None:
            kept = self._customers.get(customer)
            if kept is None or self._stale(kept.at):
                kept = self._read_customer(customer)
            items = kept.items
        return MeterIndex(self._meters.values(), items)

    def _read_customer(self, customer: str) -> _Kept:
        subs = self._client.list_all("/v1/subscriptions", [("customer", customer),
                                                           ("status", "all")])
        items: list[MeteredItem] = []
        for sub in subs:
            if child(sub, "items").get("has_more"):
                sub = dict(self._client.fetch("subscription", text(sub, "id", "subscription")))
            items += meters.metered_items(sub)
        kept = self._customers[customer] = _Kept(self._clock(), items)
        return kept

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
