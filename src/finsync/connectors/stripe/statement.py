"""What a Stripe account's own objects state, as of a day (pure: mirrored objects in, facts out).

Rules:
- Figures are Stripe's headline fields, never recomputed from lines: an invoice's `total`,
  `total_excluding_tax`, `amount_paid`, `starting_balance`; a credit note's `total` and
  `total_excluding_tax`; an invoice payment's `amount_paid`; a refund's `amount`; a
  PaymentIntent's `amount_received` (`amount` in older shapes). That is what Stripe says,
  whatever finsync mapped.
- Amounts become `Money` exactly as the mapping makes them (`objects.minor`: the currency's
  exponent, the same limits), and travel as ISO minor units, so both sides of a
  reconciliation count in the same units.
- Dates are UTC days, the ones the mapping books on: an invoice is issued when finalized
  (else created), paid at `status_transitions.paid_at`, voided at `voided_at`; a credit note
  and a refund on `created`; an invoice payment at its `paid_at`.
- A payment is named as the mapping names it: the PaymentIntent (else the Charge) that paid,
  else `paid_out_of_band_<invoice>`.
- `FACTS` lists, per object type, the fields these rules read; `finsync stripe verify`
  compares exactly those with what Stripe's API answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from finsync.connectors.stripe import marks, upcast
from finsync.connectors.stripe.documents import invoice_subscription
from finsync.connectors.stripe.objects import (
    Obj,
    child,
    currency_of,
    day,
    id_of,
    minor,
    ref,
    text,
)
from finsync.connectors.stripe.payments import paid_by

# The fields each rule reads, by object type (dotted paths; ids of expandable fields).
FACTS: Mapping[str, tuple[str, ...]] = {
    "invoice": ("status", "currency", "customer", "total", "total_excluding_tax",
                "amount_paid", "amount_remaining", "starting_balance", "created",
                "status_transitions.finalized_at", "status_transitions.paid_at",
                "status_transitions.voided_at", "parent.subscription_details.subscription",
                "subscription", "payment_intent", "charge"),
    "credit_note": ("status", "currency", "customer", "invoice", "total",
                    "total_excluding_tax", "created", "voided_at"),
    "invoice_payment": ("status", "currency", "invoice", "amount_paid",
                        "payment.payment_intent", "payment.charge", "payment.payment_record",
                        "status_transitions.paid_at"),
    "payment_intent": ("status", "currency", "customer", "amount_received", "created",
                       "invoice"),
    "charge": ("status", "currency", "customer", "amount", "amount_refunded",
               "payment_intent"),
    "refund": ("status", "currency", "amount", "charge", "payment_intent", "created"),
    "subscription": ("status", "currency", "customer", "cancel_at", "ended_at"),
    "customer": ("currency", "balance"),
}


def facts(obj: Obj) -> dict[str, Any]:
    """The fields of `obj` the rules read (`FACTS`), expanded objects as their ids."""
    found: dict[str, Any] = {}
    for path in FACTS.get(str(obj.get("object")), ()):
        value: Any = obj
        for key in path.split("."):
            value = value.get(key) if isinstance(value, Mapping) else None
        found[path] = id_of(value) if isinstance(value, Mapping) else value
    return found


@dataclass(frozen=True, slots=True)
class InvoiceFacts:
    id: str
    customer: str
    currency: str
    contract: str  # the contract it bills: the subscription, or its mark ("" for none)
    issued: date | None  # None: a draft, not issued
    voided: date | None
    total: int  # ISO minor units, as every amount below
    before_tax: int
    balance_applied: int  # the customer's credit balance set against it when finalized
    paid: int
    paid_on: date | None
    payment_id: str

    def counts(self, as_of: date) -> bool:
        """Issued by `as_of` and not voided by then."""
        return (self.issued is not None and self.issued <= as_of
                and (self.voided is None or self.voided > as_of))


def invoice(inv: Obj) -> InvoiceFacts:
    path = "invoice"
    inv_id, currency = text(inv, "id", path), currency_of(inv, path)
    moments = child(inv, "status_transitions")
    total = _minor(inv, "total", currency, path)
    paid_at = moments.get("paid_at")
    return InvoiceFacts(
        inv_id, ref(inv, "customer", path), currency,
        marks.invoice_contract(inv) or invoice_subscription(inv) or "",
        None if inv.get("status") == "draft"
        else day(moments.get("finalized_at") or inv.get("created"), f"{path}.finalized_at"),
        _day_or_none(moments.get("voided_at"), f"{path}.voided_at"),
        total, before_tax(inv, currency, path),
        min(max(-_minor(inv, "starting_balance", currency, path, 0), 0), total),
        _minor(inv, "amount_paid", currency, path, 0),
        _day_or_none(paid_at, f"{path}.paid_at"),
        _older_payment_id(inv) or f"paid_out_of_band_{inv_id}")


def _older_payment_id(inv: Obj) -> str | None:
    """The payment an invoice of an older API version names itself, as the mapping names it
    (`upcast` lifts it into an invoice payment; the books read the invoice as it is)."""
    payment = upcast.payment_of(inv)
    return None if payment is None else paid_by({"payment": payment})


@dataclass(frozen=True, slots=True)
class CreditNoteFacts:
    id: str
    invoice: str
    customer: str
    currency: str
    created: date
    voided: date | None
    total: int
    before_tax: int

    def counts(self, as_of: date) -> bool:
        return self.created <= as_of and (self.voided is None or self.voided > as_of)


def credit_note(note: Obj) -> CreditNoteFacts:
    path = "credit_note"
    currency = currency_of(note, path)
    voided = note.get("voided_at") if note.get("status") == "void" else None
    return CreditNoteFacts(
        text(note, "id", path), ref(note, "invoice", path), ref(note, "customer", path),
        currency, day(note.get("created"), f"{path}.created"),
        _day_or_none(voided, f"{path}.voided_at"),
        _minor(note, "total", currency, path), before_tax(note, currency, path))


@dataclass(frozen=True, slots=True)
class PaymentPart:
    """Money a payment moved on `on`: applied to `invoice`, or received on account ("")."""

    payment_id: str
    invoice: str
    currency: str
    amount: int
    on: date


def invoice_payment(entry: Obj) -> PaymentPart | None:
    """A paid invoice payment; None while open or once cancelled."""
    path = "invoice_payment"
    if entry.get("status") != "paid":
        return None
    currency, invoice_id = currency_of(entry, path), ref(entry, "invoice", path)
    payment_id = paid_by(entry) or f"paid_out_of_band_{invoice_id}"
    paid_at = child(entry, "status_transitions").get("paid_at") or entry.get("created")
    return PaymentPart(payment_id, invoice_id, currency,
                       _minor(entry, "amount_paid", currency, path),
                       day(paid_at, f"{path}.paid_at"))


def intent(pi: Obj) -> PaymentPart | None:
    """A succeeded PaymentIntent as money received (its applications come from elsewhere)."""
    path = "payment_intent"
    if pi.get("status") != "succeeded":
        return None
    currency = currency_of(pi, path)
    received = "amount_received" if pi.get("amount_received") is not None else "amount"
    return PaymentPart(text(pi, "id", path), id_of(pi.get("invoice")) or "", currency,
                       _minor(pi, received, currency, path),
                       day(pi.get("created"), f"{path}.created"))


@dataclass(frozen=True, slots=True)
class RefundFacts:
    id: str
    payment_id: str  # the PaymentIntent, else the Charge, it gives money back from
    charge: str
    currency: str
    amount: int
    created: date


def refund(obj: Obj) -> RefundFacts | None:
    """A succeeded refund; None while pending, or once failed or cancelled."""
    path = "refund"
    if obj.get("status") not in (None, "succeeded"):
        return None
    currency = currency_of(obj, path)
    charge = id_of(obj.get("charge")) or ""
    return RefundFacts(text(obj, "id", path), id_of(obj.get("payment_intent")) or charge,
                       charge, currency, _minor(obj, "amount", currency, path),
                       day(obj.get("created"), f"{path}.created"))


def refund_customer(obj: Obj) -> str | None:
    """The customer a refund names itself: on its expanded charge, else its own field."""
    return id_of(child(obj, "charge").get("customer")) or id_of(obj.get("customer"))


def before_tax(doc: Obj, currency: str, path: str) -> int:
    """`total_excluding_tax` (net of discounts and of every tax, included or on top), else
    the total less every tax amount Stripe lists on it (older shapes)."""
    if doc.get("total_excluding_tax") is not None:
        return _minor(doc, "total_excluding_tax", currency, path)
    taxes = doc.get("total_taxes") or doc.get("total_tax_amounts") or []
    tax = sum(_minor(t, "amount", currency, f"{path}.total_taxes") for t in taxes
              if isinstance(t, Mapping))
    return _minor(doc, "total", currency, path) - tax


def _minor(obj: Obj, key: str, currency: str, path: str, absent: int | None = None) -> int:
    if absent is not None and obj.get(key) is None:
        return absent
    return minor(obj, key, currency, path).to_minor()


def _day_or_none(timestamp: Any, path: str) -> date | None:
    return None if timestamp is None else day(timestamp, path)
