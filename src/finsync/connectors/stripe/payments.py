"""Payments, refunds and declined payment attempts as canonical documents; and how much of an
invoice the customer's credit balance paid.

Rules (each canonical payment comes from one Stripe event type, so the order events arrive
in never matters):
- A PaymentIntent that succeeded (`payment_intent.succeeded`) is one payment of what it
  received, applied to the invoices its invoice payments name: the list is fetched beside
  the event (`GET /v1/invoice_payments?payment[payment_intent]=…`), since basil no event
  carries the link; an older event names its invoice itself (`upcast`). With none it is
  money on account.
- An invoice's other payments come with `invoice.paid` (and its twin
  `invoice.payment_succeeded`, which makes the same documents): a charge without a
  PaymentIntent, a payment record (paid outside Stripe and recorded there), and what an
  invoice marked paid out of band still owed beyond its listed payments
  (`paid_out_of_band_<invoice>`; so too an older invoice that lists no payment). An
  amount paid that its payments do not explain is refused (`payment_unlinked`).
  `invoice_payment.paid` is acknowledged: one of these two carries each of its payments.
- A refund gives back its payment (the PaymentIntent, else the charge). A refund of a
  payment that paid an invoice re-opens that invoice, except the part a credit note's refund
  pays out of the credit the note left (`from_credit`; the credit notes of the invoices are
  fetched beside it). A refund of money on account pays out the customer's credit.
- A declined or failed PaymentIntent (`payment_intent.payment_failed`) is a declined
  attempt (`payment.declined`): the processor's decline code (never its message) and the
  invoices it was for. It posts nothing: the hub shows it on its thread (dunning).
- A payment, refund or attempt belongs to the commercial thread of the invoice it paid
  (`paid_invoice`), else to its own.
- Customer balance: a credit note sets its `pre_payment_amount` against its invoice; the
  rest becomes the customer's credit (`credit_note_applied`). An invoice's
  `ending_balance - starting_balance` (Stripe's balance is negative in credit) is the
  customer credit it consumed when it was finalized (`customer_credit_applied`). A
  negative invoice pushes its whole total onto the balance (that is the invoice's own
  effect); a debit balance pulled into an invoice is refused (`customer_debit_balance`):
  the ledger cannot yet move an older receivable into it.
"""

from __future__ import annotations

from collections.abc import Mapping

from finsync.connectors.stripe import upcast
from finsync.connectors.stripe.client import (
    CREDIT_NOTES_OF_INTENT,
    INVOICE_PAYMENTS_OF_INTENT,
    INVOICE_PAYMENTS_OF_INVOICE,
)
from finsync.connectors.stripe.delivery import Delivery, Fetch, Handler, Planner, snapshot
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
from finsync.domain.errors import MappingError
from finsync.domain.events import AnyEvent, PaymentApplied, PaymentDeclined, RefundIssued
from finsync.domain.money import Money, total
from finsync.domain.payment import Payment, PaymentApplication, PaymentAttempt, Refund

INVOICE_PAYMENTS = upcast.INVOICE_PAYMENTS
CREDIT_NOTES = "credit_notes"  # the related key of the credit notes a refund may belong to


# -- the invoice payments beside an event -----------------------------------------------------

def _links(d: Delivery) -> list[Obj]:
    """The invoice payments fetched (or lifted from an older shape) beside the event."""
    return listed(d.related, INVOICE_PAYMENTS, "related")


def _paying(links: list[Obj], payment_id: str) -> list[Obj]:
    """The invoice payments made by `payment_id` (a PaymentIntent or a charge)."""
    found = []
    for link in links:
        payment = child(link, "payment")
        made_by = id_of(payment.get("payment_intent")) or id_of(payment.get("charge"))
        if made_by == payment_id and link.get("status") != "canceled":
            found.append(link)
    return found


def paid_invoice(d: Delivery) -> Obj | None:
    """The invoice a payment event's payment was for (expanded, or named by its id), so that
    the payment joins the invoice's commercial thread; None for other events."""
    if d.type not in THREADED:
        return None
    for link in _links(d):
        invoice = link.get("invoice")
        if isinstance(invoice, Mapping):
            return invoice
        if isinstance(invoice, str) and invoice:
            return {"object": "invoice", "id": invoice}
    return None


