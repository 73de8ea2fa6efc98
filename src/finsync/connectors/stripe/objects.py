"""Stripe objects (as JSON) to domain documents, in both shapes the connector meets.

Shapes read:
- the current API: Prices (`price.unit_amount_decimal`, `price.recurring`), subscription
  items with their own `current_period_end`, invoice lines with `pricing.price_details`,
  `parent.subscription_item_details.proration`, `discount_amounts`, `taxes` (with
  `tax_behavior`), invoice `parent.subscription_details.subscription`;
- the older shape localstripe answers in: Plans (`plan.amount`, `plan.interval`), line
  `proration` and `tax_amounts` (with `inclusive`), invoice `subscription`.

Rules:
- Amounts are integers in Stripe's minor unit of the object's currency, made `Money` by
  `currency.money` (Stripe's exponents, special cases such as ISK included); a float, a
  missing amount or an unknown currency is a `MappingError`, and so is an amount at or
  above `AMOUNT_CEILING` (`amount_out_of_range`) or finer than the currency's ISO minor
  unit (`amount_precision`), before any document is built from it. A price's
  `unit_amount_decimal` is a decimal string of the codec's strict grammar
  (`invalid_amount`). The source's own limits are checked on the typed event afterwards,
  as for every source (`domain.limits`).
- A line's canonical `amount` is net of its discounts and of any tax included in the price;
  its `tax_amount` is all the tax on it, its `taxes` the jurisdictions it is made of
  (`taxes`). The lines must add up to Stripe's `total`, or the
  document is refused (`totals_mismatch`) rather than posted wrong.
- Unix timestamps become UTC dates (one no calendar holds is `date_out_of_range`). A service
  period is `[period.start, period.end)`.
- Canonical ids are Stripe's own ids (unique, stable); each document carries
  `external_refs = {"stripe": id}`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from finsync.connectors.stripe import currency
from finsync.connectors.stripe.catalog import Catalog, entity_of
from finsync.domain import amount, codec
from finsync.domain.errors import DomainError, MappingError
from finsync.domain.money import Money
from finsync.domain.refs import ExternalRefs

Obj = Mapping[str, Any]
T = TypeVar("T")
SYSTEM = "stripe"


@dataclass(frozen=True, slots=True)
class SourceSettings:
    """What Stripe does not say and the books need: the legal entity of the source's Stripe
    account and of each Connect account (`catalog.entity_of`), and the revenue product of
    each price (`catalog.Catalog`)."""

    legal_entity: str
    default_country: str = "US"
    default_currency: str = "USD"
    fallback_product: str = "stripe_unpriced"  # invoice lines with no price
    catalog: Catalog = dataclasses.field(default_factory=Catalog)
    connected_accounts: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # Documents issued before this instant (and customer events before it) map as they did
    # before tax breakdowns (`taxes.breaks_down`); None: every one carries its breakdown.
    tax_breakdown_from: datetime | None = None
    # Billing's price ids -> Stripe price ids (`[stripe.<source>.catalog] billing_prices`):
    # a subscription the commercial layer ordered is mapped in billing's price ids.
    billing_prices: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def billing_price(self, stripe_price: str) -> str:
        """The billing price id of a Stripe price (the Stripe id when none maps to it)."""
        found = sorted(b for b, s in self.billing_prices.items() if s == stripe_price)
        return found[0] if found else stripe_price

    def for_event(self, event: Obj) -> SourceSettings:
        """These settings for one event: its legal entity is its account's."""
        entity = entity_of(self.legal_entity, self.connected_accounts, event.get("account"))
        if entity == self.legal_entity:
            return self
        return dataclasses.replace(self, legal_entity=entity)


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
    return currency.code_of(text(obj, "currency", path), path)


def minor(obj: Obj, key: str, code: str, path: str) -> Money:
    """The integer amount `obj[key]` in Stripe's units of `code`, as Money."""
    return currency.money(integer(obj, key, path), code, f"{path}.{key}")


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
