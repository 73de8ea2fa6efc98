"""The catalogue map file and the translation of a CPQ version into billing's order."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from finsync.domain import codec
from finsync.domain.catalog_map import (
    CatalogMapError,
    UnmappedProductError,
    digest,
    parse,
    translate,
)
from finsync.domain.commercial import SubscriptionOrder
from finsync.hub.catalog_map import Known, problems
from tests.q2ckit import analytics, contract, line, seats

SHIPPED = (Path(__file__).parents[2] / "src/finsync/default_cpq_catalog.toml").read_text()

ONE = """
[[products]]
code = "SEATS-ANNUAL"
billing_product = "prod_platform_seat"
prices = { USD = "price_seat_annual" }
ssp_product = "prod_platform_seat"
revenue_account = "4000"
"""


def test_shipped_map_names_billings_default_catalogue() -> None:
    catalog = parse(SHIPPED)
    assert [e.code for e in catalog.entries] == ["PREMIUM-ANALYTICS", "SEATS-ANNUAL",
                                                 "USAGE-OVERAGE"]
    seat = catalog.get("SEATS-ANNUAL")
    assert seat is not None
    assert seat.price_in("EUR") == "price_seat_annual_eur"
    assert seat.price_in("GBP") is None


def test_unknown_keys_are_refused_naming_the_entry() -> None:
    with pytest.raises(CatalogMapError, match="product 'SEATS-ANNUAL': unknown keys colour"):
        parse(ONE + 'colour = "red"\n')
    with pytest.raises(CatalogMapError, match="unknown keys: plans"):
        parse(ONE + "[plans]\n")


def test_a_code_mapped_twice_is_refused() -> None:
    with pytest.raises(CatalogMapError, match="mapped twice"):
        parse(ONE + ONE)


def test_a_bad_currency_or_an_empty_id_is_refused() -> None:
    with pytest.raises(CatalogMapError, match="'usd' is not an ISO 4217"):
        parse(ONE.replace("USD =", "usd ="))
    with pytest.raises(CatalogMapError, match="ssp_product must be a non-empty string"):
        parse(ONE.replace('ssp_product = "prod_platform_seat"', 'ssp_product = ""'))


def test_digest_follows_content_not_spelling() -> None:
    entries = SHIPPED.split("[[products]]")[1:]
    reordered = "".join("[[products]]" + part for part in reversed(entries))
    assert digest(parse(reordered)) == digest(parse(SHIPPED))
    assert digest(parse(ONE)) != digest(parse(ONE.replace('"4000"', '"4100"')))


def test_check_names_every_problem_against_the_systems() -> None:
    known = Known(prices={"price_seat_annual": ("prod_other", "USD")},
                  ssp_products=frozenset({"prod_platform_seat"}),
                  revenue_accounts=frozenset({"4100"}))
    assert problems(parse(ONE), known) == [
        "product SEATS-ANNUAL: price price_seat_annual is a price of prod_other, not of "
        "prod_platform_seat",
        "product SEATS-ANNUAL: the ERP chart has no revenue account 4000"]
    assert problems(parse(ONE), Known()) == []  # nothing known: nothing to check


def test_translation_maps_every_line_to_billings_ids() -> None:
    # 500 seats at 120.00 and the analytics module at 24,000.00 a year.
    order = translate(contract(1, seats(500), analytics()), parse(SHIPPED), 3)
    assert (order.id, order.contract_id, order.cpq_version, order.catalog_version) == (
        "Q-CPQ-C1-1", "CPQ-C1", 1, 3)
    assert [(ln.line_id, ln.product_id, ln.price_id, ln.quantity, str(ln.unit_price))
            for ln in order.lines] == [
        ("L-seats", "prod_platform_seat", "price_seat_annual", 500, "120.00 USD"),
        ("L-analytics", "prod_premium_analytics", "price_analytics_annual", 1,
         "24000.00 USD")]
    assert codec.decode(SubscriptionOrder, codec.encode(order), "order") == order


def test_an_unmapped_product_names_each_line_and_product() -> None:
    cpq = contract(1, seats(500), line("L-x", "MYSTERY", 1, "10.00"))
    with pytest.raises(UnmappedProductError) as caught:
        translate(cpq, parse(SHIPPED), 1)
    assert caught.value.lines == (("L-x", "MYSTERY"),)
    assert "line L-x: product MYSTERY" in str(caught.value)


def test_a_product_without_a_price_in_the_contracts_currency_is_unmapped() -> None:
    # The analytics module has no EUR price in the shipped map.
    cpq = contract(1, seats(500, "110.00", currency="EUR"), analytics("22000.00",
                                                                      currency="EUR"),
                   currency="EUR")
    with pytest.raises(UnmappedProductError, match="no EUR price for line L-analytics"):
        translate(cpq, parse(SHIPPED), 1)


@given(st.integers(0, 100_000), st.decimals(0, 1_000_000, places=3),
       st.sampled_from(["SEATS-ANNUAL", "PREMIUM-ANALYTICS", "USAGE-OVERAGE"]))
def test_an_order_reads_back_as_written(quantity: int, price: Decimal, code: str) -> None:
    # Unit prices may be finer than minor units (0.002 an API call).
    order = translate(contract(1, line("L-1", code, quantity, str(price))), parse(SHIPPED), 1)
    assert codec.decode(SubscriptionOrder, codec.encode(order), "order") == order