# -- payments ---------------------------------------------------------------------------------

def _applications(links: list[Obj], received: Money, path: str) -> tuple[PaymentApplication,
                                                                          ...]:
    """What the payment paid of each invoice: the invoice payment's amount paid (its amount
    requested while Stripe has not marked it paid yet), never beyond what was received."""
    left, applied = received, []
    for n, link in enumerate(links):
        where = f"{path}[{n}]"
        if currency_of(link, where) != received.currency:
            raise MappingError(f"{where} is not in {received.currency}",
                               code="currency_mismatch")
        key = "amount_paid" if link.get("amount_paid") is not None else "amount_requested"
        take = min(minor(link, key, received.currency, where), left, key=lambda m: m.amount)
        if take.amount > 0:
            applied.append(PaymentApplication(ref(link, "invoice", where), take))
            left -= take
    return tuple(applied)


def _customer(obj: Obj, links: list[Obj], path: str) -> str:
    """The object's customer, else the customer of the invoice it paid (expanded)."""
    found = id_of(obj.get("customer"))
    for link in links:
        found = found or id_of(child(link, "invoice").get("customer"))
    if found is None:
        raise MappingError(f"{path}.customer is required", code="missing_field")
    return found


def intent_payment(d: Delivery, settings: SourceSettings) -> Payment:
    """A PaymentIntent that succeeded: received on the day Stripe said so."""
    intent, path = d.object, "payment_intent"
    intent_id, currency = text(intent, "id", path), currency_of(intent, path)
    key = "amount_received" if intent.get("amount_received") else "amount"
    received = minor(intent, key, currency, path)
    links = _paying(_links(d), intent_id)
    applications = _applications(links, received, "related.invoice_payments")
    return built(path, lambda: Payment(
        intent_id, _customer(intent, links, path), settings.legal_entity, received,
        day(d.created, "event.created"), applications, refs(intent_id)))


def invoice_payments(d: Delivery, settings: SourceSettings) -> list[Payment]:
    """The payments of a paid invoice that no PaymentIntent event carries: charges without a
    PaymentIntent, payment records, and what was paid out of band beyond all of them."""
    inv, path = d.object, "invoice"
    inv_id, currency = text(inv, "id", path), currency_of(inv, path)
    links = _links(d) if INVOICE_PAYMENTS in d.related else listed(inv, "payments", path)
    paid = [link for link in links if _is_paid(link)]
    found = [_linked_payment(inv, link, currency, settings) for link in paid
             if child(link, "payment").get("type") != "payment_intent"]
    listed_total = total([minor(link, "amount_paid", currency, f"{path}.payments")
                          for link in paid], currency)
    out_of_band = inv.get("paid_out_of_band") is True
    # Marked paid out of band, the invoice was paid all it asked for.
    overall = minor(inv, "amount_due" if out_of_band else "amount_paid", currency, path)
    rest = overall - listed_total
    if rest.amount <= 0:
        return found
    if not (out_of_band or not links):  # an older invoice that lists no payment at all
        raise MappingError(f"invoice {inv_id} says {overall} was paid; its payments come to "
                           f"{listed_total}", code="payment_unlinked")
    found.append(_payment(inv, f"paid_out_of_band_{inv_id}", rest, settings))
    return found


def _is_paid(link: Obj) -> bool:
    status = link.get("status")
    return status == "paid" or (status is None and link.get("amount_paid") is not None)


def paid_by(link: Obj) -> str | None:
    """The canonical id of the payment an invoice payment names: its PaymentIntent, charge
    or payment record (`payment.type` says which). Stripe's records name it the same."""
    payment = child(link, "payment")
    return id_of(payment.get(str(payment.get("type"))))


def _linked_payment(inv: Obj, link: Obj, currency: str, settings: SourceSettings) -> Payment:
    payment_id = paid_by(link)
    if payment_id is None:
        kind = child(link, "payment").get("type")
        raise MappingError(f"invoice payment {link.get('id')}: payment.{kind} is required",
                           code="missing_field")
    return _payment(inv, payment_id, minor(link, "amount_paid", currency, "invoice.payments"),
                    settings)


