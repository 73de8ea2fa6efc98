"""A Stripe-only company in the CURRENT API shape: what its Stripe account sends over two
months, in USD, EUR, JPY, a three-decimal currency (KWD) and a Stripe special case (ISK).

Every object starts from Stripe's own example (`shaped`); amounts are integer minor units as
Stripe sends them, in STRIPE's exponent of the currency (ISK is two-decimal on Stripe's API
while ISO 4217 says zero: 1,800.00 ISK is sent as 180000).

The story, per currency (`Case`), October and November 2026:
- `cus_<c>_a` takes an annual platform plan on 1 October: one invoice for the year, tax 10 %
  on top, paid on 1 October (cash), recognised over the year (deferred revenue).
- `cus_<c>_m` takes 10 seats monthly on 1 October: October's invoice is paid on 3 October;
  the subscription renews on 1 November (a new billing period: version 2 of the contract)
  and November's invoice stays open (receivable at the end of November).

Worked in USD (platform 1,200.00 a year, a seat 12.50 a month, tax 10 %):
  invoices  A: 1,200.00 + 120.00 tax = 1,320.00 (paid 1 Oct)
            M1: 10 x 12.50 = 125.00 + 12.50 tax = 137.50 (paid 3 Oct)
            M2: 125.00 + 12.50 = 137.50 (open)
  cash 1,320.00 + 137.50 = 1,457.50; AR cus_usd_m 137.50, cus_usd_a 0;
  tax payable 120.00 + 12.50 + 12.50 = 145.00; billed before tax 1,450.00.

`company()` gives the poller's deliveries in the order Stripe created the events, and the
Stripe objects as Stripe holds them at the end (`Company.objects`), from which a test reads
Stripe's own figures, and as its API answers them when fetched (`Company.answers`).

Every paid invoice is paid by card as the current API tells it (`payment_intents`): the
PaymentIntent, and the invoice payment that links it to the invoice, beside `invoice.paid`.

Adding to the story = a chapter: a function `(book, case)` that appends its events and
objects to the `Book` after the base story (`company(cases, chapters)`), e.g. `sla_credit`
(a credit note refunded to the card).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from finsync.connectors.stripe.taxes import rate_ids, rate_key
from tests.stripeshapes import DAY, delivered, event, listing, shaped
from tests.stripeshapes.taxes import rate

Obj = dict[str, Any]

HOUR = 3_600


def at(year: int, month: int, day: int, hour: int = 0) -> int:
    return int(datetime(year, month, day, hour, tzinfo=UTC).timestamp())


OCT_1, NOV_1, DEC_1 = at(2026, 10, 1), at(2026, 11, 1), at(2026, 12, 1)
NEXT_OCT_1 = at(2027, 10, 1)


@dataclass(frozen=True, slots=True)
class Case:
    """One currency of the company: prices in Stripe's minor units of `currency`."""

    currency: str  # Stripe's lower-case code
    platform_year: int  # the annual platform plan
    seat_month: int  # one seat a month
    stripe_exponent: int  # Stripe's decimals for the currency (not always ISO 4217's)

    def tax(self, amount: int) -> int:
        """10 % on top; every case's prices make it exact in Stripe's minor units."""
        assert amount % 10 == 0, amount
        return amount // 10


USD = Case("usd", 120_000, 1_250, 2)  # 1,200.00 and 12.50
EUR = Case("eur", 99_000, 990, 2)  # 990.00 and 9.90
JPY = Case("jpy", 150_000, 1_500, 0)  # ¥150,000 and ¥1,500 (zero-decimal)
KWD = Case("kwd", 360_000, 4_000, 3)  # 360.000 and 4.000 KWD (three-decimal, last digit 0)
ISK = Case("isk", 18_000_000, 150_000, 2)  # 180,000.00 and 1,500.00 ISK: Stripe's two decimals
CASES = (USD, EUR, JPY, KWD, ISK)


@dataclass(frozen=True, slots=True)
class Sent:
    """One event as the poller delivers it."""

    event: Obj
    version: int | None = None
    current: Obj | None = None  # fetched by the poller: the event's copy is partial
    related: Obj | None = None

    def body(self) -> bytes:
        return delivered(self.event, current=self.current, version=self.version,
                         related=self.related)


