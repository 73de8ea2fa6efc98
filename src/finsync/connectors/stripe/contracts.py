"""Customers and subscriptions: the versioned aggregates Stripe sends.

Rules:
- A subscription is a versioned contract (version n = the poller's sequenced version of its
  object), one line per item, each on the revenue product its price maps to
  (`catalog.Catalog`: a price the source's catalogue does not map is a
  `master_data_mismatch`), in the legal entity of the event's account.
- The term is the subscription's end, scheduled cancellation or current period end (see
  `_term_end`); its frequency is its items' one interval (items at two intervals, or an
  interval finsync has no frequency for, are `unsupported_interval`).
- Billing cycles are laid on `billing_cycle_anchor` (a Unix timestamp; its UTC day is the
  contract's billing anchor, spelled None when it is the start day); a start before the
  anchor is the prorated stub Stripe invoices first.
- Stripe prorates by the second (docs.stripe.com/billing/subscriptions/prorations), but the
  contract's dates are UTC days and its amendments carry no instant, and on whole days the
  by-second share is the by-day one: the contract keeps the default convention (`by_day`),
  so a subscription event mapped before conventions existed maps again to the same body
  (replay and redelivery stay byte-identical; tests/integration/test_legacy_database.py).
- A customer's `billing_region` is its `address.state` only where that is an ISO 3166-2
  code of its country (`REGIONS`: US states, Canadian provinces); its `tax_id` is its first
  EU or UK VAT id (`tax_ids`). An event from before `tax_breakdown_from` maps without them,
  as it did then.
- A customer or subscription the commercial layer marked (`marks`: the metadata the
  subscription platform writes) is mapped in canonical ids: the customer under its
  canonical id (with its street address, and a tax id of any type the platform writes:
  what the customer master sent, so an echo compares like with like), the contract under
  its contract id with its customer's canonical id, its lines' ids and billing's price
  ids. Its Stripe id stays in its references; an unmarked one maps in Stripe's ids, as it
  always did.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from finsync.connectors.stripe import currency as stripe_currency
from finsync.connectors.stripe import marks
from finsync.connectors.stripe.catalog import Catalog
from finsync.connectors.stripe.delivery import Delivery, Handler, Planner
from finsync.connectors.stripe.objects import (
    Obj,
    SourceSettings,
    built,
    child,
    count,
    currency_of,
    day,
    id_of,
    instant,
    listed,
    ref,
    refs,
    text,
)
from finsync.domain import amount
from finsync.domain.catalog import BillingFrequency
from finsync.domain.contract import (
    CONTRACT_LEVEL,
    ChangeOp,
    ContractAmendment,
    ContractChange,
    ContractLine,
    SubscriptionContract,
)
from finsync.domain.errors import MappingError
from finsync.domain.events import (
    AnyEvent,
    ContractAmended,
    ContractCancelled,
    ContractCreated,
    CustomerUpserted,
)
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount, PostalAddress

# -- customers ------------------------------------------------------------------------------

def customer(obj: Obj, settings: SourceSettings, version: int,
             tax_details: bool = True, previous: Obj | None = None) -> CustomerAccount:
    """A customer; with its tax region and VAT id (`billing_region`, `tax_id`) unless
    `tax_details` is false (an event from before breakdowns maps as it did then). A
    customer marked with a canonical id (`marks.identity`, the event's `previous`
    attributes included) is that customer; its Stripe id stays in its references."""
    path = "customer"
    currency = (obj.get("currency") or settings.default_currency).upper()
    country = str(child(obj, "address").get("country") or settings.default_country)
    stripe_id = text(obj, "id", path)
    name = obj.get("name") or obj.get("email") or stripe_id
    region = billing_region(country, child(obj, "address").get("state"))
    canonical = marks.identity(obj, previous or {})
    tax_id = vat_id(obj, path, VAT_ID_TYPES if canonical is None else MASTER_TAX_ID_TYPES)
    address = None if canonical is None else postal_address(child(obj, "address"), path)
    return built(path, lambda: CustomerAccount(
        canonical or stripe_id, str(name), settings.legal_entity, currency, country,
        version, refs(stripe_id),
        billing_region=region if tax_details else None,
        tax_id=tax_id if tax_details else None, address=address))


def postal_address(address: Obj, path: str) -> PostalAddress | None:
    """A marked customer's street address, as the subscription platform wrote it
    (`order_params.customer_fields`: the first street line, the others joined in line2,
    city, postal code), so Stripe's echo of the customer master compares like with like;
    None with no street or city."""
    lines = tuple(str(address[k]) for k in ("line1", "line2")
                  if isinstance(address.get(k), str) and address[k])
    city = address.get("city")
    if not lines and not city:
        return None
    postal = address.get("postal_code")
    return built(f"{path}.address", lambda: PostalAddress(
        lines, str(city or ""), str(postal) if postal else None))


# ISO 3166-2 subdivision codes of the countries that tax by region: a free-text `state`
# ("New York", "Bay") is not a region code and is not guessed into one.
_US = ("AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV "
       "NH NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC AS GU MP PR UM VI")
_CA = "AB BC MB NB NL NS NT NU ON PE QC SK YT"
REGIONS: Mapping[str, frozenset[str]] = {"US": frozenset(_US.split(" ")),
                                         "CA": frozenset(_CA.split(" "))}
VAT_ID_TYPES = ("eu_vat", "gb_vat")  # the customer's first of these is its VAT id
# A marked customer's tax id is any type the subscription platform writes (`order_params`).
MASTER_TAX_ID_TYPES = ("eu_vat", "gb_vat", "ch_vat", "no_vat", "au_abn")
TAX_ID_MAX = 64  # characters of a VAT id


def billing_region(country: str, state: object) -> str | None:
    """`address.state` when it is an ISO 3166-2 code of the customer's country."""
    if not isinstance(state, str):
        return None
    code = state.strip().upper()
    return code if code in REGIONS.get(country.upper(), frozenset()) else None