def _payment(inv: Obj, payment_id: str, amount: Money, settings: SourceSettings) -> Payment:
    path = "invoice"
    paid_at = child(inv, "status_transitions").get("paid_at") or inv.get("created")
    return built(path, lambda: Payment(
        payment_id, ref(inv, "customer", path), settings.legal_entity, amount,
        day(paid_at, f"{path}.paid_at"), (PaymentApplication(text(inv, "id", path), amount),),
        refs(payment_id)))


# -- refunds ----------------------------------------------------------------------------------

def refund(obj: Obj, customer_id: str, d: Delivery, settings: SourceSettings) -> Refund:
    path = "refund"
    refund_id, currency = text(obj, "id", path), currency_of(obj, path)
    payment_id = id_of(obj.get("payment_intent")) or ref(obj, "charge", path)
    amount = minor(obj, "amount", currency, path)
    paid = [ref(link, "invoice", "related.invoice_payments")
            for link in _paying(_links(d), payment_id)]
    reopens = paid[0] if paid else None
    from_credit = None if reopens is None else _paid_out_by_notes(d, refund_id, amount)
    return built(path, lambda: Refund(
        refund_id, payment_id, customer_id, settings.legal_entity, amount,
        day(obj.get("created"), f"{path}.created"), str(obj.get("reason") or "refund"),
        refs(refund_id), from_credit, reopens))


def _paid_out_by_notes(d: Delivery, refund_id: str, amount: Money) -> Money:
    """How much of the refund credit notes made (`refunds[].amount_refunded`): it pays out
    the credit those notes left instead of re-opening the invoice."""
    found = Money.zero(amount.currency)
    for n, note in enumerate(listed(d.related, CREDIT_NOTES, "related")):
        for part in note.get("refunds") or ():
            if isinstance(part, Mapping) and id_of(part.get("refund")) == refund_id:
                found += minor(part, "amount_refunded", amount.currency,
                               f"related.credit_notes[{n}].refunds")
    return min(found, amount, key=lambda m: m.amount)


# -- declined attempts ------------------------------------------------------------------------

def declined_attempt(d: Delivery, settings: SourceSettings) -> PaymentAttempt:
    intent, path = d.object, "payment_intent"
    intent_id, currency = text(intent, "id", path), currency_of(intent, path)
    error = child(intent, "last_payment_error")
    code = next((c for c in (error.get("decline_code"), error.get("code"))
                 if isinstance(c, str) and c), "declined")
    # A failed charge is one attempt; an attempt with no charge is this event's.
    attempt_id = id_of(error.get("charge")) or f"{intent_id}/{d.id}"
    links = _paying(_links(d), intent_id)
    invoices = tuple(dict.fromkeys(ref(link, "invoice", "related.invoice_payments")
                                   for link in links))
    return built(path, lambda: PaymentAttempt(
        attempt_id, intent_id, _customer(intent, links, path), settings.legal_entity,
        minor(intent, "amount", currency, path), day(d.created, "event.created"), code,
        invoices, refs(attempt_id)))


# -- customer balance -------------------------------------------------------------------------

def customer_credit_applied(inv: Obj, currency: str) -> Money | None:
    """The customer credit a finalized invoice consumed; None when its balance did not
    move (or it is not finalized: no `ending_balance` yet)."""
    path = "invoice"
    if inv.get("ending_balance") is None or inv.get("starting_balance") is None:
        return None
    moved = minor(inv, "ending_balance", currency, path) \
        - minor(inv, "starting_balance", currency, path)
    grand = minor(inv, "total", currency, path)
    if moved.amount > 0:
        return moved
    if moved.is_zero or (grand.amount < 0 and moved == grand):
        return None  # a negative invoice's total goes to the balance: its own effect
    raise MappingError(f"invoice {inv.get('id')} takes {-moved} the customer owed before into "
                       "its amount due; the ledger cannot move an older receivable into an "
                       "invoice", code="customer_debit_balance")


