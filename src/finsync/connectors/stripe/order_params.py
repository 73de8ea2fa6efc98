"""The requests that make a Stripe account's subscription what an order says (pure).

Rules:
- Stripe's form encoding, as its API takes it: `items[0][price]`, `metadata[key]`; values
  are strings ("true"/"false", integers in decimal, instants as Unix seconds of 00:00 UTC
  of the order's day).
- A new order creates the subscription: the customer, one item per order line (quantity
  above zero) at the Stripe price the connector's catalogue resolves from billing's price
  id (`OrderSettings.stripe_price`), each item tagged with its line id and contract id.
  A start before today is backdated (`backdate_start_date`) with the billing cycle
  anchored on the start's next cycle date (`billing_cycle_anchor`), so the cycles are
  laid on the start as the order says; a start after today needs a subscription
  schedule and is refused.
- An amendment updates the items in one request: a line's item gets its new quantity or
  price, a new line is a new item, an item whose line is gone (or is at zero) is
  `deleted`; `proration_behavior` is the order's terms (`PRORATION`), and an effective
  date before today is the proration instant (`proration_date`). A renewal changes the
  items for the next term: `proration_behavior` none (nothing of this term is re-priced)
  and the subscription keeps renewing unless the order says otherwise
  (`cancel_at_period_end`).
- Stripe applies an update's items at once: with `proration_behavior` none nothing is
  charged for the rest of the current period, but every invoice from then on bills the
  new items. So a renewal starting after today is sent now only when it starts exactly
  where every current period ends (UTC days: the next invoice is the renewal's, at the
  boundary); otherwise (an annual term billed monthly, approved months early) the
  invoices left in the term would bill the renewal's prices, and it needs a
  subscription schedule (`check_renewal_start`, refused).
- A cancellation effective on the period's last day or after (UTC days) is
  `cancel_at_period_end`; one effective today cancels now (DELETE), prorated and
  invoiced at once as the terms say; one later in the period is `cancel_at` with the
  terms' `proration_behavior`. One effective before today is refused
  (`backdated_cancellation`): Stripe cancels no earlier than now, and a DELETE today
  would bill the customer from the effective date to today.
- Every write that changes the subscription carries the metadata that makes the order
  idempotent whatever the idempotency key: the canonical contract id, the quote id (the
  order id) and the CPQ version last applied (`META_*`), in the same request as the change;
  and the customer's canonical id, so the source maps the subscription's events in
  canonical ids (`marks`).
- What Stripe cannot be told through these requests (ramp steps, a future start or
  effective date: subscription schedules) is a `PermanentError` of class
  `master_data_mismatch` naming the line or the date, before anything is written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from finsync.connectors.stripe import marks
from finsync.connectors.stripe.objects import Obj, child
from finsync.domain.commercial import CommercialKind, OrderLine, ProrationTerms, SubscriptionOrder
from finsync.domain.errors import ExceptionClass, PermanentError
from finsync.domain.party import CustomerAccount
from finsync.domain.proration import add_months

# The marks are read back by the source's mapping (`marks`).
META_CONTRACT = marks.META_CONTRACT
META_QUOTE = marks.META_QUOTE
META_VERSION = marks.META_VERSION
META_LINE = marks.META_LINE
META_CUSTOMER = marks.META_CUSTOMER
META_CUSTOMER_VERSION = marks.META_CUSTOMER_VERSION

PRORATION: Mapping[ProrationTerms, str] = {
    ProrationTerms.INVOICE_NOW: "always_invoice",
    ProrationTerms.NEXT_INVOICE: "create_prorations",
    ProrationTerms.NONE: "none",
}
# Customers' tax ids Stripe takes by country (`tax_id_data[][type]`); others are not sent.
_EU = ("AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK")
TAX_ID_TYPES: Mapping[str, str] = {**{c: "eu_vat" for c in _EU.split()}, "GB": "gb_vat",
                                   "CH": "ch_vat", "NO": "no_vat", "AU": "au_abn"}
KEY_MAX = 255  # characters of an Idempotency-Key
# Stripe's own limits (docs.stripe.com/api/metadata, /api/subscriptions/create#items):
METADATA_VALUE_MAX = 500  # characters of a metadata value
ITEMS_MAX = 20  # items of one subscription
NAME_MAX = 256  # characters of a customer's name

Pairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class OrderSettings:
    """Billing's price ids -> Stripe price ids (`[stripe.<source>.catalog] billing_prices`;
    an id the map does not name is Stripe's own), and the item field that names a price:
    `price`, or `plan` for an account (or an emulator) that sells Plans."""

    prices: Mapping[str, str] = field(default_factory=dict)
    price_parameter: str = "price"

    def stripe_price(self, price_id: str) -> str:
        return self.prices.get(price_id, price_id)

    def billing_price(self, stripe_price: str) -> str:
        """The billing price id of a Stripe price (the Stripe id when none maps to it)."""
        found = sorted(b for b, s in self.prices.items() if s == stripe_price)
        return found[0] if found else stripe_price


@dataclass(frozen=True, slots=True)
class Request:
    """One write to Stripe; `step` names it within its order (for its idempotency key)."""

    method: str
    path: str
    params: Pairs
    step: str

    def key(self, owner: str) -> str:
        """The Idempotency-Key: the owner (order id, or customer and version), the step and
        a digest of the parameters, so a repeat is one request to Stripe and a changed
        request (the catalogue remapped a price) is never refused as a reused key."""
        digest = hashlib.sha256(repr((self.method, self.path, self.params)).encode())
        key = f"finsync-{self.step}-{owner}-{digest.hexdigest()[:16]}"
        if len(key) <= KEY_MAX:
            return key
        owner_digest = hashlib.sha256(owner.encode()).hexdigest()[:32]
        return f"finsync-{self.step}-{owner_digest}-{digest.hexdigest()[:16]}"


def instant(day: date) -> int:
    """Unix seconds of 00:00 UTC of `day`."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


