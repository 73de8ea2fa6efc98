"""Stripe objects (as JSON) to domain documents, in both shapes the connector meets.

Shapes read:
- the current API: Prices (`price.unit_amount_decimal`, `price.recurring`), subscription
  items with their own `current_period_end`, invoice lines with `pricing.price_details`,
  `parent.subscription_item_details.proration`, `discount_amounts`, `taxes` (with
  `tax_behavior`), invoice `parent.subscription_details.subscription`;
- the older shape localstripe answers in: Plans (`plan.amount`, `plan.interval`), line
  `proration` and `tax_amounts` (with `inclusive`), invoice `subscription`.

Rules:
- Amounts are integer minor units in the object's currency, made `Money` with that
  currency's exponent; a float, a missing amount or an unknown currency is a `MappingError`,
  and so is an amount at or above `AMOUNT_CEILING` (`amount_out_of_range`), before any
  document is built from it. A price's `unit_amount_decimal` is a decimal string of the
  codec's strict grammar (`invalid_amount`). The source's own limits are checked on the
  typed event afterwards, as for every source (`domain.limits`).
- A line's canonical `amount` is net of its discounts and of any tax included in the price;
  its `tax_amount` is all the tax on it. The lines must add up to Stripe's `total`, or the
  document is refused (`totals_mismatch`) rather than posted wrong.
- Unix timestamps become UTC dates (one no calendar holds is `date_out_of_range`). A service
  period is `[period.start, period.end)`.
- Canonical ids are Stripe's own ids (unique, stable); each document carries
  `external_refs = {"stripe": id}`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from finsync.domain import amount, codec
from finsync.domain.catalog import BillingFrequency
from finsync.domain.contract import (
    CONTRACT_LEVEL,
    ChangeOp,
    ContractAmendment,
    ContractChange,
    ContractLine,
    SubscriptionContract,
)
from finsync.domain.errors import DomainError, MappingError
from finsync.domain.invoice import CreditMemo, DocumentLine, Invoice
from finsync.domain.money import AMOUNT_CEILING, Money, exponent, total
from finsync.domain.party import CustomerAccount
from finsync.domain.payment import Payment, PaymentApplication, Refund
from finsync.domain.refs import ExternalRefs

Obj = Mapping[str, Any]
T = TypeVar("T")
SYSTEM = "stripe"


@dataclass(frozen=True, slots=True)
class SourceSettings:
    """What Stripe does not say and the books need: one Stripe account is one legal entity."""

    legal_entity: str
    default_country: str = "US"
    default_currency: str = "USD"
    fallback_product: str = "stripe_unpriced"  # lines with no price (one-off items, credits)


# -- small typed readers ------------------------------------------------------------------

def field(obj: Obj, key: str, path: str) -> Any:
    value = obj.get(key)
    if value is None:
        raise MappingError(f"{path}.{key} is required", code="missing_field")
    return value


def text(obj: Obj, key: str, path: str) -> str:
    value = field(obj, key, path)
    if not isinstance(value, str) or not value:
        raise MappingError(f"{path}.{key} must be a non-empty string", code="invalid_field")
    return value


def integer(obj: Obj, key: str, path: str) -> int:
    value = field(obj, key, path)
    if not isinstance(value, int) or isinstance(value, bool):
        raise MappingError(f"{path}.{key} must be an integer, not {value!r}",
                           code="invalid_field")
    return value


def child(obj: Obj, key: str) -> Obj:
    value = obj.get(key)
    return value if isinstance(value, Mapping) else {}


def id_of(value: Any) -> str | None:
    """An id, whether Stripe sent the id or the expanded object."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, Mapping) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


def ref(obj: Obj, key: str, path: str) -> str:
    """The id of a related object (sent as an id or expanded)."""
    found = id_of(obj.get(key))
    if found is None:
        raise MappingError(f"{path}.{key} is required", code="missing_field")
    return found


def listed(obj: Obj, key: str, path: str) -> list[Obj]:
    """The complete `data` of a list object; a page with `has_more` was not hydrated."""
    value = obj.get(key)
    if value is None:
        return []
    if isinstance(value, list):
        return [v for v in value if isinstance(v, Mapping)]
    if not isinstance(value, Mapping) or not isinstance(value.get("data"), list):
        raise MappingError(f"{path}.{key} must be a list object", code="invalid_field")
    if value.get("has_more"):
        raise MappingError(f"{path}.{key} is a partial page; fetch the object first",
                           code="partial_object")
    return [v for v in value["data"] if isinstance(v, Mapping)]


