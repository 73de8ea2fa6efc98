"""Stripe Tax's result on a document line as the canonical jurisdiction breakdown (pure).

Shapes read, one `TaxDetail` per entry:
- the current API: a line's `taxes[]` (`amount`, `tax_behavior`, `taxability_reason`,
  `taxable_amount`, `tax_rate_details.tax_rate`), on invoice and credit note lines alike;
- the older shape (localstripe): `tax_amounts[]` (`amount`, `inclusive`, `tax_rate`,
  `taxability_reason`, `taxable_amount`).

Rules:
- The jurisdiction comes from the tax rate object (`country`, `state`, `jurisdiction_level`,
  `jurisdiction`, `tax_type`, `percentage`): "DE" for a country's tax, "US-NY" for a state's
  (`state` is an ISO 3166-2 code without its country prefix), "US-NY-NEW_YORK_CITY" for a
  county, city, district or combined ("multiple") rate, its name cut to 16 characters.
- A rate is Stripe's own object: expanded in the payload, or fetched beside the event
  (`rate_fetches` plans one fetch per rate id the snapshot names; the delivery carries each
  under `rate_key(id)`, `rates_of` collects them). A rate Stripe names by id and the payload
  does not carry is never guessed: the mapping refuses the document (`partial_object`, the
  poller's copy carries it); billing's books read it from the mirror.
- A line whose rates do not all name a jurisdiction finsync can write (a manual rate with no
  country, a state that is no ISO code) keeps its tax without a breakdown: tax with no
  jurisdiction ("" in the tax streams), as every document mapped before breakdowns had it.
- The rate is `percentage` / 100, as a Decimal from the number's text, in [0, 1) (else
  `invalid_tax_rate`). The base is Stripe's `taxable_amount`, else the line's net amount.
- `taxability_reason` says why a zero tax is zero: `reverse_charge`, `customer_exempt`
  (exempt), `not_subject_to_tax`, `product_exempt`, `zero_rated`, `not_collecting` … (not
  taxable); any other reason, or none, is taxable. An entry with tax is taxable whatever its
  reason: Stripe collected it, so the books carry it.
- Documents issued before `SourceSettings.tax_breakdown_from` keep the shape they were first
  mapped in, with no breakdown (`breaks_down`): their stored events map again to the same
  body, and billing's books say what the ledger booked for them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from finsync.connectors.stripe.delivery import Delivery, Fetch, snapshot
from finsync.connectors.stripe.objects import (
    Obj,
    SourceSettings,
    child,
    id_of,
    instant,
    listed,
    minor,
)
from finsync.domain.errors import MappingError
from finsync.domain.money import Money, total
from finsync.domain.tax import TaxDetail, TaxTreatment

Rates = Mapping[str, Obj]  # tax rate id -> Stripe's tax rate object
TAX_RATE = "tax_rate"  # the object type fetched beside an event
RATES_MAX = 250  # distinct tax rates one document may name (Stripe allows 10 a line)
LOCAL_MAX = 16  # characters of a local jurisdiction's name in its code
_LOCAL_LEVELS = frozenset({"county", "city", "district", "multiple"})
_COUNTRY = re.compile(r"[A-Z]{2}")
_REGION = re.compile(r"[A-Z0-9]{1,3}")
_NOT_LOCAL = re.compile(r"[^A-Z0-9]+")
_ENTRY_KEYS = ("taxes", "tax_amounts")

TREATMENTS: Mapping[str, TaxTreatment] = {
    "reverse_charge": TaxTreatment.REVERSE_CHARGE,
    "customer_exempt": TaxTreatment.EXEMPT,
    **{reason: TaxTreatment.NOT_TAXABLE for reason in (
        "not_subject_to_tax", "product_exempt", "product_exempt_holiday", "zero_rated",
        "not_collecting", "not_supported", "not_available", "excluded_territory",
        "jurisdiction_unsupported")},
}


@dataclass(frozen=True, slots=True)
class TaxEntry:
    """One entry of a line's `taxes` (or `tax_amounts`), its amounts as Money."""

    amount: Money
    inclusive: bool
    taxable: Money | None
    reason: str | None
    rate: Any  # the rate's id, or the expanded object; None when the entry names none