def vat_id(obj: Obj, path: str, types: tuple[str, ...] = VAT_ID_TYPES) -> str | None:
    """The first VAT id of the customer (`tax_ids`, or `tax.ids`) of one of `types`, if
    any; one above `TAX_ID_MAX` is refused (`invalid_field`)."""
    held = obj.get("tax_ids") if obj.get("tax_ids") is not None else child(obj, "tax").get("ids")
    entries = held.get("data") if isinstance(held, Mapping) else held
    # the first of a partial page is the first of all (Stripe lists them oldest first)
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, Mapping):
            continue
        value = entry.get("value")
        if entry.get("type") in types and isinstance(value, str) and value.strip():
            if len(value) > TAX_ID_MAX:
                raise MappingError(f"{path}.tax_ids: a VAT id of {len(value)} characters, "
                                   f"above TAX_ID_MAX ({TAX_ID_MAX})", code="invalid_field")
            return value.strip()
    return None


# -- subscriptions as versioned contracts ---------------------------------------------------

_FREQUENCIES = {("month", 1): BillingFrequency.MONTHLY, ("month", 3): BillingFrequency.QUARTERLY,
                ("year", 1): BillingFrequency.ANNUAL, ("month", 12): BillingFrequency.ANNUAL}


def _price(item: Obj) -> Obj:
    return child(item, "price") or child(item, "plan")


def _frequency(price: Obj, path: str) -> BillingFrequency:
    recurring = child(price, "recurring") or price  # Price.recurring, or the Plan itself
    key = (recurring.get("interval"), recurring.get("interval_count") or 1)
    if key not in _FREQUENCIES:
        raise MappingError(f"{path}: billing every {key[1]} {key[0]} is not a contract "
                           "frequency finsync knows", code="unsupported_interval")
    return _FREQUENCIES[key]