class OrderRefusedError(PermanentError):
    """An order or customer Stripe cannot be told as it stands (`master_data_mismatch`);
    `code` names why: `subscription_schedule` (a ramp, a later start or effective date, a
    renewal starting after today other than at the current period's end),
    `backdated_cancellation`, `stripe_limit`, `no_line`, `unknown_price`, `price_mismatch`,
    `unknown_contract`, `quote_conflict`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}",
                         exception_class=ExceptionClass.MASTER_DATA_MISMATCH)
        self.code = code


def refusal(code: str, message: str) -> OrderRefusedError:
    """The refusal of an order or customer, `code` naming why."""
    return OrderRefusedError(code, message)


def order_metadata(order: SubscriptionOrder) -> Pairs:
    return ((f"metadata[{META_CONTRACT}]", order.contract_id),
            (f"metadata[{META_CUSTOMER}]", order.customer_id),
            (f"metadata[{META_QUOTE}]", order.id),
            (f"metadata[{META_VERSION}]", str(order.cpq_version)))


def check_expressible(order: SubscriptionOrder, today: date) -> None:
    """Refuse what these requests cannot say (see the module's rules), and what is beyond
    Stripe's limits (each named with its value)."""
    sold = [line for line in order.lines if line.quantity > 0]
    if len(sold) > ITEMS_MAX:
        raise refusal("stripe_limit",
                      f"order {order.id}: {len(sold)} lines, above the {ITEMS_MAX} items "
                      "a Stripe subscription takes (ITEMS_MAX)")
    named = [("contract id", order.contract_id), ("quote id", order.id),
             *(("line id", line.line_id) for line in order.lines)]
    for what, value in named:
        if len(value) > METADATA_VALUE_MAX:
            raise refusal("stripe_limit",
                          f"order {order.id[:64]}: a {what} of {len(value)} characters, above "
                          f"Stripe's metadata values ({METADATA_VALUE_MAX}, "
                          "METADATA_VALUE_MAX)")
    for line in order.lines:
        if line.ramp:
            raise refusal("subscription_schedule",
                          f"order {order.id} line {line.line_id}: a ramp needs a Stripe "
                          "subscription schedule, which this connector does not write")
    if order.kind is CommercialKind.NEW and order.start_date > today:
        raise refusal("subscription_schedule",
                      f"order {order.id} starts on {order.start_date}, after today "
                      f"({today}): a later start needs a subscription schedule")
    if order.kind is CommercialKind.AMENDMENT and order.effective_date > today:
        raise refusal("subscription_schedule",
                      f"order {order.id} takes effect on {order.effective_date}, after "
                      f"today ({today}): a later change needs a subscription schedule")


def _item(n: int, line: OrderLine, order: SubscriptionOrder, settings: OrderSettings) -> Pairs:
    return ((f"items[{n}][{settings.price_parameter}]", settings.stripe_price(line.price_id)),
            (f"items[{n}][quantity]", str(line.quantity)),
            *_item_marks(n, line, order))


def _item_marks(n: int, line: OrderLine, order: SubscriptionOrder) -> Pairs:
    """An item's line id, and its contract (an invoice line of an emulator carries only
    its item's metadata: `marks.invoice_contract`)."""
    return ((f"items[{n}][metadata][{META_LINE}]", line.line_id),
            (f"items[{n}][metadata][{META_CONTRACT}]", order.contract_id))


def create(order: SubscriptionOrder, customer: str, settings: OrderSettings,
           today: date) -> Request:
    check_expressible(order, today)
    lines = [line for line in order.lines if line.quantity > 0]
    if not lines:
        raise refusal("no_line", f"order {order.id}: a new subscription needs a line above zero")
    params: list[tuple[str, str]] = [("customer", customer)]
    for n, line in enumerate(lines):
        params += _item(n, line, order, settings)
    if order.start_date < today:
        anchor = order.start_date
        step = 1
        while anchor <= today:
            anchor = add_months(order.start_date, order.billing_frequency.months * step)
            step += 1
        params += [("backdate_start_date", str(instant(order.start_date))),
                   ("billing_cycle_anchor", str(instant(anchor))),
                   ("proration_behavior", "create_prorations")]
    if not order.auto_renew:
        params.append(("cancel_at", str(instant(order.end_date))))
    params += order_metadata(order)
    return Request("POST", "/v1/subscriptions", tuple(params), "create")


def _items(sub: Obj) -> list[Obj]:
    data = child(sub, "items").get("data")
    return [i for i in data if isinstance(i, Mapping)] if isinstance(data, list) else []


def item_price(item: Obj) -> str:
    sold = child(item, "price") or child(item, "plan")
    return str(sold.get("id") or "")


def matched(order: SubscriptionOrder, sub: Obj,
            settings: OrderSettings) -> tuple[dict[str, Obj], list[Obj]]:
    """Each order line's current item (by the line id the item carries, else by its
    Stripe price, each item used once), and the items no line matched."""
    free = _items(sub)
    found: dict[str, Obj] = {}
    for line in order.lines:
        tagged = [i for i in free if child(i, "metadata").get(META_LINE) == line.line_id]
        if tagged:
            found[line.line_id] = tagged[0]
            free.remove(tagged[0])
    for line in order.lines:
        if line.line_id in found:
            continue
        price = settings.stripe_price(line.price_id)
        same = [i for i in free
                if item_price(i) == price and not child(i, "metadata").get(META_LINE)]
        if same:
            found[line.line_id] = same[0]
            free.remove(same[0])
    return found, free


def item_changes(order: SubscriptionOrder, sub: Obj, settings: OrderSettings) -> Pairs:
    """`items[]` of the update that makes the subscription's items the order's lines."""
    found, unmatched = matched(order, sub, settings)
    params: list[tuple[str, str]] = []
    n = 0
    for line in order.lines:
        item = found.get(line.line_id)
        price = settings.stripe_price(line.price_id)
        if item is None:
            if line.quantity > 0:
                params += _item(n, line, order, settings)
                n += 1
            continue
        if line.quantity == 0:
            unmatched.append(item)
            continue
        if item_price(item) == price and item.get("quantity") == line.quantity:
            continue
        params.append((f"items[{n}][id]", str(item["id"])))
        if item_price(item) != price:
            params.append((f"items[{n}][{settings.price_parameter}]", price))
        params.append((f"items[{n}][quantity]", str(line.quantity)))
        if child(item, "metadata").get(META_LINE) != line.line_id:
            params += _item_marks(n, line, order)
        n += 1
    for item in unmatched:
        params += [(f"items[{n}][id]", str(item["id"])), (f"items[{n}][deleted]", "true")]
        n += 1
    return tuple(params)


def period_ends(sub: Obj) -> set[date]:
    """The UTC days the subscription's current periods end: the subscription's own
    `current_period_end` (older API versions, localstripe) and each item's (Stripe's
    current shape keeps the period on the items)."""
    found = [sub.get("current_period_end"), *(i.get("current_period_end") for i in _items(sub))]
    return {datetime.fromtimestamp(end, UTC).date() for end in found
            if isinstance(end, int) and not isinstance(end, bool) and end > 0}


def check_renewal_start(order: SubscriptionOrder, sub: Obj, today: date) -> None:
    """A renewal starting after today is refused unless every current period ends on its
    start (see the module's rules)."""
    if order.kind is not CommercialKind.RENEWAL or order.start_date <= today:
        return
    ends = period_ends(sub)
    if ends == {order.start_date}:
        return
    told = ", ".join(sorted(d.isoformat() for d in ends)) or "no date Stripe gives"
    raise refusal("subscription_schedule",
                  f"order {order.id} renews on {order.start_date}, after today ({today}), "
                  f"but the subscription's current period ends on {told}: changed now, the "
                  "invoices before the renewal would bill its prices; a renewal between "
                  "two periods needs a subscription schedule")


def change(order: SubscriptionOrder, sub: Obj, settings: OrderSettings,
           today: date) -> Request:
    """The update of an amendment or a renewal (see the module's rules)."""
    check_expressible(order, today)
    check_renewal_start(order, sub, today)
    if not any(line.quantity > 0 for line in order.lines):
        raise refusal("no_line", f"order {order.id}: a contract with no line above zero is a "
                      "cancellation, not an amendment")
    params = list(item_changes(order, sub, settings))
    renewal = order.kind is CommercialKind.RENEWAL
    behavior = "none" if renewal else PRORATION[order.proration]
    if params:
        params.append(("proration_behavior", behavior))
        if not renewal and order.effective_date < today and behavior != "none":
            params.append(("proration_date", str(instant(order.effective_date))))
    if bool(sub.get("cancel_at_period_end")) == order.auto_renew:
        params.append(("cancel_at_period_end", "false" if order.auto_renew else "true"))
    params += order_metadata(order)
    return Request("POST", f"/v1/subscriptions/{sub['id']}", tuple(params), "update")


def cancel(order: SubscriptionOrder, sub: Obj, today: date) -> Request:
    """The cancellation's request (see the module's rules)."""
    if order.effective_date < today:
        raise refusal("backdated_cancellation",
                      f"order {order.id} cancels on {order.effective_date}, before today "
                      f"({today}): Stripe cancels no earlier than now, and cancelling today "
                      "would bill the time since; credit it at Stripe by hand, or re-quote")
    period_end = sub.get("current_period_end") or max(
        (int(i.get("current_period_end") or 0) for i in _items(sub)), default=0)
    effective = instant(order.effective_date)
    path = f"/v1/subscriptions/{sub['id']}"
    ends_on = datetime.fromtimestamp(period_end, UTC).date() \
        if isinstance(period_end, int) and period_end else None
    if ends_on is not None and order.effective_date >= ends_on:
        return Request("POST", path, (("cancel_at_period_end", "true"),
                                      *order_metadata(order)), "cancel")
    if order.effective_date == today:
        terms = order.proration
        return Request("DELETE", path, (
            ("prorate", "false" if terms is ProrationTerms.NONE else "true"),
            ("invoice_now", "true" if terms is ProrationTerms.INVOICE_NOW else "false")),
            "cancel")
    return Request("POST", path, (("cancel_at", str(effective)),
                                  ("proration_behavior", PRORATION[order.proration]),
                                  *order_metadata(order)), "cancel")


# -- customers ------------------------------------------------------------------------------

def tax_id(customer: CustomerAccount) -> tuple[str, str] | None:
    """The customer's tax id as Stripe takes it (type by country), None when it has none
    or Stripe has no VAT type for its country."""
    kind = TAX_ID_TYPES.get(customer.billing_country.upper())
    if customer.tax_id is None or kind is None:
        return None
    return kind, customer.tax_id


def customer_fields(customer: CustomerAccount) -> Pairs:
    """Name, address and the canonical id and version, as the customer master says."""
    if len(customer.name) > NAME_MAX or len(customer.id) > METADATA_VALUE_MAX:
        raise refusal("stripe_limit",
                      f"customer {customer.id[:64]}: a name above {NAME_MAX} characters "
                      f"(NAME_MAX) or an id above {METADATA_VALUE_MAX} (METADATA_VALUE_MAX)")
    params: list[tuple[str, str]] = [("name", customer.name)]
    address = customer.address
    if address is not None:
        street = list(address.street)
        params += [("address[line1]", street[0] if street else ""),
                   ("address[line2]", ", ".join(street[1:])),
                   ("address[city]", address.city),
                   ("address[postal_code]", address.postal_code or "")]
    params += [("address[country]", customer.billing_country.upper())]
    if customer.billing_region:
        params.append(("address[state]", customer.billing_region))
    params += [(f"metadata[{META_CUSTOMER}]", customer.id),
               (f"metadata[{META_CUSTOMER_VERSION}]", str(customer.version))]
    return tuple(params)


def customer_create(customer: CustomerAccount) -> Request:
    params = list(customer_fields(customer))
    found = tax_id(customer)
    if found is not None:
        params += [("tax_id_data[0][type]", found[0]), ("tax_id_data[0][value]", found[1])]
    return Request("POST", "/v1/customers", tuple(params), "customer")


def customer_update(customer: CustomerAccount, stripe_id: str) -> Request:
    return Request("POST", f"/v1/customers/{stripe_id}", customer_fields(customer),
                   "customer")


def tax_id_add(customer: CustomerAccount, stripe_id: str,
               held: Sequence[Obj]) -> Request | None:
    """The customer's tax id added when Stripe does not hold it yet (ids are kept: an
    invoice already issued keeps the one it names)."""
    found = tax_id(customer)
    if found is None or any(t.get("value") == found[1] for t in held):
        return None
    return Request("POST", f"/v1/customers/{stripe_id}/tax_ids",
                   (("type", found[0]), ("value", found[1])), "tax_id")
