"""Invoices, invoice lines, credit notes and their lines in the CURRENT Stripe API shape,
built on Stripe's own examples (`shaped`).

Amounts are integer minor units as Stripe sends them, in Stripe's own exponent of the
currency (`connectors/stripe/currency.py`): 1 250 USD is `125_000`, 1 250 JPY is `1_250`,
1.250 KWD is `1_250`, and 1 250 ISK is `125_000` (Stripe keeps ISK two-decimal on its API).

Shapes, as documented at docs.stripe.com/api (2025-03-31 "basil" and later):
- a line names what it bills in `pricing.price_details` (price, product) and why in
  `parent`: `subscription_item_details` (subscription, subscription item, proration) or
  `invoice_item_details` (an invoice item, one-off or added to a subscription's invoice);
- `discount_amounts` holds every discount of a line, the invoice's own spread over its
  lines; `taxes` holds each tax with its `tax_behavior` (`exclusive`, `inclusive`);
- an invoice names its subscription in `parent.subscription_details` (a one-off invoice has
  no parent) and its status changes in `status_transitions`;
- a credit note line credits one invoice line (`type` `invoice_line_item`,
  `invoice_line_item`) or none (`custom_line_item`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tests.stripeshapes import DAY, T0, listing, shaped

Obj = dict[str, Any]


def tax(amount: int, behavior: str = "exclusive", rate: str = "txr_vat") -> Obj:
    """One entry of a line's `taxes`."""
    return {"amount": amount, "tax_behavior": behavior, "type": "tax_rate_details",
            "tax_rate_details": {"tax_rate": rate}, "taxability_reason": "standard_rated",
            "taxable_amount": None}


def discount(amount: int, discount_id: str = "di_1") -> Obj:
    """One entry of a line's `discount_amounts`."""
    return {"amount": amount, "discount": discount_id}


def subscription_parent(subscription_item: str, *, proration: bool = False,
                        subscription: str = "sub_1") -> Obj:
    return {"type": "subscription_item_details", "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None, "proration": proration,
                "proration_details": {"credited_items": None},
                "subscription": subscription, "subscription_item": subscription_item}}


def invoice_item_parent(invoice_item: str, *, subscription: str | None = None) -> Obj:
    return {"type": "invoice_item_details", "subscription_item_details": None,
            "invoice_item_details": {
                "invoice_item": invoice_item, "proration": False,
                "proration_details": {"credited_items": None}, "subscription": subscription}}


def line(line_id: str, amount: int, *, currency: str = "usd", product: str = "prod_seats",
         price: str = "price_seats", quantity: int = 1, parent: Obj | None = None,
         discounts: Sequence[Obj] = (), taxes: Sequence[Obj] = (), start: int = T0,
         end: int = T0 + 30 * DAY, description: str | None = None,
         invoice_id: str = "in_1") -> Obj:
    """An invoice line; by default the seats item of `sub_1` (`si_seats`)."""
    return shaped(
        "line_item", id=line_id, amount=amount, currency=currency, invoice=invoice_id,
        description=description or f"{quantity} x {product}", quantity=quantity,
        period={"start": start, "end": end}, discount_amounts=list(discounts),
        discounts=[d["discount"] for d in discounts], taxes=list(taxes),
        pricing={"type": "price_details", "unit_amount_decimal": None,
                 "price_details": {"price": price, "product": product}},
        parent=parent if parent is not None else subscription_parent("si_seats"),
        subtotal=amount)


def _total(lines: Sequence[Obj]) -> int:
    """What Stripe's `total` is: each line less its discounts, plus tax on top of it."""
    return sum(li["amount"] - sum(d["amount"] for d in li["discount_amounts"])
               + sum(t["amount"] for t in li["taxes"] if t["tax_behavior"] == "exclusive")
               for li in lines)


def invoice(lines: Sequence[Obj], *, invoice_id: str = "in_1", currency: str = "usd",
            customer: str = "cus_1", subscription: str | None = "sub_1",
            status: str = "open", number: str = "INV-0001", created: int = T0,
            finalized: int | None = T0, paid: int | None = None, voided: int | None = None,
            uncollectible: int | None = None, amount_paid: int = 0,
            invoice_discounts: Sequence[Obj] = ()) -> Obj:
    """An invoice of `lines` whose totals are Stripe's (`_total`); a subscription's by
    default, a one-off invoice with `subscription=None`."""
    grand = _total(lines)
    parent = None if subscription is None else {
        "type": "subscription_details", "quote_details": None,
        "subscription_details": {"metadata": None, "subscription": subscription}}
    all_discounts = [d for li in lines for d in li["discount_amounts"]]
    return shaped(
        "invoice", id=invoice_id, currency=currency, customer=customer, status=status,
        number=number, created=created, due_date=created + 30 * DAY, parent=parent,
        lines=listing(list(lines), f"/v1/invoices/{invoice_id}/lines"),
        subtotal=sum(li["amount"] for li in lines), total=grand,
        amount_due=grand, amount_paid=amount_paid, amount_remaining=grand - amount_paid,
        discounts=[d["discount"] for d in invoice_discounts],
        total_discount_amounts=_by_discount(all_discounts),
        status_transitions={"finalized_at": finalized, "paid_at": paid,
                            "voided_at": voided, "marked_uncollectible_at": uncollectible})


def _by_discount(amounts: Sequence[Obj]) -> list[Obj]:
    found: dict[str, int] = {}
    for d in amounts:
        found[d["discount"]] = found.get(d["discount"], 0) + d["amount"]
    return [discount(amount, discount_id) for discount_id, amount in found.items()]


def credit_note_line(line_id: str, amount: int, *, invoice_line: str | None = "il_1",
                     quantity: int = 1, discounts: Sequence[Obj] = (),
                     taxes: Sequence[Obj] = (), description: str = "Credit") -> Obj:
    """A credit note line crediting `invoice_line`, or a custom line with None."""
    return shaped(
        "credit_note_line_item", id=line_id, amount=amount, quantity=quantity,
        description=description, invoice_line_item=invoice_line,
        type="invoice_line_item" if invoice_line else "custom_line_item",
        discount_amount=sum(d["amount"] for d in discounts),
        discount_amounts=list(discounts), taxes=list(taxes), tax_rates=[],
        unit_amount=None if invoice_line else amount,
        unit_amount_decimal=None if invoice_line else str(amount))


def credit_note(lines: Sequence[Obj], *, note_id: str = "cn_1", invoice_id: str = "in_1",
                currency: str = "usd", customer: str = "cus_1",
                reason: str | None = "product_unsatisfactory", created: int = T0 + 5 * DAY,
                pre_payment: int | None = None, number: str = "INV-0001-CN-01") -> Obj:
    """A credit note of `lines` against `invoice_id`; all of it set against the invoice
    (`pre_payment_amount`) unless `pre_payment` says how much."""
    grand = _total([{"amount": li["amount"], "discount_amounts": li["discount_amounts"],
                     "taxes": li["taxes"]} for li in lines])
    before = grand if pre_payment is None else pre_payment
    return shaped(
        "credit_note", id=note_id, invoice=invoice_id, currency=currency, customer=customer,
        reason=reason, created=created, effective_at=created, number=number,
        lines=listing(list(lines), f"/v1/credit_notes/{note_id}/lines"),
        amount=grand, subtotal=sum(li["amount"] for li in lines), total=grand,
        discount_amount=sum(li["discount_amount"] for li in lines),
        pre_payment_amount=before, post_payment_amount=grand - before,
        type="pre_payment" if before == grand else "post_payment", refunds=[],
        voided_at=None)