def _unit_price(price: Obj, currency: str, path: str) -> Money:
    if price.get("billing_scheme") == "tiered" or price.get("tiers_mode"):
        raise MappingError(f"{path}: tiered prices are not mapped to a unit price",
                           code="unsupported_price")
    raw = price.get("unit_amount_decimal")
    if raw is None:
        raw = price.get("unit_amount", price.get("amount"))
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise MappingError(f"{path}: the price has no unit amount", code="unsupported_price")
    if isinstance(raw, str):
        units = amount.parse_amount(raw, f"{path}.unit_amount_decimal")
    else:
        units = Decimal(raw)
    return stripe_currency.price(units, currency)  # Stripe's exponent (ISK: two decimals)


def _term_end(sub: Obj, items: Sequence[Obj], start: date) -> date:
    """Ended, scheduled to end, or else the current billing period's end. A subscription
    cancelled on its first day keeps a one-day term (a contract term cannot be empty)."""
    ends = [sub.get("ended_at"), sub.get("cancel_at"), sub.get("current_period_end"),
            *(i.get("current_period_end") for i in items)]
    moment = next((e for e in ends if isinstance(e, int) and not isinstance(e, bool)), None)
    if moment is None:
        raise MappingError("subscription: no end, cancel or period end to bound the term",
                           code="missing_field")
    return max(day(moment, "subscription.term_end"), start + timedelta(days=1))


def contract(sub: Obj, settings: SourceSettings, version: int,
             previous: Obj | None = None) -> SubscriptionContract:
    """A subscription as a contract; one marked by the commercial layer
    (`marks.identity`) in canonical ids: the contract id, its customer's id (when marked),
    each line's id (its item's mark) and billing's price ids (`billing_prices`)."""
    path = "subscription"
    sub_id = text(sub, "id", path)
    canonical = marks.identity(sub, previous or {})
    items = listed(sub, "items", path)
    if not items:
        raise MappingError(f"{path} {sub_id} has no items", code="missing_field")
    start = day(sub.get("start_date") or sub.get("created"), f"{path}.start_date")
    end = _term_end(sub, items, start)
    currency = currency_of(sub, path) if sub.get("currency") \
        else currency_of(_price(items[0]), f"{path}.items[0].price")
    frequencies = {_frequency(_price(i), f"{path}.items") for i in items}
    if len(frequencies) != 1:
        raise MappingError(f"{path} {sub_id}: items bill at different intervals",
                           code="unsupported_interval")
    lines = tuple(_contract_line(item, currency, start, end, settings.catalog,
                                 f"{path}.items[{n}]")
                  for n, item in enumerate(items))
    customer_id = ref(sub, "customer", path)
    if canonical is not None:
        lines = tuple(_canonical_line(line, item, settings, f"{path}.items[{n}]")
                      for n, (line, item) in enumerate(zip(lines, items, strict=True)))
        customer_id = marks.mark(child(sub, "metadata"), marks.META_CUSTOMER, path) \
            or customer_id
    anchor = _billing_anchor(sub, path)
    return built(path, lambda: SubscriptionContract(
        canonical or sub_id, customer_id,
        settings.legal_entity, currency, start, end, frequencies.pop(), lines, version,
        refs(sub_id), anchor))


def _canonical_line(line: ContractLine, item: Obj, settings: SourceSettings,
                    path: str) -> ContractLine:
    """A marked subscription's line: its item's line id (an unmarked item keeps its own)
    and billing's price id."""
    marked = marks.line_id(child(item, "metadata"), path)
    return dataclasses.replace(line, line_id=marked or line.line_id,
                               price_id=settings.billing_price(line.price_id))


def _billing_anchor(sub: Obj, path: str) -> date | None:
    """The day of `billing_cycle_anchor` (absent in an older payload: the start date)."""
    moment = sub.get("billing_cycle_anchor")
    return None if moment is None else day(moment, f"{path}.billing_cycle_anchor")