@dataclass
class Book:
    """What a chapter adds: events in the order Stripe created them, and the final objects."""

    sent: list[Sent] = field(default_factory=list)
    objects: dict[str, Obj] = field(default_factory=dict)
    answers: dict[str, Obj] = field(default_factory=dict)  # fetched, where not the snapshot
    versions: dict[str, int] = field(default_factory=dict)
    serial: int = 0

    def send(self, kind: str, obj: Obj, created: int, previous: Obj | None = None,
             fetched: Obj | None = None) -> None:
        """Stripe creates event `kind` with `obj` as its snapshot; versioned objects are
        numbered as the poller numbers them (the first event seen of an object is 1);
        `fetched` is what the API answers for it when the poller fetches it."""
        self.serial += 1
        evt = event(kind, obj, evt=f"evt_{self.serial:04d}_{obj['id']}", created=created,
                    previous=previous)
        version = None
        if obj["object"] in ("customer", "subscription"):
            version = self.versions[obj["id"]] = self.versions.get(obj["id"], 0) + 1
        rates = {rate_key(r): self.objects[r] for r in rate_ids(obj)}  # fetched beside it
        self.sent.append(Sent(evt, version, fetched, rates or None))
        self.objects[obj["id"]] = obj
        if fetched is not None:
            self.answers[obj["id"]] = fetched


@dataclass(frozen=True, slots=True)
class Company:
    cases: tuple[Case, ...]
    sent: tuple[Sent, ...]
    objects: tuple[Obj, ...]
    answers: dict[str, Obj]

    def bodies(self) -> list[bytes]:
        return [s.body() for s in self.sent]

    def of_type(self, kind: str) -> Iterator[Obj]:
        return (o for o in self.objects if o["object"] == kind)


Chapter = Callable[[Book, Case], None]


def company(cases: Sequence[Case] = CASES, chapters: Sequence[Chapter] = ()) -> Company:
    book = Book()
    book.objects[VAT10["id"]] = VAT10  # what the poller fetches beside each document
    for case in cases:
        _annual(book, case)
        _monthly(book, case)
        payment_intents(book, case)
        for chapter in chapters:
            chapter(book, case)
    ordered = sorted(enumerate(book.sent), key=lambda s: (s[1].event["created"], s[0]))
    return Company(tuple(cases), tuple(s for _, s in ordered), tuple(book.objects.values()),
                   dict(book.answers))


# -- chapters ---------------------------------------------------------------------------------

def _annual(book: Book, case: Case) -> None:
    c = case.currency
    cus = customer(f"cus_{c}_a", c, f"Annual {c.upper()} Ltd")
    platform = price(f"price_{c}_platform", "prod_platform", case.platform_year, c, "year")
    sub = subscription(f"sub_{c}_a", cus["id"], c, [(f"si_{c}_platform", platform, 1)],
                       OCT_1, NEXT_OCT_1)
    inv = invoice(f"in_{c}_a1", cus["id"], c, sub["id"], [
        line(f"il_{c}_a1", case.platform_year, case.tax(case.platform_year), platform, 1,
             OCT_1, NEXT_OCT_1, sub["id"], f"si_{c}_platform")], OCT_1)
    book.send("customer.created", cus, OCT_1)
    book.send("customer.subscription.created", sub, OCT_1 + 1)
    book.send("invoice.finalized", finalized(inv, OCT_1 + 2), OCT_1 + 2)
    book.send("invoice.paid", paid(inv, OCT_1 + 2, OCT_1 + HOUR), OCT_1 + HOUR)