def currency_of(obj: Obj, path: str) -> str:
    code = text(obj, "currency", path).upper()
    try:
        exponent(code)
    except DomainError as exc:
        raise MappingError(f"{path}.currency: {exc}", code="unknown_currency") from exc
    return code


def minor(obj: Obj, key: str, currency: str, path: str) -> Money:
    money = Money.from_minor(integer(obj, key, path), currency)
    if abs(money.amount) >= AMOUNT_CEILING:
        shown = amount.shown(amount.plain(money.amount))
        raise MappingError(f"{path}.{key} {shown} {currency} is out of range: amounts must be "
                           f"below {AMOUNT_CEILING:,f} (AMOUNT_CEILING)",
                           code="amount_out_of_range")
    return money


def day(timestamp: Any, path: str) -> date:
    return instant(timestamp, path).date()


def instant(timestamp: Any, path: str) -> datetime:
    """A unix timestamp as a UTC instant; one no calendar holds is a mapping error."""
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        raise MappingError(f"{path} must be a unix timestamp, not {amount.shown(timestamp)}",
                           code="invalid_field")
    try:
        return datetime.fromtimestamp(timestamp, UTC)
    except (OverflowError, OSError, ValueError):
        raise MappingError(f"{path} {amount.shown(timestamp)} is no date a calendar holds",
                           code="date_out_of_range") from None


def count(obj: Obj, key: str, path: str, absent: int) -> int:
    """A quantity Stripe may leave out or null (`absent` then)."""
    if obj.get(key) is None:
        return absent
    return integer(obj, key, path)


def refs(stripe_id: str) -> ExternalRefs:
    return ExternalRefs.of({SYSTEM: stripe_id})


def built(path: str, factory: Callable[[], T]) -> T:
    """`codec.built` (a domain rule a Stripe object breaks is its mapping error), keeping the
    broken rule's own code (`unknown_currency`, `currency_mismatch`, …) instead of the generic
    `mapping_error`: the code is what the exception queue shows finance."""
    try:
        return codec.built(path, factory)
    except MappingError as exc:
        rule = exc.__cause__
        if exc.code != MappingError.code or not isinstance(rule, DomainError):
            raise
        raise MappingError(str(exc), code=rule.code) from rule


# -- customers ------------------------------------------------------------------------------

def customer(obj: Obj, settings: SourceSettings, version: int) -> CustomerAccount:
    path = "customer"
    currency = (obj.get("currency") or settings.default_currency).upper()
    country = child(obj, "address").get("country") or settings.default_country
    name = obj.get("name") or obj.get("email") or text(obj, "id", path)
    return built(path, lambda: CustomerAccount(
        text(obj, "id", path), str(name), settings.legal_entity, currency, str(country),
        version, refs(text(obj, "id", path))))


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
    return Money(units.scaleb(-exponent(currency)), currency)


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


def contract(sub: Obj, settings: SourceSettings, version: int) -> SubscriptionContract:
    path = "subscription"
    sub_id = text(sub, "id", path)
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
    lines = tuple(_contract_line(item, currency, start, end, f"{path}.items[{n}]")
                  for n, item in enumerate(items))
    return built(path, lambda: SubscriptionContract(
        sub_id, ref(sub, "customer", path),
        settings.legal_entity, currency, start, end, frequencies.pop(), lines, version,
        refs(sub_id)))


