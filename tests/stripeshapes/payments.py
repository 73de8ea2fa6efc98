"""Payments in Stripe's CURRENT API shape, built from Stripe's own examples (`shaped`):
PaymentIntents, the invoice payments that link them to invoices (`GET /v1/invoice_payments`,
fetched beside a payment event since basil), refunds and the credit notes that make them,
and the invoices they pay, with their customer balance (`starting_balance`,
`ending_balance`).

`old_*` builders write the OLDER shape localstripe sends (api_version 2017-08-15:
`invoice.payment_intent` and `invoice.charge`, `payment_intent.invoice`), by hand: Stripe's
examples are current.
"""

from __future__ import annotations

from typing import Any

from tests.stripeshapes import DAY, T0, Obj, listing, shaped

OLD_API_VERSION = "2017-08-15"


def line(line_id: str, amount: int, *, currency: str = "usd", product: str = "prod_seats",
         subscription: str | None = "sub_1") -> Obj:
    """A subscription line for one period of 30 days from T0, no tax, no discount."""
    parent: Obj = {"type": "subscription_item_details", "subscription_item_details": {
        "invoice_item": None, "proration": False, "subscription": subscription,
        "subscription_item": "si_1"}}
    return shaped("line_item", id=line_id, amount=amount, currency=currency,
                  description=f"{product} for the period", quantity=1,
                  period={"start": T0, "end": T0 + 30 * DAY}, parent=parent, taxes=[],
                  pricing={"type": "price_details", "unit_amount_decimal": str(amount),
                           "price_details": {"price": f"price_{product}",
                                             "product": product}})


def invoice(inv: str, lines: list[Obj], *, status: str = "paid", currency: str = "usd",
            customer: str = "cus_1", starting_balance: int = 0, ending_balance: int = 0,
            amount_paid: int | None = None, subscription: str | None = "sub_1",
            paid_at: int = T0 + 60) -> Obj:
    """A finalized invoice of `lines`. The customer's balance went from `starting_balance`
    to `ending_balance` (negative: a credit), so the amount due is the total less the credit
    consumed; a paid invoice has paid all of it unless `amount_paid` says otherwise."""
    grand = sum(int(x["amount"]) for x in lines)
    due = grand - (ending_balance - starting_balance)
    paid = (due if status == "paid" else 0) if amount_paid is None else amount_paid
    parent = None if subscription is None else {
        "type": "subscription_details", "quote_details": None,
        "subscription_details": {"metadata": None, "subscription": subscription}}
    return shaped(
        "invoice", id=inv, number=inv.upper(), customer=customer, currency=currency,
        status=status, created=T0, due_date=None, effective_at=T0, subtotal=grand,
        total=grand, amount_due=due, amount_paid=paid, amount_remaining=due - paid,
        amount_overpaid=0, starting_balance=starting_balance, ending_balance=ending_balance,
        parent=parent, subscription=None,
        status_transitions={"finalized_at": T0, "marked_uncollectible_at": None,
                            "paid_at": paid_at if status == "paid" else None,
                            "voided_at": None},
        lines=listing(lines, f"/v1/invoices/{inv}/lines"))


def invoice_payment(inv: str | Obj, amount: int, *, intent: str | None = None,
                    charge: str | None = None, record: str | None = None,
                    status: str = "paid", currency: str = "usd") -> Obj:
    """The link of one payment (a PaymentIntent, a charge without one, or a payment record)
    to one invoice (its id, or the invoice itself as `expand[]=data.invoice` gives it)."""
    kind, made_by = next((k, v) for k, v in (("payment_intent", intent), ("charge", charge),
                                             ("payment_record", record)) if v)
    inv_id = inv if isinstance(inv, str) else inv["id"]
    return shaped("invoice_payment", id=f"inpay_{inv_id}_{made_by}", invoice=inv,
                  amount_paid=amount if status == "paid" else None, amount_requested=amount,
                  currency=currency, status=status, created=T0,
                  payment={"type": kind, kind: made_by},
                  status_transitions={"canceled_at": None,
                                      "paid_at": T0 + 60 if status == "paid" else None})


def links(*payments: Obj) -> Obj:
    """The invoice payments the poller fetched (`related["invoice_payments"]`)."""
    return listing(list(payments), "/v1/invoice_payments")


def payment_intent(pi: str, amount: int, *, status: str = "succeeded", currency: str = "usd",
                   customer: str | None = "cus_1", received: int | None = None,
                   decline_code: str | None = None, failed_charge: str | None = None) -> Obj:
    """A PaymentIntent; a failed one carries its `last_payment_error`."""
    error: Obj | None = None
    if status != "succeeded":
        error = {"type": "card_error", "code": "card_declined",
                 "message": "Your card was declined.", "decline_code": decline_code,
                 "charge": failed_charge}
    got = (amount if status == "succeeded" else 0) if received is None else received
    return shaped("payment_intent", id=pi, amount=amount, amount_received=got,
                  currency=currency, customer=customer, created=T0,
                  status="succeeded" if status == "succeeded" else "requires_payment_method",
                  last_payment_error=error, latest_charge=failed_charge,
                  canceled_at=None, next_action=None)