@dataclass(frozen=True, slots=True)
class LineTax:
    entries: tuple[TaxEntry, ...]
    currency: str

    @property
    def inclusive(self) -> Money:
        return total([e.amount for e in self.entries if e.inclusive], self.currency)

    @property
    def exclusive(self) -> Money:
        return total([e.amount for e in self.entries if not e.inclusive], self.currency)


def line_tax(line: Obj, currency: str, path: str) -> LineTax:
    entries: list[TaxEntry] = []
    for key in _ENTRY_KEYS:
        for n, tax in enumerate(listed(line, key, path)):
            at = f"{path}.{key}[{n}]"
            base = (minor(tax, "taxable_amount", currency, at)
                    if tax.get("taxable_amount") is not None else None)
            reason = tax.get("taxability_reason")
            entries.append(TaxEntry(
                minor(tax, "amount", currency, at),
                tax.get("inclusive") is True or tax.get("tax_behavior") == "inclusive",
                base, reason if isinstance(reason, str) else None, _rate_ref(tax)))
    return LineTax(tuple(entries), currency)


def _rate_ref(tax: Obj) -> Any:
    rate = tax.get("tax_rate") if "tax_rate" in tax else child(tax, "tax_rate_details").get(
        "tax_rate")
    return rate if isinstance(rate, Mapping) or id_of(rate) else None


def details(tax: LineTax, net: Money, rates: Rates, path: str,
            strict: bool = True) -> tuple[TaxDetail, ...]:
    """The jurisdiction lines of a line's tax; () when a rate names no jurisdiction finsync
    can write (or, not `strict`, when a rate is not at hand)."""
    found: list[TaxDetail] = []
    for entry in tax.entries:
        rate = _resolve(entry.rate, rates)
        if rate is None and strict and entry.rate is not None:
            raise MappingError(f"{path}: tax rate {id_of(entry.rate)} was not fetched with "
                               "the event", code="partial_object")
        place = None if rate is None else jurisdiction(rate)
        if rate is None or place is None:
            return ()
        treatment = TREATMENTS.get(entry.reason or "", TaxTreatment.TAXABLE)
        if not entry.amount.is_zero:
            treatment = TaxTreatment.TAXABLE
        found.append(TaxDetail(place, _tax_type(rate), rate_of(rate, path),
                               entry.taxable if entry.taxable is not None else net,
                               entry.amount, treatment))
    return tuple(found)


def _resolve(rate: Any, rates: Rates) -> Obj | None:
    if isinstance(rate, Mapping) and "percentage" in rate:
        return rate
    found = id_of(rate)
    return None if found is None else rates.get(found)


def _tax_type(rate: Obj) -> str:
    kind = rate.get("tax_type")
    return kind if isinstance(kind, str) and kind else "tax"


def jurisdiction(rate: Obj) -> str | None:
    """The jurisdiction code of a Stripe tax rate, or None when it names none."""
    country = rate.get("country")
    if not isinstance(country, str) or not _COUNTRY.fullmatch(country.upper()):
        return None
    code = country.upper()
    state = rate.get("state")
    if isinstance(state, str) and state:
        if not _REGION.fullmatch(state.upper()):
            return None
        code = f"{code}-{state.upper()}"
    if rate.get("jurisdiction_level") not in _LOCAL_LEVELS:
        return code
    name = rate.get("jurisdiction")
    local = _NOT_LOCAL.sub("_", name.upper() if isinstance(name, str) else "")
    local = local.strip("_")[:LOCAL_MAX].rstrip("_")
    if code == country.upper() or not local:
        return None  # a local rate's code needs its region and its name
    return f"{code}-{local}"


def rate_of(rate: Obj, path: str) -> Decimal:
    """Stripe's `percentage` / 100, from the number's text."""
    value = rate.get("percentage")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise MappingError(f"{path}: tax rate {rate.get('id')} has no percentage",
                           code="invalid_tax_rate")
    try:
        fraction = (Decimal(str(value)) / 100).normalize()
    except InvalidOperation:
        raise MappingError(f"{path}: tax rate {rate.get('id')}'s percentage {value!r} is not "
                           "a number", code="invalid_tax_rate") from None
    if not fraction.is_finite() or not 0 <= fraction < 1:
        raise MappingError(f"{path}: tax rate {rate.get('id')}'s percentage {value!r} is "
                           "not in [0, 100)", code="invalid_tax_rate")
    return fraction