def _monthly(book: Book, case: Case) -> None:
    c, seats = case.currency, 10
    amount = seats * case.seat_month
    cus = customer(f"cus_{c}_m", c, f"Monthly {c.upper()} GmbH")
    seat = price(f"price_{c}_seat", "prod_seat", case.seat_month, c, "month")
    october = subscription(f"sub_{c}_m", cus["id"], c, [(f"si_{c}_seat", seat, seats)],
                           OCT_1, NOV_1)
    first = invoice(f"in_{c}_m1", cus["id"], c, october["id"], [
        line(f"il_{c}_m1", amount, case.tax(amount), seat, seats, OCT_1, NOV_1,
             october["id"], f"si_{c}_seat")], OCT_1)
    book.send("customer.created", cus, OCT_1 + 10)
    book.send("customer.subscription.created", october, OCT_1 + 11)
    book.send("invoice.finalized", finalized(first, OCT_1 + 12), OCT_1 + 12)
    book.send("invoice.paid", paid(first, OCT_1 + 12, at(2026, 10, 3, 9)), at(2026, 10, 3, 9))
    # 1 November: the subscription renews (a new billing period) and bills November.
    november = subscription(f"sub_{c}_m", cus["id"], c, [(f"si_{c}_seat", seat, seats)],
                            NOV_1, DEC_1, start=OCT_1)
    second = invoice(f"in_{c}_m2", cus["id"], c, november["id"], [
        line(f"il_{c}_m2", amount, case.tax(amount), seat, seats, NOV_1, DEC_1,
             november["id"], f"si_{c}_seat")], NOV_1)
    items_before = {"data": [{"id": f"si_{c}_seat", "current_period_start": OCT_1,
                              "current_period_end": NOV_1}]}
    book.send("customer.subscription.updated", november, NOV_1 + 1,
              previous={"items": items_before, "latest_invoice": first["id"]})
    book.send("invoice.finalized", finalized(second, NOV_1 + 2), NOV_1 + 2)


def payment_intents(book: Book, case: Case) -> None:
    """Each invoice paid by card as the current API tells it besides `invoice.paid`: the
    PaymentIntent that paid it (`payment_intent.succeeded`, which names no invoice since
    basil) and the invoice payment that links the two (`invoice_payment.paid`)."""
    for inv in [o for o in book.objects.values() if o["object"] == "invoice"]:
        if inv["currency"] != case.currency or inv["status"] != "paid":
            continue
        when, suffix = inv["status_transitions"]["paid_at"], inv["id"].removeprefix("in_")
        pi = intent(f"pi_{suffix}", inv["customer"], inv["currency"], inv["amount_paid"], when)
        book.send("payment_intent.succeeded", pi, when)
        book.send("invoice_payment.paid", shaped(
            "invoice_payment", id=f"inpay_{suffix}", invoice=inv["id"],
            currency=inv["currency"], amount_paid=inv["amount_paid"],
            amount_requested=inv["amount_paid"], status="paid", created=when, livemode=False,
            payment={"type": "payment_intent", "payment_intent": pi["id"]},
            status_transitions={"canceled_at": None, "paid_at": when}), when)


def sla_credit(book: Book, case: Case) -> None:
    """3 November: an SLA credit of two seats for October on the monthly invoice, after it
    was paid: a credit note whose amount goes back to the card (a refund).

    In USD: 2 x 12.50 = 25.00 + 2.50 tax = 27.50 credited and refunded."""
    c = case.currency
    inv, when = book.objects[f"in_{c}_m1"], NOV_1 + 2 * DAY
    credit = 2 * case.seat_month
    total = credit + case.tax(credit)
    refund_id, charge_id = f"re_{c}_m1", f"ch_{c}_m1"
    note = credit_note(f"cn_{c}_m1", inv, credit, case.tax(credit), when, refund_id)
    refunded = shaped("refund", id=refund_id, amount=total, charge=charge_id,
                      currency=c, payment_intent=f"pi_{c}_m1", status="succeeded", created=when,
                      reason="requested_by_customer", balance_transaction=None)
    # Fetched, a refund carries its charge (`expand[]=charge`): the customer is there.
    fetched = {**refunded, "charge": shaped(
        "charge", id=charge_id, customer=inv["customer"], currency=c, amount=inv["total"],
        amount_captured=inv["total"], amount_refunded=total, refunded=True, captured=True,
        status="succeeded", payment_intent=f"pi_{c}_m1",
        created=inv["status_transitions"]["paid_at"],
        refunds=None, balance_transaction=None, failure_balance_transaction=None)}
    book.send("credit_note.created", note, when)
    book.send("refund.created", refunded, when + 1, fetched=fetched)