def refund(re: str, amount: int, *, intent: str | None = "pi_1", charge: str | Obj = "ch_1",
           currency: str = "usd", created: int = T0 + 5 * DAY) -> Obj:
    return shaped("refund", id=re, amount=amount, currency=currency, charge=charge,
                  payment_intent=intent, created=created, status="succeeded",
                  reason="requested_by_customer")


def charge(ch: str, amount: int, *, intent: str | None = "pi_1", customer: str = "cus_1",
           refunds: list[Obj] | None = None, currency: str = "usd") -> Obj:
    return shaped("charge", id=ch, amount=amount, amount_captured=amount,
                  amount_refunded=sum(int(r["amount"]) for r in refunds or []),
                  currency=currency, customer=customer, payment_intent=intent, captured=True,
                  refunded=bool(refunds), created=T0,
                  refunds=listing(refunds or [], f"/v1/charges/{ch}/refunds"))


def credit_note(cn: str, inv: str, amount: int, *, refunded: dict[str, int] | None = None,
                currency: str = "usd", invoice_line: str | None = None) -> Obj:
    """A credit note after payment on `inv`, for `amount`, made into the refunds
    `refunded` names (refund id -> amount); what is not refunded went to the balance."""
    parts = [{"amount_refunded": n, "payment_record_refund": None, "refund": re,
              "type": "refund"} for re, n in (refunded or {}).items()]
    credited = {"id": f"cnli_{cn}", "object": "credit_note_line_item", "amount": amount,
                "description": "Service credit", "discount_amount": 0,
                "discount_amounts": [], "invoice_line_item": invoice_line or f"il_{inv}",
                "livemode": False,
                "metadata": None, "pretax_credit_amounts": [], "quantity": 1,
                "tax_rates": [], "taxes": None, "type": "invoice_line_item",
                "unit_amount": None, "unit_amount_decimal": None}
    return shaped("credit_note", id=cn, invoice=inv, customer="cus_1", currency=currency,
                  amount=amount, total=amount, subtotal=amount, created=T0 + 5 * DAY,
                  number=cn.upper(), reason="order_change", pre_payment_amount=0,
                  post_payment_amount=amount, refunds=parts, out_of_band_amount=None,
                  lines=listing([credited], f"/v1/credit_notes/{cn}/lines"))


def notes(*credit_notes: Obj) -> Obj:
    """The credit notes the poller fetched beside a refund (`related["credit_notes"]`)."""
    return listing(list(credit_notes), "/v1/credit_notes")


# -- the older shape, as localstripe sends it --------------------------------------------------

def old_invoice(inv: str, amount: int, *, intent: str | None = "pi_1", charge: str = "ch_1",
                status: str = "paid") -> dict[str, Any]:
    return {"id": inv, "object": "invoice", "customer": "cus_1", "currency": "usd",
            "status": status, "created": T0, "subscription": "sub_1", "total": amount,
            "amount_due": amount, "amount_paid": amount if status == "paid" else 0,
            "starting_balance": 0, "ending_balance": 0, "payment_intent": intent,
            "charge": {"id": charge, "object": "charge"},
            "status_transitions": {"finalized_at": T0, "paid_at": T0 + 60},
            "lines": {"object": "list", "has_more": False, "data": [
                {"id": f"il_{inv}", "object": "line_item", "amount": amount,
                 "currency": "usd", "quantity": 1, "proration": False,
                 "period": {"start": T0, "end": T0 + 30 * DAY},
                 "plan": {"id": "plan_seat", "object": "plan", "amount": amount,
                          "currency": "usd", "interval": "month", "product": "prod_seats"}}]}}


def old_intent(pi: str, amount: int, *, invoice: str | None = "in_1",
               status: str = "succeeded") -> dict[str, Any]:
    """localstripe's PaymentIntent: `invoice`, no `amount_received`; a failed one's
    `last_payment_error` names the failed charge and its code."""
    error = None if status == "succeeded" else {"charge": f"ch_{pi}_failed",
                                                "code": "card_declined",
                                                "message": "Your card was declined."}
    return {"id": pi, "object": "payment_intent", "amount": amount, "currency": "usd",
            "customer": "cus_1", "created": T0, "invoice": invoice,
            "status": status if status == "succeeded" else "requires_payment_method",
            "last_payment_error": error}
