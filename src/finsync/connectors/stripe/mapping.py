"""Stripe events to canonical envelopes (pure: the same raw body gives the same envelopes).

A raw body of a Stripe source is either
- a Stripe event as a webhook delivered it, or
- a *delivery* the catch-up poller stored: `{"object": "finsync.stripe_delivery",
  "event": <event>, "current": <object fetched on the event, or null>, "version": <n|null>}`.

Rules:
- Every envelope's `source_event_id` is the Stripe event id (a second envelope from the same
  event adds `/<type>:<id>`), so the webhook copy and the polled copy of one event are one
  event to the hub's de-duplication.
- Customers and subscriptions are versioned aggregates. Stripe gives no per-object counter,
  so their versions are assigned by the poller, which reads `/v1/events` oldest first
  (`version` in the delivery); a webhook copy of such an event is acknowledged and maps to
  nothing (its sequenced copy follows). Version 1 of a subscription is `contract.created`
  whatever the event (the first state finsync saw); later versions are `contract.amended`,
  or `contract.cancelled` for `customer.subscription.deleted`.
- An event whose object is partial (a list page with `has_more`, a thin event, a refund
  without its charge) is mapped only from a delivery that carries the fetched object.
- Types with no financial effect are acknowledged and ignored (`IGNORED`); a type that has
  one finsync cannot map (`invoice.voided`, …) or does not know is a `MappingError`: the raw
  event is kept and finance sees an exception.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from finsync.connectors.stripe import objects
from finsync.connectors.stripe.objects import Obj, SourceSettings
from finsync.domain.errors import MappingError
from finsync.domain.event_type import EVENT_TYPES
from finsync.domain.upcast import UPCASTERS
from finsync.systems.billing import payload

DELIVERY = "finsync.stripe_delivery"

CUSTOMER_EVENTS = frozenset({"customer.created", "customer.updated"})
SUBSCRIPTION_EVENTS = frozenset({
    "customer.subscription.created", "customer.subscription.updated",
    "customer.subscription.deleted", "customer.subscription.paused",
    "customer.subscription.resumed"})
VERSIONED = CUSTOMER_EVENTS | SUBSCRIPTION_EVENTS
INVOICE_ISSUED = frozenset({"invoice.finalized", "invoice.created"})
INVOICE_PAID = frozenset({"invoice.paid", "invoice.payment_succeeded"})

# Acknowledged on purpose: they change nothing in the books (drafts, attempts, catalogue,
# payment methods, notifications), or another event carries their effect (noted).
IGNORED_PREFIXES = ("product.", "plan.", "price.", "coupon.", "promotion_code.", "tax_rate.",
                    "payment_method.", "customer.source.", "customer.discount.",
                    "customer.tax_id.", "setup_intent.", "source.", "invoiceitem.",
                    "subscription_schedule.", "balance.", "payout.", "mandate.")
IGNORED = frozenset({
    "customer.deleted",  # the account stays in the books; nothing to post
    "customer.subscription.trial_will_end", "customer.subscription.pending_update_applied",
    "customer.subscription.pending_update_expired",
    "invoice.updated", "invoice.upcoming", "invoice.sent", "invoice.payment_failed",
    "invoice.payment_action_required", "invoice.finalization_failed", "invoice.overdue",
    "invoice.will_be_due", "invoice.deleted",  # only drafts can be deleted
    "invoice_payment.paid",  # carried by invoice.paid
    "payment_intent.created", "payment_intent.processing", "payment_intent.payment_failed",
    "payment_intent.canceled", "payment_intent.requires_action",
    "payment_intent.amount_capturable_updated", "payment_intent.partially_funded",
    "charge.succeeded", "charge.captured", "charge.pending", "charge.failed",
    "charge.updated", "charge.expired",  # carried by payment_intent / invoice events
    "charge.refund.updated",  # carried by refund.updated
    "credit_note.updated",  # only memo and metadata can change
})


@dataclass(frozen=True, slots=True)
class Delivery:
    """One Stripe event as stored: the event, the object fetched for it, its version."""

    event: Obj
    current: Obj | None
    version: int | None

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
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MappingError(f"body is not JSON: {exc}", code="invalid_json") from exc
    if not isinstance(data, Mapping):
        raise MappingError("a Stripe event must be a JSON object", code="invalid_event")
    if data.get("object") == DELIVERY:
        event, current, version = data.get("event"), data.get("current"), data.get("version")
        if not isinstance(event, Mapping) or not (current is None or isinstance(current, Mapping)) \
                or not (version is None or isinstance(version, int)):
            raise MappingError("malformed finsync.stripe_delivery", code="invalid_event")
        return Delivery(event, current, version)
    if data.get("object") != "event":
        raise MappingError("not a Stripe event (object != 'event')", code="invalid_event")
    return Delivery(data, None, None)


def fetch_target(event: Obj) -> tuple[str, str] | None:
    """`(object type, id)` to fetch before this event can be mapped, or None."""
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


def translate(settings: SourceSettings, source: str, body: bytes) -> list[dict[str, Any]]:
    """The canonical envelopes (JSON) of one raw body of a Stripe source."""
    delivery = parse(body)
    kind = delivery.type
    if kind in IGNORED or kind.startswith(IGNORED_PREFIXES):
        return []
    if kind in VERSIONED and delivery.version is None:
        return []  # the poller's sequenced copy carries it
    if delivery.current is None and fetch_target(delivery.event) is not None:
        return []  # partial: the poller's copy carries the fetched object
    handler = _HANDLERS.get(kind)
    if handler is None:
        raise MappingError(f"Stripe event type {kind!r} has a financial effect finsync does "
                           "not map" if kind in UNSUPPORTED else
                           f"unknown Stripe event type {kind!r}", code="unsupported_event")
    return [envelope(source, delivery, doc_type, aggregate_id, version, document, suffix)
            for doc_type, aggregate_id, version, document, suffix
            in handler(delivery, settings)]


UNSUPPORTED = frozenset({"invoice.voided", "invoice.marked_uncollectible", "credit_note.voided",
                         "charge.dispute.created", "charge.dispute.closed",
                         "charge.dispute.funds_withdrawn", "charge.dispute.funds_reinstated"})

# (canonical type, aggregate id, aggregate version, document, source_event_id suffix)
Mapped = tuple[str, str, int, object, str]


def _customer(d: Delivery, settings: SourceSettings) -> list[Mapped]:
    version = _version(d)
    doc = objects.customer(d.object, settings, version)
    return [("customer.upserted", doc.id, version, doc, "")]


def _subscription(d: Delivery, settings: SourceSettings) -> list[Mapped]:
    version = _version(d)
    current = objects.contract(d.object, settings, version)
    if version == 1:
        return [("contract.created", current.id, 1, current, "")]
    cancelled = d.type == "customer.subscription.deleted"
    previous = objects.child(objects.child(d.event, "data"), "previous_attributes")
    doc = objects.amendment(d.id, d.type, objects.day(d.created, "event.created"), previous,
                            current, cancelled)
    kind = "contract.cancelled" if cancelled else "contract.amended"
    return [(kind, current.id, version, doc, "")]


def _version(d: Delivery) -> int:
    if d.version is None or d.version < 1:
        raise MappingError(f"{d.type} needs a positive sequenced version", code="invalid_event")
    return d.version


def _invoice(d: Delivery, settings: SourceSettings) -> list[Mapped]:
    obj = d.object
    if obj.get("status") == "draft":
        return []  # not issued yet: invoice.finalized follows
    doc = objects.invoice(obj, settings)
    mapped: list[Mapped] = [("invoice.issued", doc.id, 1, doc, "")]
    if d.type in INVOICE_PAID and (paid := objects.invoice_payment(obj, settings)):
        mapped.append(("payment.applied", paid.id, 1, paid, f"/payment:{paid.id}"))
    return mapped


def _credit_note(d: Delivery, settings: SourceSettings) -> list[Mapped]:
    doc = objects.credit_memo(d.object, settings)
    return [("credit_memo.issued", doc.id, 1, doc, "")]


def _intent(d: Delivery, settings: SourceSettings) -> list[Mapped]:
    if objects.id_of(d.object.get("invoice")):
        return []  # an invoice's payment: invoice.paid carries it with its application
    doc = objects.intent_payment(d.object, settings)
    return [("payment.applied", doc.id, 1, doc, "")]


def _charge_refunded(d: Delivery, settings: SourceSettings) -> list[Mapped]:
    charge = d.object
    customer = objects.ref(charge, "customer", "charge")
    return [("refund.issued", r.id, 1, r, "" if n == 0 else f"/refund:{r.id}")
            for n, r in enumerate(objects.refund(dict(item), customer, settings)
                                  for item in objects.listed(charge, "refunds", "charge")
                                  if item.get("status") in (None, "succeeded"))]


def _refund(d: Delivery, settings: SourceSettings) -> list[Mapped]:
    obj = d.object
    if obj.get("status") not in (None, "succeeded"):
        return []  # pending, failed or cancelled refunds move no money yet
    customer = objects.ref(objects.child(obj, "charge"), "customer", "refund.charge")
    doc = objects.refund(obj, customer, settings)
    return [("refund.issued", doc.id, 1, doc, "")]


_HANDLERS: dict[str, Callable[[Delivery, SourceSettings], list[Mapped]]] = {
    **{t: _customer for t in CUSTOMER_EVENTS},
    **{t: _subscription for t in SUBSCRIPTION_EVENTS},
    **{t: _invoice for t in INVOICE_ISSUED | INVOICE_PAID},
    "credit_note.created": _credit_note,
    "payment_intent.succeeded": _intent,
    "charge.refunded": _charge_refunded,
    "refund.created": _refund,
    "refund.updated": _refund,
}


def correlation_of(obj: Obj) -> str:
    """The commercial thread: the subscription an object belongs to, else the object."""
    if obj.get("object") == "subscription":
        return f"stripe:{obj.get('id')}"
    sub = objects.invoice_subscription(obj) if obj.get("object") == "invoice" else None
    return f"stripe:{sub or obj.get('id') or 'unknown'}"


def envelope(source: str, d: Delivery, doc_type: str, aggregate_id: str, version: int,
             document: object, suffix: str) -> dict[str, Any]:
    kind = EVENT_TYPES[doc_type]
    occurred = datetime.fromtimestamp(d.created, UTC)
    return {
        "type": doc_type,
        "schema_version": UPCASTERS.current_version(doc_type),
        "source": source,
        "source_event_id": d.id + suffix,
        "occurred_at": occurred.isoformat(),
        "correlation_id": correlation_of(d.object),
        "causation_id": None,
        "idempotency_key": None,
        "aggregate": {"type": kind.aggregate_type, "id": aggregate_id, "version": version},
        "payload": {kind.document_key: payload.document(document)},
    }
