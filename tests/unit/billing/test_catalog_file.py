"""The billing catalogue file: the shipped demo catalogue, and refusals that name the entry."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from finsync.domain.catalog import PriceModel
from finsync.domain.money import Money
from finsync.systems.billing.catalog_file import load_billing_config, parse_billing_config
from finsync.systems.billing.errors import (
    CatalogError,
    TaxInclusivePriceError,
    TaxRatesMovedError,
)
from finsync.systems.billing.proration import ProrationUnit
from finsync.systems.billing.state import BillingConfig, DowngradePolicy
from tests.taxkit import RateQuoter

SEAT: dict[str, Any] = {"id": "price_seat", "product": "prod_seat", "model": "per_unit",
                        "unit_amount": "120.00", "currency": "USD", "frequency": "annual"}
PRODUCT = {"id": "prod_seat", "name": "Seat"}
TAX = RateQuoter()


def parse(data: dict[str, Any]) -> BillingConfig:
    return parse_billing_config(data, tax=TAX)


def test_default_catalog_holds_the_demo_prices() -> None:
    config = load_billing_config(tax=TAX)
    catalog = config.catalog
    seat, analytics = catalog.plan("price_seat_annual"), catalog.plan("price_analytics_annual")
    overage = catalog.plan("price_usage_overage")
    assert (seat.price.model, seat.price.unit_amount) == (PriceModel.PER_UNIT,
                                                          Money.of("120.00", "USD"))
    assert (analytics.price.model, analytics.price.unit_amount) == (
        PriceModel.FLAT, Money.of("24000.00", "USD"))
    assert overage.is_usage and overage.price.included_quantity > 0
    assert config.proration.unit is ProrationUnit.DAY
    assert config.downgrade_policy is DowngradePolicy.CREDIT_NOW
    assert config.payment_terms_days == 30


def test_catalogue_with_tax_rates_is_refused_with_where_they_live_now() -> None:
    rates = [{"country": "DE", "tax_code": "saas", "rate": "0.19"}]
    with pytest.raises(TaxRatesMovedError, match="tax engine's file"):
        parse({"products": [PRODUCT], "prices": [SEAT], "tax_rates": rates})


def test_inclusive_subscription_price_is_refused_at_load() -> None:
    with pytest.raises(TaxInclusivePriceError, match="one-off prices only"):
        parse({"products": [PRODUCT], "prices": [{**SEAT, "tax_behavior": "inclusive"}]})


def test_one_off_price_may_include_tax() -> None:
    fee = {**SEAT, "id": "price_setup", "model": "flat", "timing": "one_off",
           "tax_behavior": "inclusive"}
    config = parse({"products": [PRODUCT], "prices": [SEAT, fee]})
    assert config.catalog.plan("price_setup").tax_inclusive
    assert config.catalog.plan("price_setup").one_off
    assert not config.catalog.plan("price_seat").tax_inclusive


def test_float_amount_is_refused() -> None:
    with pytest.raises(CatalogError, match="string"):
        parse({"products": [PRODUCT], "prices": [{**SEAT, "unit_amount": 120.0}]})


def test_unknown_key_is_refused() -> None:
    with pytest.raises(CatalogError, match="unknown keys"):
        parse({"products": [PRODUCT], "prices": [{**SEAT, "amount": "1"}]})


def test_price_of_unknown_product_is_refused() -> None:
    with pytest.raises(CatalogError, match="unknown product"):
        parse({"products": [], "prices": [SEAT]})


def test_missing_key_names_it() -> None:
    with pytest.raises(CatalogError, match="currency"):
        parse({"products": [PRODUCT],
               "prices": [{k: v for k, v in SEAT.items() if k != "currency"}]})


def test_unreadable_file_is_a_catalog_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[products]\n")
    with pytest.raises(CatalogError, match="cannot read"):
        load_billing_config(bad, tax=TAX)


def test_tiers_are_read_as_money() -> None:
    tiered = {**SEAT, "model": "tiered", "tiers": [
        {"up_to": 100, "unit_amount": "10.00"},
        {"unit_amount": "8.00", "flat_amount": "50.00"}]}
    plan = parse({"products": [PRODUCT], "prices": [tiered]}).catalog.plan(
        "price_seat")
    assert [t.up_to for t in plan.tiers] == [100, None]
    assert plan.tiers[1].flat_amount == Money.of("50.00", "USD")


def test_catalogue_standalone_selling_prices_are_read_for_the_revenue_engine() -> None:
    from finsync.systems.billing.catalog_file import load_standalone_selling_prices

    ssps = {s.product_id: s for s in load_standalone_selling_prices()}
    assert str(ssps["prod_premium_analytics"].amount) == "24000.00 USD"
    assert ssps["prod_platform_seat"].applies_on(date(2026, 5, 16))


def test_ssp_missing_a_key_is_named(tmp_path: Path) -> None:
    from finsync.systems.billing.catalog_file import load_standalone_selling_prices
    from finsync.systems.billing.errors import CatalogError

    path = tmp_path / "catalog.toml"
    path.write_text('[[standalone_selling_prices]]\nproduct = "p"\ncurrency = "USD"\n'
                    "effective_from = 2026-01-01\n")
    with pytest.raises(CatalogError, match="amount"):
        load_standalone_selling_prices(path)
