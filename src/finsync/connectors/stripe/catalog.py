"""Stripe prices and products as products of the revenue catalogue, and Stripe accounts as
legal entities.

Rules:
- A priced line (a subscription item, an invoice line with a price) is booked on a product
  of the revenue catalogue, whose standalone selling price and recognition pattern the
  revenue engine uses: the product its Stripe price maps to (`prices`), else the one its
  Stripe product maps to (`products`). A price's own mapping wins, so one Stripe product
  sold at two prices (monthly and annual, say) may be two revenue products.
- A source whose catalogue maps nothing books a line on its Stripe product id: the revenue
  catalogue is then keyed by Stripe's product ids.
- With a catalogue, a price that neither maps is a `MappingError` of code
  `master_data_mismatch` naming the price and its product, never a line booked silently on
  another product: the raw event is kept, finance sees a master-data exception, and once
  the price is mapped a retry maps the event again.
- An event of a Connect account (its `account` field) books into the legal entity the
  source maps that account to; an account the source does not map is a `MappingError`
  (`unknown_account`), never booked into the platform's entity. An event without
  `account` is the source's own account's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from finsync.domain.errors import ExceptionClass, MappingError

UNMAPPED_PRICE = ExceptionClass.MASTER_DATA_MISMATCH.value
UNKNOWN_ACCOUNT = "unknown_account"


@dataclass(frozen=True, slots=True)
class Catalog:
    """Stripe price id -> revenue product, and Stripe product id -> revenue product."""

    prices: Mapping[str, str] = field(default_factory=dict)
    products: Mapping[str, str] = field(default_factory=dict)

    @property
    def configured(self) -> bool:
        return bool(self.prices or self.products)

    def product(self, price_id: str | None, product_id: str | None, path: str) -> str:
        """The revenue product of a line priced by `price_id` of Stripe product
        `product_id` (either may be unknown, not both)."""
        if not self.configured:
            if product_id is None:
                raise MappingError(f"{path}: the price names no product", code="missing_field")
            return product_id
        if price_id is not None and price_id in self.prices:
            return self.prices[price_id]
        if product_id is not None and product_id in self.products:
            return self.products[product_id]
        raise MappingError(
            f"{path}: Stripe price {price_id or '(none)'} of product {product_id or '(none)'} "
            "is not in the source's catalogue: map the price under [stripe.<source>.catalog] "
            "prices, or its product under products, to a product of the revenue catalogue",
            code=UNMAPPED_PRICE)


def entity_of(own: str, connected: Mapping[str, str], account: object) -> str:
    """The legal entity of an event whose `account` field is `account`: `own` (the source's
    own account's entity) when None, else the Connect account's in `connected`."""
    if account is None:
        return own
    if not isinstance(account, str) or not account:
        raise MappingError(f"event.account must be a Connect account id, not "
                           f"{str(account)[:64]!r}", code="invalid_field")
    if account not in connected:
        raise MappingError(
            f"event of Connect account {account[:64]}, which the source maps to no legal "
            "entity: add it under [stripe.<source>.connected_accounts]", code=UNKNOWN_ACCOUNT)
    return connected[account]
