"""Older Stripe API shapes lifted to the current one (basil, 2025-03-31, and later), so that
one mapping reads both.

Rules:
- An event is in an older shape when its `api_version` is before basil (localstripe sends
  "2017-08-15"); an event without one is current. An older event carries the links between
  payments and invoices that basil removed (`invoice.payment_intent`, `invoice.charge`,
  `payment_intent.invoice`, `charge.invoice`), so nothing is fetched for them
  (`carries_links`); the poller fetches the invoice payments of a current one.
- Objects are lifted by their own shape (an old key present), whatever the event's version:
  an object the poller fetched comes in the client's API version, and localstripe answers
  in the old shape whatever version it is asked for.
- A lifted invoice holds its payment as the current shape lists it (`payments`, as
  `expand[]=payments` gives it). A lifted PaymentIntent or charge loses its `invoice`, and
  the delivery gains the list of invoice payments a current one is mapped from
  (`related[INVOICE_PAYMENTS]`, as `GET /v1/invoice_payments` answers it); so does a
  refund whose expanded charge names its invoice.
- Pure, and it never guesses: what an old object does not say stays unsaid.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from finsync.connectors.stripe.delivery import Delivery, snapshot
from finsync.connectors.stripe.objects import Obj, child, id_of

BASIL = "2025-03-31"
INVOICE_PAYMENTS = "invoice_payments"  # the related key of a payment's invoice payments
_LINKS = ("payment_intent", "charge")  # an old invoice's links to its payment


def older(event: Obj) -> bool:
    """Whether the event was rendered before basil (its objects may hold the old links)."""
    version = event.get("api_version")
    return isinstance(version, str) and version[:10] < BASIL


def carries_links(event: Obj) -> bool:
    """Whether the event's own object says which invoices its payment paid."""
    return older(event)


def delivery(d: Delivery) -> Delivery:
    """The delivery with every object in the current shape."""
    event = _event(d.event)
    current = None if d.current is None else _object(d.current)
    related = {key: _object(value) for key, value in d.related.items()}
    paid = _payment_link(d.current if d.current is not None else snapshot(d.event))
    if paid is not None and INVOICE_PAYMENTS not in related:
        related[INVOICE_PAYMENTS] = paid
    return replace(d, event=event, current=current, related=related)


def _event(event: Obj) -> Obj:
    data = child(event, "data")
    obj = data.get("object")
    if not isinstance(obj, dict):
        return event
    return {**event, "data": {**data, "object": _object(obj)}}


def _object(obj: Obj) -> dict[str, Any]:
    kind = obj.get("object")
    if kind == "invoice":
        return _invoice(obj)
    if kind in ("payment_intent", "charge") and "invoice" in obj:
        return {k: v for k, v in obj.items() if k != "invoice"}
    if kind == "list" and isinstance(obj.get("data"), list):
        return {**obj, "data": [_object(item) if isinstance(item, dict) else item
                                for item in obj["data"]]}
    return dict(obj)


def _invoice(inv: Obj) -> dict[str, Any]:
    if not any(key in inv for key in _LINKS):
        return dict(inv)
    lifted = {k: v for k, v in inv.items() if k not in _LINKS}
    if "payments" in inv:
        return lifted
    payment = payment_of(inv)
    if payment is not None:
        lifted["payments"] = _listing([_invoice_payment(inv, payment)])
    return lifted


def payment_of(inv: Obj) -> dict[str, str] | None:
    """The current shape's `payment` of an old invoice's PaymentIntent, else its charge."""
    intent = id_of(inv.get("payment_intent"))
    if intent is not None:
        return {"type": "payment_intent", "payment_intent": intent}
    charge = id_of(inv.get("charge"))
    if charge is not None:
        return {"type": "charge", "charge": charge}
    return None


def _invoice_payment(inv: Obj, payment: dict[str, str]) -> dict[str, Any]:
    """The invoice payment a current invoice lists for the payment an old one names: paid
    when the invoice is (it had one payment), else still open."""
    paid = inv.get("status") == "paid"
    return {"object": "invoice_payment", "id": f"inpay_{inv.get('id')}",
            "invoice": inv.get("id"), "currency": inv.get("currency"),
            "amount_paid": inv.get("amount_paid") if paid else None,
            "amount_requested": inv.get("amount_due", inv.get("total")),
            "status": "paid" if paid else "open", "payment": payment}


def _payment_link(obj: Obj) -> dict[str, Any] | None:
    """The invoice payments of an old PaymentIntent or charge that names its invoice (a
    refund's, through its expanded charge)."""
    kind = obj.get("object")
    if kind == "refund":
        return _payment_link(child(obj, "charge"))
    if kind not in ("payment_intent", "charge") or "invoice" not in obj:
        return None
    invoice = obj.get("invoice")
    if id_of(invoice) is None:
        return _listing([])  # on account: it paid no invoice
    intent = obj.get("id") if kind == "payment_intent" else id_of(obj.get("payment_intent"))
    if intent:
        payment = {"type": "payment_intent", "payment_intent": intent}
    else:
        payment = {"type": "charge", "charge": obj.get("id")}
    amount = obj.get("amount_received") or obj.get("amount")
    paid = obj.get("status") == "succeeded" or kind == "charge"
    entry = {"object": "invoice_payment", "id": f"inpay_{id_of(invoice)}",
             "invoice": invoice, "currency": obj.get("currency"),
             "amount_paid": amount if paid else None, "amount_requested": obj.get("amount"),
             "status": "paid" if paid else "open", "payment": payment}
    return _listing([entry])


def _listing(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "list", "data": items, "has_more": False,
            "url": "/v1/invoice_payments"}