# -- objects ----------------------------------------------------------------------------------

def intent(pi_id: str, cus_id: str, currency: str, amount: int, when: int) -> Obj:
    return shaped("payment_intent", id=pi_id, customer=cus_id, currency=currency,
                  amount=amount, amount_received=amount, status="succeeded", created=when,
                  canceled_at=None, latest_charge=f"ch_{pi_id.removeprefix('pi_')}")


def credit_note(cn_id: str, inv: Obj, credit: int, tax: int, when: int, refund_id: str) -> Obj:
    """A credit note after payment of `credit` (tax exclusive on top) on `inv`'s first line,
    refunded in full."""
    total, il = credit + tax, inv["lines"]["data"][0]
    line = {"id": f"cnli_{cn_id.removeprefix('cn_')}", "object": "credit_note_line_item",
            "amount": credit, "description": f"SLA credit: {il['description']}",
            "discount_amount": 0, "discount_amounts": [], "invoice_line_item": il["id"],
            "livemode": False, "metadata": None, "pretax_credit_amounts": [],
            "quantity": 1, "tax_rates": [], "taxes": [_tax(tax, credit)],
            "type": "invoice_line_item", "unit_amount": None, "unit_amount_decimal": None}
    return shaped(
        "credit_note", id=cn_id, invoice=inv["id"], customer=inv["customer"],
        currency=inv["currency"], type="post_payment", status="issued", voided_at=None,
        created=when, effective_at=when, number=cn_id.upper(), reason="product_unsatisfactory",
        amount=total, subtotal=credit, subtotal_excluding_tax=credit, total=total,
        total_excluding_tax=credit, total_taxes=[_tax(tax, credit)], discount_amount=0,
        discount_amounts=[], pretax_credit_amounts=[], post_payment_amount=total,
        pre_payment_amount=0, out_of_band_amount=None, shipping_cost=None,
        customer_balance_transaction=None, customer_account=None, memo="SLA credit",
        refunds=[{"amount_refunded": total, "refund": refund_id, "type": "refund",
                  "payment_record_refund": None}],
        lines=listing([line], f"/v1/credit_notes/{cn_id}/lines"))



def customer(cus_id: str, currency: str, name: str) -> Obj:
    return shaped("customer", id=cus_id, name=name, email=f"ap@{cus_id}.example",
                  currency=currency, created=OCT_1, balance=0, discount=None,
                  address={"city": None, "country": "US", "line1": None, "line2": None,
                           "postal_code": None, "state": None})


def price(price_id: str, product: str, unit_amount: int, currency: str,
          interval: str) -> Obj:
    return shaped("price", id=price_id, product=product, currency=currency,
                  unit_amount=unit_amount, unit_amount_decimal=str(unit_amount),
                  tax_behavior="exclusive", transform_quantity=None,
                  recurring={"interval": interval, "interval_count": 1, "meter": None,
                             "trial_period_days": None, "usage_type": "licensed"})


def subscription(sub_id: str, cus_id: str, currency: str,
                 items: Sequence[tuple[str, Obj, int]], period_start: int, period_end: int,
                 start: int | None = None) -> Obj:
    data = [shaped("subscription_item", id=item_id, price=p, quantity=quantity,
                   subscription=sub_id, created=start or period_start,
                   current_period_start=period_start, current_period_end=period_end,
                   plan=_plan(p))
            for item_id, p, quantity in items]
    return shaped("subscription", id=sub_id, customer=cus_id, currency=currency,
                  status="active", created=start or period_start,
                  start_date=start or period_start, billing_cycle_anchor=start or period_start,
                  cancel_at=None, cancel_at_period_end=False, canceled_at=None, ended_at=None,
                  trial_start=None, trial_end=None, latest_invoice=None, schedule=None,
                  pending_update=None, pause_collection=None, transfer_data=None,
                  items=listing(data, f"/v1/subscription_items?subscription={sub_id}"))