def _contract_line(item: Obj, currency: str, start: date, end: date,
                   path: str) -> ContractLine:
    price = _price(item)
    if currency_of(price, path + ".price") != currency:
        raise MappingError(f"{path}: price is not in {currency}", code="currency_mismatch")
    product = id_of(price.get("product")) or id_of(item.get("product"))
    return built(path, lambda: ContractLine(
        text(item, "id", path), product or ref(price, "product", path + ".price"),
        text(price, "id", path + ".price"), count(item, "quantity", path, 0),
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


# -- invoices and credit notes ----------------------------------------------------------------

def _line_product(line: Obj, settings: SourceSettings) -> str:
    details = child(child(line, "pricing"), "price_details")
    price = child(line, "price") or child(line, "plan")
    return (id_of(details.get("product")) or id_of(price.get("product"))
            or settings.fallback_product)


def _line_proration(line: Obj) -> bool:
    parent = child(line, "parent")
    for key in ("subscription_item_details", "invoice_item_details"):
        if isinstance(child(parent, key).get("proration"), bool):
            return bool(child(parent, key)["proration"])
    return line.get("proration") is True


def _taxes(line: Obj, currency: str, path: str) -> tuple[Money, Money]:
    """(tax included in the amount, tax on top of it), old `tax_amounts` or new `taxes`."""
    inclusive, exclusive = Money.zero(currency), Money.zero(currency)
    for n, tax in enumerate(listed(line, "taxes", path) + listed(line, "tax_amounts", path)):
        amount = minor(tax, "amount", currency, f"{path}.taxes[{n}]")
        if tax.get("inclusive") is True or tax.get("tax_behavior") == "inclusive":
            inclusive += amount
        else:
            exclusive += amount
    return inclusive, exclusive


def _document_line(line: Obj, currency: str, settings: SourceSettings, fallback_day: date,
                   path: str) -> DocumentLine:
    gross = minor(line, "amount", currency, path)
    discounts = total([minor(d, "amount", currency, f"{path}.discount_amounts")
                       for d in listed(line, "discount_amounts", path)], currency)
    inclusive, exclusive = _taxes(line, currency, path)
    period = child(line, "period")
    start = day(period["start"], f"{path}.period.start") if "start" in period else fallback_day
    end = day(period["end"], f"{path}.period.end") if "end" in period else fallback_day
    return DocumentLine(
        text(line, "id", path), _line_product(line, settings),
        str(line.get("description") or _line_product(line, settings)),
        count(line, "quantity", path, 1), gross - discounts - inclusive, inclusive + exclusive,
        start, end, _line_proration(line))


def _totals(doc_id: str, lines: Sequence[DocumentLine], currency: str, stated: Money,
            path: str) -> tuple[Money, Money, Money]:
    subtotal = total([line.amount for line in lines], currency)
    tax = total([line.tax_amount for line in lines], currency)
    if subtotal + tax != stated:
        raise MappingError(f"{path} {doc_id}: lines come to {subtotal + tax}, Stripe's total is "
                           f"{stated}", code="totals_mismatch")
    return subtotal, tax, stated


def invoice_subscription(inv: Obj) -> str | None:
    details = child(child(inv, "parent"), "subscription_details")
    return id_of(details.get("subscription")) or id_of(inv.get("subscription"))


def invoice(inv: Obj, settings: SourceSettings) -> Invoice:
    path = "invoice"
    inv_id, currency = text(inv, "id", path), currency_of(inv, path)
    finalized = child(inv, "status_transitions").get("finalized_at")
    issued = day(finalized or inv.get("created"), f"{path}.finalized_at")
    lines = tuple(_document_line(line, currency, settings, issued, f"{path}.lines[{n}]")
                  for n, line in enumerate(listed(inv, "lines", path)))
    subtotal, tax, grand = _totals(inv_id, lines, currency, minor(inv, "total", currency, path),
                                   path)
    due = day(inv["due_date"], f"{path}.due_date") if inv.get("due_date") else issued
    return built(path, lambda: Invoice(
        inv_id, str(inv.get("number") or inv_id),
        ref(inv, "customer", path),
        invoice_subscription(inv), None, settings.legal_entity, currency, issued, due, lines,
        subtotal, tax, grand, refs(inv_id)))


def credit_memo(note: Obj, settings: SourceSettings) -> CreditMemo:
    path = "credit_note"
    note_id, currency = text(note, "id", path), currency_of(note, path)
    issued = day(note.get("created"), f"{path}.created")
    lines = tuple(_document_line(line, currency, settings, issued, f"{path}.lines[{n}]")
                  for n, line in enumerate(listed(note, "lines", path)))
    subtotal, tax, grand = _totals(note_id, lines, currency,
                                   minor(note, "total", currency, path), path)
    return built(path, lambda: CreditMemo(
        note_id, str(note.get("number") or note_id),
        ref(note, "invoice", path),
        ref(note, "customer", path),
        settings.legal_entity, currency, issued, str(note.get("reason") or "credit_note"),
        lines, subtotal, tax, grand, refs(note_id)))


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