def credit_note_applied(note: Obj, currency: str) -> Money | None:
    """What a credit note set against its invoice's amount due (`pre_payment_amount`); the
    rest (`post_payment_amount`) was refunded or credited to the customer's balance, and
    becomes a customer credit that a refund pays out or a later invoice consumes. None when
    the note does not say (older shapes)."""
    if note.get("pre_payment_amount") is None:
        return None
    return minor(note, "pre_payment_amount", currency, "credit_note")


# -- handlers ---------------------------------------------------------------------------------

IGNORED = frozenset({
    "invoice_payment.paid",  # carried by payment_intent.succeeded, else by invoice.paid
    "payment_intent.created", "payment_intent.processing",
    "payment_intent.canceled", "payment_intent.requires_action",
    "payment_intent.amount_capturable_updated", "payment_intent.partially_funded",
    "charge.succeeded", "charge.captured", "charge.pending", "charge.failed",
    "charge.updated", "charge.expired",  # carried by payment_intent / invoice events
    "charge.refund.updated",  # carried by refund.updated
})
UNSUPPORTED: frozenset[str] = frozenset()  # disputes: `disputes`
# Payment events whose documents join the thread of the invoice they paid.
THREADED = frozenset({"payment_intent.succeeded", "payment_intent.payment_failed",
                      "charge.refunded", "refund.created", "refund.updated"})
PAID = frozenset({"invoice.paid", "invoice.payment_succeeded"})


def _intent_links(event: Obj) -> tuple[Fetch, ...]:
    intent_id = id_of(snapshot(event).get("id"))
    if upcast.carries_links(event) or intent_id is None:
        return ()
    return (Fetch(INVOICE_PAYMENTS, INVOICE_PAYMENTS_OF_INTENT, intent_id),)


def _refund_links(event: Obj) -> tuple[Fetch, ...]:
    intent_id = id_of(snapshot(event).get("payment_intent"))
    if upcast.carries_links(event) or intent_id is None:
        return ()
    return (Fetch(INVOICE_PAYMENTS, INVOICE_PAYMENTS_OF_INTENT, intent_id),
            Fetch(CREDIT_NOTES, CREDIT_NOTES_OF_INTENT, intent_id))


def _invoice_links(event: Obj) -> tuple[Fetch, ...]:
    inv = snapshot(event)
    inv_id = id_of(inv.get("id"))
    complete = isinstance(inv.get("payments"), Mapping) and not child(inv, "payments").get(
        "has_more")
    nothing_paid = not inv.get("amount_paid") and inv.get("paid_out_of_band") is not True
    if upcast.carries_links(event) or inv_id is None or complete or nothing_paid:
        return ()
    return (Fetch(INVOICE_PAYMENTS, INVOICE_PAYMENTS_OF_INVOICE, inv_id),)


RELATED: dict[str, Planner] = {
    "payment_intent.succeeded": _intent_links,
    "payment_intent.payment_failed": _intent_links,
    "charge.refunded": _refund_links,
    "refund.created": _refund_links,
    "refund.updated": _refund_links,
    **{kind: _invoice_links for kind in PAID},
}


def _intent(d: Delivery, settings: SourceSettings) -> list[AnyEvent]:
    return [PaymentApplied(intent_payment(d, settings))]


def _declined(d: Delivery, settings: SourceSettings) -> list[AnyEvent]:
    return [PaymentDeclined(declined_attempt(d, settings))]


def _charge_refunded(d: Delivery, settings: SourceSettings) -> list[AnyEvent]:
    charge = d.object
    customer = ref(charge, "customer", "charge")
    return [RefundIssued(refund(item, customer, d, settings))
            for item in listed(charge, "refunds", "charge")
            if item.get("status") in (None, "succeeded")]


def _refund(d: Delivery, settings: SourceSettings) -> list[AnyEvent]:
    obj = d.object
    if obj.get("status") not in (None, "succeeded"):
        return []  # pending, failed or cancelled refunds move no money yet
    customer = ref(child(obj, "charge"), "customer", "refund.charge")
    return [RefundIssued(refund(obj, customer, d, settings))]


HANDLERS: dict[str, Handler] = {
    "payment_intent.succeeded": _intent,
    "payment_intent.payment_failed": _declined,
    "charge.refunded": _charge_refunded,
    "refund.created": _refund,
    "refund.updated": _refund,
}