def _plan(p: Obj) -> Obj:
    """The Plan Stripe still sends beside an item's Price (same id and amount)."""
    recurring = p["recurring"]
    return {"active": True, "amount": p["unit_amount"], "amount_decimal": p["unit_amount_decimal"],
            "billing_scheme": "per_unit", "created": p["created"], "currency": p["currency"],
            "id": p["id"], "interval": recurring["interval"], "interval_count": 1,
            "livemode": False, "metadata": {}, "meter": None, "nickname": None,
            "object": "plan", "product": p["product"], "tiers_mode": None,
            "transform_usage": None, "trial_period_days": None, "usage_type": "licensed"}


def line(line_id: str, amount: int, tax: int, p: Obj, quantity: int, start: int, end: int,
         sub_id: str, item_id: str) -> Obj:
    """A subscription line, tax exclusive (on top of `amount`)."""
    return shaped(
        "line_item", id=line_id, amount=amount, currency=p["currency"],
        description=f"{quantity} x {p['product']}", quantity=quantity,
        period={"start": start, "end": end}, subtotal=amount, discount_amounts=[],
        discounts=[], pretax_credit_amounts=[],
        pricing={"type": "price_details", "unit_amount_decimal": p["unit_amount_decimal"],
                 "price_details": {"price": p["id"], "product": p["product"]}},
        parent={"type": "subscription_item_details", "invoice_item_details": None,
                "subscription_item_details": {"invoice_item": None, "proration": False,
                                              "proration_details": {"credited_items": None},
                                              "subscription": sub_id,
                                              "subscription_item": item_id}},
        taxes=[_tax(tax, amount)])


# Every document's tax: Japan's 10 % consumption tax (a country-level rate, as Stripe Tax
# creates one), whatever the currency.
VAT10 = rate("txr_vat10", 10, country="JP", level="country", tax_type="jct")


def _tax(amount: int, taxable: int) -> Obj:
    return {"amount": amount, "tax_behavior": "exclusive", "taxable_amount": taxable,
            "taxability_reason": "standard_rated", "type": "tax_rate_details",
            "tax_rate_details": {"tax_rate": VAT10["id"]}}


def invoice(inv_id: str, cus_id: str, currency: str, sub_id: str | None,
            lines: Sequence[Obj], created: int) -> Obj:
    """A draft invoice of `lines` (tax exclusive); `finalized` and `paid` move it on."""
    subtotal = sum(ln["amount"] for ln in lines)
    tax = sum(t["amount"] for ln in lines for t in ln["taxes"])
    parent = None if sub_id is None else {
        "type": "subscription_details", "quote_details": None,
        "subscription_details": {"metadata": {}, "subscription": sub_id}}
    return shaped(
        "invoice", id=inv_id, customer=cus_id, currency=currency, status="draft",
        number=None, created=created, due_date=None, effective_at=None,
        billing_reason="subscription_cycle" if sub_id else "manual", parent=parent,
        subtotal=subtotal, subtotal_excluding_tax=subtotal, total_excluding_tax=subtotal,
        total=subtotal + tax, amount_due=subtotal + tax, amount_paid=0,
        amount_remaining=subtotal + tax, amount_overpaid=0, starting_balance=0,
        ending_balance=None, total_discount_amounts=[], total_pretax_credit_amounts=[],
        total_taxes=[_tax(tax, subtotal)], discounts=[], from_invoice=None,
        last_finalization_error=None, period_start=created, period_end=created,
        post_payment_credit_notes_amount=0, pre_payment_credit_notes_amount=0,
        status_transitions={"finalized_at": None, "marked_uncollectible_at": None,
                            "paid_at": None, "voided_at": None},
        lines=listing(list(lines), f"/v1/invoices/{inv_id}/lines"))


def finalized(inv: Obj, when: int) -> Obj:
    number = inv["id"].upper().replace("_", "-")
    return {**inv, "status": "open", "number": number, "effective_at": when,
            "status_transitions": {**inv["status_transitions"], "finalized_at": when}}


def paid(inv: Obj, finalized_at: int, when: int) -> Obj:
    """Paid in full (the snapshot of `invoice.paid`; no `payments` in event payloads)."""
    opened = finalized(inv, finalized_at)
    return {**opened, "status": "paid", "amount_paid": opened["total"], "amount_remaining": 0,
            "attempted": True, "attempt_count": 1,
            "status_transitions": {**opened["status_transitions"], "paid_at": when}}