def _contract_line(item: Obj, currency: str, start: date, end: date, catalog: Catalog,
                   path: str) -> ContractLine:
    """One item as a contract line on the revenue product its price maps to (`catalog`):
    the line keeps Stripe's price id, so every line traces back to the price it sold."""
    price = _price(item)
    if currency_of(price, path + ".price") != currency:
        raise MappingError(f"{path}: price is not in {currency}", code="currency_mismatch")
    price_id = text(price, "id", path + ".price")
    product = catalog.product(price_id, id_of(price.get("product")) or id_of(item.get("product")),
                              path + ".price")
    return built(path, lambda: ContractLine(
        text(item, "id", path), product, price_id, count(item, "quantity", path, 0),
        _unit_price(price, currency, path + ".price"), start, end))


def amendment(event_id: str, event_type: str, occurred: date, previous: Obj,
              current: SubscriptionContract, cancelled: bool) -> ContractAmendment:
    """Version n+1 of a contract. Stripe's `previous_attributes` name what changed."""
    if cancelled:
        changes: tuple[ContractChange, ...] = (ContractChange(ChangeOp.CANCELLED),)
    elif previous:
        changes = tuple(ContractChange(ChangeOp.ATTRIBUTE_CHANGED, CONTRACT_LEVEL,
                                       before=_short(value), attribute=key)
                        for key, value in sorted(previous.items()))
    else:
        changes = (ContractChange(ChangeOp.STATE_REPLACED),)
    effective = min(max(occurred, current.start_date), current.end_date)
    return built("amendment", lambda: ContractAmendment(
        event_id, current.id, current.version, effective, event_type, changes, current))


def _short(value: Any) -> str | None:
    rendered = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return rendered[:200] if value not in (None, "", [], {}) else None


# -- handlers ---------------------------------------------------------------------------------

CUSTOMER_EVENTS = frozenset({"customer.created", "customer.updated"})
SUBSCRIPTION_EVENTS = frozenset({
    "customer.subscription.created", "customer.subscription.updated",
    "customer.subscription.deleted", "customer.subscription.paused",
    "customer.subscription.resumed"})
VERSIONED = CUSTOMER_EVENTS | SUBSCRIPTION_EVENTS
IGNORED = frozenset({
    "customer.deleted",  # the account stays in the books; nothing to post
    "customer.subscription.trial_will_end", "customer.subscription.pending_update_applied",
    "customer.subscription.pending_update_expired"})
UNSUPPORTED: frozenset[str] = frozenset()
RELATED: dict[str, Planner] = {}


def version(d: Delivery) -> int:
    if d.version is None or d.version < 1:
        raise MappingError(f"{d.type} needs a positive sequenced version", code="invalid_event")
    return d.version


def _customer(d: Delivery, settings: SourceSettings) -> list[AnyEvent]:
    since = settings.tax_breakdown_from
    details = since is None or instant(d.created, "event.created") >= since
    previous = marks.previous_attributes(d.event)
    return [CustomerUpserted(customer(d.object, settings, version(d), details, previous))]


def _subscription(d: Delivery, settings: SourceSettings) -> list[AnyEvent]:
    numbered = version(d)
    current = contract(d.object, settings, numbered, marks.previous_attributes(d.event))
    if numbered == 1:
        return [ContractCreated(current)]
    cancelled = d.type == "customer.subscription.deleted"
    previous = child(child(d.event, "data"), "previous_attributes")
    changed = amendment(d.id, d.type, day(d.created, "event.created"), previous, current,
                        cancelled)
    if cancelled:
        return [ContractCancelled(changed)]
    return [ContractAmended(changed)]


HANDLERS: dict[str, Handler] = {
    **{t: _customer for t in CUSTOMER_EVENTS},
    **{t: _subscription for t in SUBSCRIPTION_EVENTS},
}