# -- rates carried and to fetch ---------------------------------------------------------------

def rate_key(rate_id: str) -> str:
    """The key of a fetched rate in a delivery's `related`."""
    return f"{TAX_RATE}:{rate_id}"


def rates_of(related: Mapping[str, Obj]) -> dict[str, Obj]:
    """The tax rates a delivery carries beside its event."""
    return {str(obj["id"]): obj for obj in related.values()
            if obj.get("object") == TAX_RATE and isinstance(obj.get("id"), str)}


def rate_ids(doc: Obj) -> list[str]:
    """The ids of the rates a document's lines name and do not expand, in order (never
    raises: the poller plans with it; the mapping bounds the count, `RATES_MAX`)."""
    lines = child(doc, "lines").get("data")
    found: list[str] = []
    for line in lines if isinstance(lines, list) else ():
        for key in _ENTRY_KEYS:
            entries = line.get(key) if isinstance(line, Mapping) else None
            for tax in entries if isinstance(entries, list) else ():
                rate = _rate_ref(tax) if isinstance(tax, Mapping) else None
                if isinstance(rate, str) and rate not in found:
                    found.append(rate)
    return found


def rate_fetches(doc: Obj) -> tuple[Fetch, ...]:
    """The tax rates an invoice's or credit note's lines name by id (`taxes`), at most
    `RATES_MAX` (the mapping refuses a document that names more)."""
    if doc.get("object") not in ("invoice", "credit_note") or doc.get("status") == "draft":
        return ()
    found = rate_ids(doc)[:RATES_MAX]
    return tuple(Fetch(rate_key(rate), TAX_RATE, rate) for rate in found)


def rates_named(event: Obj) -> tuple[Fetch, ...]:
    """The rates of the event's own document; when its lines are partial, the poller fetches
    the whole document first and then its rates (`fetch_after`)."""
    obj = snapshot(event)
    return () if child(obj, "lines").get("has_more") else rate_fetches(obj)


def carried_rates(d: Delivery) -> dict[str, Obj]:
    """The tax rates the delivery carries; a document naming more than `RATES_MAX`
    is refused."""
    named = len(rate_ids(d.object))
    if named > RATES_MAX:
        raise MappingError(f"{d.object.get('object')} {d.object.get('id')} names {named} tax "
                           f"rates, above RATES_MAX ({RATES_MAX})",
                           code="too_many_tax_rates")
    return rates_of(d.related)


def breaks_down(inv: Obj, settings: SourceSettings) -> bool:
    """Whether an invoice (and what credits it) carries its tax breakdown: issued on or
    after `tax_breakdown_from`."""
    return issued_since(inv, settings.tax_breakdown_from)


def issued_since(inv: Obj, since: datetime | None) -> bool:
    if since is None:
        return True
    moment = child(inv, "status_transitions").get("finalized_at") or inv.get("created")
    return instant(moment, "invoice.finalized_at") >= since


def document_taxes(doc: Obj, currency: str, rates: Rates | None,
                   path: str) -> dict[str, int]:
    """An invoice's or credit note's tax per jurisdiction in ISO minor units, as its mapping
    breaks it down ("" for tax without a breakdown: `rates` None, or a rate not at hand)."""
    sums: dict[str, int] = {}
    for n, line in enumerate(listed(doc, "lines", path)):
        at = f"{path}.lines[{n}]"
        tax = line_tax(line, currency, at)
        net = (minor(line, "amount", currency, at) - tax.inclusive - total(
            [minor(d, "amount", currency, at) for d in listed(line, "discount_amounts", at)],
            currency))
        found = () if rates is None else details(tax, net, rates, at, strict=False)
        parts = [(d.jurisdiction, d.amount) for d in found] or [
            ("", tax.inclusive + tax.exclusive)]
        for place, amount in parts:
            sums[place] = sums.get(place, 0) + amount.to_minor()
    return sums
