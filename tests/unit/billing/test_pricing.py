"""Rating: flat, per unit, graduated tiers, volume tiers, usage with included quantity."""

from __future__ import annotations

from decimal import Decimal

import pytest

from finsync.domain.catalog import Price, PriceModel
from finsync.systems.billing.errors import CatalogError, InvalidQuantityError
from finsync.systems.billing.pricing import PricePlan, Tier, recurring_rate, usage_rate
from tests.unit.billing.support import ANNUAL, catalog, usd

TIERS = (Tier(100, usd("10.00")), Tier(None, usd("8.00"), usd("50.00")))


def plan(price_id: str) -> PricePlan:
    return catalog().plan(price_id)


def test_flat_price_ignores_quantity() -> None:
    assert recurring_rate(plan("price_platform"), 7, usd("1200.00")) == Decimal("1200.00")


def test_per_unit_price_multiplies() -> None:
    assert recurring_rate(plan("price_seat"), 3, usd("120.00")) == Decimal("360.00")


def test_graduated_tiers_price_each_unit_in_its_tier() -> None:
    # 150 units: 100 x 10.00 + 50 x 8.00 + flat 50.00 = 1450.00
    assert recurring_rate(plan("price_storage_tiered"), 150, usd("0")) == Decimal("1450.00")
    assert recurring_rate(plan("price_storage_tiered"), 100, usd("0")) == Decimal("1000.00")


def test_volume_tiers_price_every_unit_at_the_reached_tier() -> None:
    # 150 units: 150 x 8.00 + 50.00 = 1250.00; 100 units: 100 x 10.00 = 1000.00; 0 -> 0
    assert recurring_rate(plan("price_storage_volume"), 150, usd("0")) == Decimal("1250.00")
    assert recurring_rate(plan("price_storage_volume"), 100, usd("0")) == Decimal("1000.00")
    assert recurring_rate(plan("price_storage_volume"), 0, usd("0")) == Decimal(0)


def test_usage_bills_the_overage_beyond_the_included_quantity() -> None:
    # 25000 used, 10000 included: 15000 x 0.002 = 30.000
    assert usage_rate(plan("price_api"), 25_000, usd("0.002")) == (15_000, Decimal("30.000"))
    assert usage_rate(plan("price_api"), 9_999, usd("0.002")) == (0, Decimal("0.000"))


def test_negative_quantity_is_refused() -> None:
    with pytest.raises(InvalidQuantityError):
        recurring_rate(plan("price_seat"), -1, usd("120.00"))


def test_tiers_must_rise_and_end_open() -> None:
    price = Price("p", "prod_storage", PriceModel.TIERED, usd("0"), ANNUAL)
    with pytest.raises(CatalogError):
        PricePlan(price, (Tier(100, usd("1")), Tier(50, usd("1")), Tier(None, usd("1"))))
    with pytest.raises(CatalogError):
        PricePlan(price, (Tier(100, usd("1")),))
    with pytest.raises(CatalogError):
        PricePlan(price)


def test_usage_plan_is_always_in_arrears() -> None:
    assert plan("price_api").in_arrears
