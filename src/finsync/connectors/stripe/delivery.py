"""One Stripe event as the hub stores it, and what must be fetched before it can be mapped.

A raw body of a Stripe source is either
- a Stripe event as a webhook delivered it, or
- a *delivery* the catch-up poller stored: `{"object": "finsync.stripe_delivery",
  "event": <event>, "current": <object fetched on the event, or null>, "version": <n|null>,
  "related": {<name>: <object fetched beside it>, ...}}` (`related` left out when empty).

Fetch-on-event: `fetch_plan` names what the poller fetches for an event, `current` (the
event's own object when the event's copy is partial) and the `related` objects a handler
needs and the event does not carry (e.g. the invoice payments of a PaymentIntent). An event
whose plan is not empty is mapped only from a delivery that carries it; its webhook copy is
acknowledged and maps to nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from finsync.connectors.stripe import objects
from finsync.connectors.stripe.objects import Obj, SourceSettings
from finsync.domain import json_limits
from finsync.domain.errors import MappingError
from finsync.domain.events import AnyEvent

DELIVERY = "finsync.stripe_delivery"
CURRENT = "current"  # the fetch of the event's own object


@dataclass(frozen=True, slots=True)
class Fetch:
    """One object (or list) the poller fetches for an event: stored under `key`
    (`CURRENT`, or a name in `related`), read with `StripeClient.fetch(object_type, id)`."""

    key: str
    object_type: str
    object_id: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """One Stripe event as stored: the event, the object fetched for it, its version."""

    event: Obj
    current: Obj | None
    version: int | None
    related: Mapping[str, Obj] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return objects.text(self.event, "id", "event")

    @property
    def type(self) -> str:
        return objects.text(self.event, "type", "event")

    @property
    def created(self) -> int:
        return objects.integer(self.event, "created", "event")

    @property
    def object(self) -> Obj:
        """The fetched object when there is one, else the event's snapshot."""
        return self.current if self.current is not None else snapshot(self.event)


def snapshot(event: Obj) -> Obj:
    return objects.child(objects.child(event, "data"), "object")


def parse(body: bytes) -> Delivery:
    try:
        json_limits.check_body(body)  # depth and size before the parser sees it
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MappingError(f"body is not JSON: {exc}", code="invalid_json") from exc
    if not isinstance(data, Mapping):
        raise MappingError("a Stripe event must be a JSON object", code="invalid_event")
    if data.get("object") == DELIVERY:
        event, current, version = data.get("event"), data.get("current"), data.get("version")
        related = data.get("related") or {}
        if not isinstance(event, Mapping) or not (current is None or isinstance(current, Mapping)) \
                or not (version is None or isinstance(version, int)) \
                or not isinstance(related, Mapping) \
                or not all(isinstance(v, Mapping) for v in related.values()):
            raise MappingError("malformed finsync.stripe_delivery", code="invalid_event")
        return Delivery(event, current, version, related)
    if data.get("object") != "event":
        raise MappingError("not a Stripe event (object != 'event')", code="invalid_event")
    return Delivery(data, None, None)


def fetch_target(event: Obj) -> tuple[str, str] | None:
    """`(object type, id)` of the event's own object to fetch before it can be mapped (it is
    partial), or None."""
    obj, kind = snapshot(event), str(event.get("type", "")).split(".")[0]
    related = objects.child(event, "related_object")
    if not obj or set(obj) <= {"id", "object"}:
        target = obj or related  # a thin event names its object but does not carry it
        if isinstance(target.get("id"), str) and isinstance(target.get("object"), str):
            return str(target["object"]), str(target["id"])
        return None
    object_type = obj.get("object")
    if not isinstance(object_type, str) or not isinstance(obj.get("id"), str):
        return None
    for key in ("lines", "items", "refunds"):
        if objects.child(obj, key).get("has_more"):
            return object_type, str(obj["id"])
    if object_type == "refund" and kind == "refund" and not isinstance(obj.get("charge"),
                                                                     Mapping):
        return "refund", str(obj["id"])  # its customer is on the charge
    return None



def delivery_body(event: Mapping[str, object], current: Mapping[str, object] | None,
                  version: int | None, related: Mapping[str, object] | None = None) -> bytes:
    body: dict[str, object] = {"object": DELIVERY, "event": event, "current": current,
                               "version": version}
    if related:
        body["related"] = dict(related)
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


Handler = Callable[[Delivery, SourceSettings], list[AnyEvent]]
# What an event type's handler needs fetched beside the event (from the event).
Planner = Callable[[Obj], tuple[Fetch, ...]]
