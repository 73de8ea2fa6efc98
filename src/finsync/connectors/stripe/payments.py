"""Payments and refunds as canonical documents."""

from __future__ import annotations

from finsync.connectors.stripe.delivery import Delivery, Handler, Planner
from finsync.connectors.stripe.objects import (
    Obj,
    SourceSettings,
    built,
    child,
    currency_of,
    day,
    id_of,
    listed,
    minor,
    ref,
    refs,
    text,
)
from finsync.domain.events import AnyEvent, PaymentApplied, RefundIssued
from finsync.domain.payment import Payment, PaymentApplication, Refund

# -- payments and refunds -------------------------------------------------------------------

def invoice_payment_id(inv: Obj) -> str | None:
    """The payment that paid an invoice: its PaymentIntent, else its Charge (old shape), else
    the first of the current shape's `payments`."""
    found = id_of(inv.get("payment_intent")) or id_of(inv.get("charge"))
    for entry in listed(inv, "payments", "invoice") if not found else ():
        payment = child(entry, "payment")
        found = found or id_of(payment.get("payment_intent")) or id_of(payment.get("charge"))
    return found


def invoice_payment(inv: Obj, settings: SourceSettings) -> Payment | None:
    """The payment applied to a paid invoice; None when nothing was paid (e.g. zero due)."""
    path = "invoice"
    currency = currency_of(inv, path)
    paid = minor(inv, "amount_paid", currency, path)
    if paid.amount <= 0:
        return None
    inv_id = text(inv, "id", path)
    payment_id = invoice_payment_id(inv) or f"paid_out_of_band_{inv_id}"
    paid_at = child(inv, "status_transitions").get("paid_at") or inv.get("created")
    return built(path, lambda: Payment(
        payment_id, ref(inv, "customer", path),
        settings.legal_entity, paid, day(paid_at, f"{path}.paid_at"),
        (PaymentApplication(inv_id, paid),), refs(payment_id)))


def intent_payment(intent: Obj, settings: SourceSettings) -> Payment:
    """A PaymentIntent not tied to an invoice: money received on account (unapplied)."""
    path = "payment_intent"
    currency = currency_of(intent, path)
    received = intent.get("amount_received") or intent.get("amount")
    intent_id = text(intent, "id", path)
    return built(path, lambda: Payment(
        intent_id, ref(intent, "customer", path),
        settings.legal_entity, minor({"amount": received}, "amount", currency, path),
        day(intent.get("created"), f"{path}.created"), (), refs(intent_id)))


def refund(obj: Obj, customer_id: str, settings: SourceSettings) -> Refund:
    path = "refund"
    refund_id, currency = text(obj, "id", path), currency_of(obj, path)
    payment_id = id_of(obj.get("payment_intent")) or id_of(obj.get("charge"))
    return built(path, lambda: Refund(
        refund_id, payment_id or ref(obj, "charge", path), customer_id,
        settings.legal_entity, minor(obj, "amount", currency, path),
        day(obj.get("created"), f"{path}.created"), str(obj.get("reason") or "refund"),
        refs(refund_id)))


# -- handlers ---------------------------------------------------------------------------------

IGNORED = frozenset({
    "invoice_payment.paid",  # carried by invoice.paid
    "payment_intent.created", "payment_intent.processing", "payment_intent.payment_failed",
    "payment_intent.canceled", "payment_intent.requires_action",
    "payment_intent.amount_capturable_updated", "payment_intent.partially_funded",
    "charge.succeeded", "charge.captured", "charge.pending", "charge.failed",
    "charge.updated", "charge.expired",  # carried by payment_intent / invoice events
    "charge.refund.updated",  # carried by refund.updated
})
UNSUPPORTED: frozenset[str] = frozenset()  # disputes: `disputes`
RELATED: dict[str, Planner] = {}


def _intent(d: Delivery, settings: SourceSettings) -> list[AnyEvent]:
    if id_of(d.object.get("invoice")):
        return []  # an invoice's payment: invoice.paid carries it with its application
    return [PaymentApplied(intent_payment(d.object, settings))]


def _charge_refunded(d: Delivery, settings: SourceSettings) -> list[AnyEvent]:
    charge = d.object
    customer = ref(charge, "customer", "charge")
    return [RefundIssued(refund(item, customer, settings))
            for item in listed(charge, "refunds", "charge")
            if item.get("status") in (None, "succeeded")]


def _refund(d: Delivery, settings: SourceSettings) -> list[AnyEvent]:
    obj = d.object
    if obj.get("status") not in (None, "succeeded"):
        return []  # pending, failed or cancelled refunds move no money yet
    customer = ref(child(obj, "charge"), "customer", "refund.charge")
    return [RefundIssued(refund(obj, customer, settings))]


HANDLERS: dict[str, Handler] = {
    "payment_intent.succeeded": _intent,
    "charge.refunded": _charge_refunded,
    "refund.created": _refund,
    "refund.updated": _refund,
}
