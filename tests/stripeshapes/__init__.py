"""Stripe objects in the CURRENT API shape, built from Stripe's own published examples.

`tests/fixtures/stripe/examples.json` holds Stripe's example object of every resource finsync
maps, unchanged from the `stripe/openapi` repository (`fixtures3.json`, MIT licence). A test
object starts from its resource's example and overrides the fields the case is about
(`shaped`); a field the example does not hold is refused unless it is a documented optional
field listed in `OPTIONAL`, so a fixture cannot invent a shape Stripe does not send.

Area builders (payments, documents, disputes, …) live beside this module, one module each,
and build on `shaped`, `event` and `delivered`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "stripe" / "examples.json"
RESOURCES: dict[str, dict[str, Any]] = json.loads(EXAMPLES.read_text())["resources"]

API_VERSION = "2025-11-17.clover"  # a current version (basil 2025-03-31 and later)
T0 = 1_795_810_008  # 2026-11-27 00:06:48 UTC
DAY = 86_400

# Documented fields the examples leave out (optional or expandable), by resource and path.
OPTIONAL: dict[str, frozenset[str]] = {
    "invoice_payment": frozenset({"payment.payment_intent", "payment.charge",
                                  "payment.payment_record"}),
    # `payments` only with expand[]=payments; `paid_out_of_band` (basil, clover): later
    # versions record an out-of-band payment as a payment record instead.
    "invoice": frozenset({"payments", "paid_out_of_band", "lines.data.pricing.price_details"}),
    # The API error object of a failed attempt (docs.stripe.com/api/errors).
    "payment_intent": frozenset({"last_payment_error.code", "last_payment_error.decline_code",
                                 "last_payment_error.charge", "last_payment_error.message"}),
    "event": frozenset({"account", "context"}),  # Connect: the connected account's id
    "line_item": frozenset({"pricing.price_details"}),
    "customer": frozenset({"tax_ids"}),  # includable: expand[]=tax_ids
}

Obj = dict[str, Any]


class ShapeError(AssertionError):
    pass


def example(resource: str) -> Obj:
    """A deep copy of Stripe's example `resource` object."""
    return copy.deepcopy(RESOURCES[resource])


def shaped(resource: str, **fields: Any) -> Obj:
    """Stripe's example `resource` with `fields` replacing its own (each checked against the
    example's shape)."""
    obj = example(resource)
    for key, value in fields.items():
        conform(resource, key, value, obj.get(key, _MISSING))
        obj[key] = value
    return obj


_MISSING = object()


def conform(resource: str, path: str, value: Any, model: Any) -> None:
    """`value` at `path` fits the example's `model` there: no field the example lacks
    (unless listed in `OPTIONAL`), dicts checked key by key, list objects item by item."""
    if model is _MISSING:
        if path not in OPTIONAL.get(resource, frozenset()):
            raise ShapeError(f"Stripe's {resource} example has no field {path!r}")
        return
    if not isinstance(value, Mapping) or not isinstance(model, Mapping) or not model:
        return
    if path.endswith("metadata"):
        return
    if value.get("object") not in (None, model.get("object")):
        return  # another resource in this place (an expanded object): its own builder checked it
    for key, item in value.items():
        inner = f"{path}.{key}"
        if key == "data" and isinstance(item, list) and isinstance(model.get("data"), list):
            sample = model["data"][0] if model["data"] else _MISSING
            for entry in item:
                conform(resource, inner, entry, sample if sample is not _MISSING else {})
            continue
        conform(resource, inner, item, model.get(key, _MISSING))


def listing(items: list[Obj], url: str = "/v1/list") -> Obj:
    """A complete Stripe list object."""
    return {"object": "list", "data": items, "has_more": False, "url": url}


def event(kind: str, obj: Obj, *, evt: str, created: int = T0,
          previous: Obj | None = None, api_version: str = API_VERSION,
          account: str | None = None) -> Obj:
    """A Stripe event of type `kind` whose snapshot is `obj`."""
    data: Obj = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    fields: Obj = {"id": evt, "type": kind, "created": created, "data": data,
                   "api_version": api_version, "livemode": False, "pending_webhooks": 1,
                   "request": {"id": None, "idempotency_key": None}}
    if account is not None:
        fields["account"] = account
    return shaped("event", **fields)


def delivered(evt: Obj, *, current: Obj | None = None, version: int | None = None,
              related: Mapping[str, Obj] | None = None) -> bytes:
    """The poller's delivery of `evt` (what fetch-on-event found beside it)."""
    body: Obj = {"object": "finsync.stripe_delivery", "event": evt, "current": current,
                 "version": version}
    if related:
        body["related"] = dict(related)
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def webhook(evt: Obj) -> bytes:
    return json.dumps(evt, sort_keys=True, separators=(",", ":")).encode()
