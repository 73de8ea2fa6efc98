"""Stripe events to canonical draft envelopes (pure: the same raw body gives the same drafts).

A raw body of a Stripe source is either
- a Stripe event as a webhook delivered it, or
- a *delivery* the catch-up poller stored: `{"object": "finsync.stripe_delivery",
  "event": <event>, "current": <object fetched on the event, or null>, "version": <n|null>}`.

Rules:
- Every envelope's `source_event_id` is the Stripe event id (a second envelope from the same
  event adds `/<aggregate type>:<aggregate id>`, e.g. `/payment:pi_1`), so the webhook copy
  and the polled copy of one event are one event to the hub's de-duplication. It occurred
  at the event's `created`.
- A handler turns one Stripe event into typed canonical events; `translate` puts each in its
  draft envelope. The aggregate is the event's document, at version 1 for documents issued
  once and at the delivery's sequenced version for customers and subscriptions.
- Customers and subscriptions are versioned aggregates. Stripe gives no per-object counter,
  so their versions are assigned by the poller, which reads `/v1/events` oldest first
  (`version` in the delivery); a webhook copy of such an event is acknowledged and maps to
  nothing (its sequenced copy follows). Version 1 of a subscription is `ContractCreated`
  whatever the event (the first state finsync saw); later versions are `ContractAmended`,
  or `ContractCancelled` for `customer.subscription.deleted`.
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

from finsync.connectors.stripe import objects
from finsync.connectors.stripe.objects import Obj, SourceSettings
from finsync.domain import json_limits
from finsync.domain.aggregate import AggregateRef
from finsync.domain.envelope import DraftEnvelope
from finsync.domain.errors import MappingError
from finsync.domain.events import (
    AnyEvent,
    ContractAmended,
    ContractCancelled,
    ContractCreated,
    CreditMemoIssued,
    CustomerUpserted,
    InvoiceIssued,
    PaymentApplied,
    RefundIssued,
)

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
        json_limits.check_body(body)  # depth and size before the parser sees it
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


def translate(settings: SourceSettings, source: str, body: bytes) -> list[DraftEnvelope]:
    """The canonical draft envelopes of one raw body of a Stripe source."""
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
    version = _version(delivery) if kind in VERSIONED else ISSUED_ONCE
    return [draft(source, delivery, event, version, index)
            for index, event in enumerate(handler(delivery, settings))]


UNSUPPORTED = frozenset({"invoice.voided", "invoice.marked_uncollectible", "credit_note.voided",
                         "charge.dispute.created", "charge.dispute.closed",
                         "charge.dispute.funds_withdrawn", "charge.dispute.funds_reinstated"})

# The aggregate version of a document issued once (invoices, credit memos, payments, refunds).
ISSUED_ONCE = 1

Handler = Callable[[Delivery, SourceSettings], list[AnyEvent]]


def _customer(d: Delivery, settings: SourceSettings) -> list[AnyEvent]:
    return [CustomerUpserted(objects.customer(d.object, settings, _version(d)))]


def _subscription(d: Delivery, settings: SourceSettings) -> list[AnyEvent]:
    version = _version(d)
    current = objects.contract(d.object, settings, version)
    if version == 1:
        return [ContractCreated(current)]
    cancelled = d.type == "customer.subscription.deleted"
    previous = objects.child(objects.child(d.event, "data"), "previous_attributes")
    amendment = objects.amendment(d.id, d.type, objects.day(d.created, "event.created"),
                                  previous, current, cancelled)
    if cancelled:
        return [ContractCancelled(amendment)]
    return [ContractAmended(amendment)]


def _version(d: Delivery) -> int:
    if d.version is None or d.version < 1:
        raise MappingError(f"{d.type} needs a positive sequenced version", code="invalid_event")
    return d.version


def _invoice(d: Delivery, settings: SourceSettings) -> list[AnyEvent]:
    obj = d.object
    if obj.get("status") == "draft":
        return []  # not issued yet: invoice.finalized follows
    issued: list[AnyEvent] = [InvoiceIssued(objects.invoice(obj, settings))]
    if d.type in INVOICE_PAID and (paid := objects.invoice_payment(obj, settings)):
        issued.append(PaymentApplied(paid))
    return issued


def _credit_note(d: Delivery, settings: SourceSettings) -> list[AnyEvent]:
    return [CreditMemoIssued(objects.credit_memo(d.object, settings))]


def _intent(d: Delivery, settings: SourceSettings) -> list[AnyEvent]:
    if objects.id_of(d.object.get("invoice")):
        return []  # an invoice's payment: invoice.paid carries it with its application
    return [PaymentApplied(objects.intent_payment(d.object, settings))]


def _charge_refunded(d: Delivery, settings: SourceSettings) -> list[AnyEvent]:
    charge = d.object
    customer = objects.ref(charge, "customer", "charge")
    return [RefundIssued(objects.refund(item, customer, settings))
            for item in objects.listed(charge, "refunds", "charge")
            if item.get("status") in (None, "succeeded")]


def _refund(d: Delivery, settings: SourceSettings) -> list[AnyEvent]:
    obj = d.object
    if obj.get("status") not in (None, "succeeded"):
        return []  # pending, failed or cancelled refunds move no money yet
    customer = objects.ref(objects.child(obj, "charge"), "customer", "refund.charge")
    return [RefundIssued(objects.refund(obj, customer, settings))]


_HANDLERS: dict[str, Handler] = {
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


def draft(source: str, d: Delivery, event: AnyEvent, version: int,
          index: int) -> DraftEnvelope:
    """Event number `index` (from 0) of one Stripe event in its envelope, its aggregate at
    `version`."""
    own = event.aggregate()
    suffix = "" if index == 0 else f"/{own.type}:{own.id}"
    return DraftEnvelope(
        event, source, d.id + suffix, objects.instant(d.created, "event.created"),
        correlation_of(d.object), aggregate=AggregateRef(event.aggregate_type, own.id, version))
