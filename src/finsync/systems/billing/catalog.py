"""The billing catalogue: products and the price plans that sell them.

Rules:
- Product ids and price ids are unique; every plan sells a product of the catalogue.
- A lookup of an id the catalogue does not hold raises `UnknownProductError` /
  `UnknownPriceError` (master-data mismatches), never a default.
- One product may have several plans (one per currency, frequency or model).
"""

from __future__ import annotations

from dataclasses import dataclass

from finsync.domain.catalog import Product
from finsync.systems.billing.errors import CatalogError, UnknownPriceError, UnknownProductError
from finsync.systems.billing.pricing import PricePlan


@dataclass(frozen=True, slots=True)
class Catalog:
    products: tuple[Product, ...]
    plans: tuple[PricePlan, ...]

    def __post_init__(self) -> None:
        product_ids = [p.id for p in self.products]
        plan_ids = [p.id for p in self.plans]
        if len(set(product_ids)) != len(product_ids) or len(set(plan_ids)) != len(plan_ids):
            raise CatalogError("catalogue product and price ids must be unique")
        for plan in self.plans:
            if plan.price.product_id not in product_ids:
                raise UnknownProductError(f"price {plan.id} sells unknown product "
                                          f"{plan.price.product_id!r}")

    def product(self, product_id: str) -> Product:
        for product in self.products:
            if product.id == product_id:
                return product
        raise UnknownProductError(f"unknown product {product_id!r}")

    def plan(self, price_id: str) -> PricePlan:
        for plan in self.plans:
            if plan.id == price_id:
                return plan
        raise UnknownPriceError(f"unknown price {price_id!r}")
