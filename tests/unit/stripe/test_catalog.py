"""Stripe prices and products as revenue products, Stripe accounts as legal entities
(issue 15, Build 5 and 6). Subscriptions are Stripe's own examples in the current shape
(`tests/stripeshapes`); invoices the hand-written current shape of `payloads`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from finsync.bootstrap import stripe_settings
from finsync.config import ConfigError, parse_config
from finsync.connectors.stripe.catalog import Catalog
from finsync.connectors.stripe.mapping import translate
from finsync.connectors.stripe.objects import SourceSettings
from finsync.domain.contract import SubscriptionContract
from finsync.domain.errors import ExceptionClass, MappingError
from finsync.domain.events import BusinessDomain, ContractCreated, InvoiceIssued
from finsync.domain.invoice import Invoice
from finsync.domain.money import Money
from tests.stripeshapes import delivered, event, webhook
from tests.stripeshapes.contracts import item, price, subscription
from tests.unit.stripe.payloads import invoice, line

SEATS = price("price_seats_annual", "prod_seats", 12_000)  # 120.00 USD a seat-year
SEATS_MONTHLY = price("price_seats_monthly", "prod_seats", 1_100, interval="month")
ANALYTICS = price("price_analytics", "prod_analytics", 2_400_000)  # 24,000.00 a year
CATALOG = Catalog(prices={"price_seats_annual": "platform_seat"},
                  products={"prod_seats": "platform_seat_flex",
                            "prod_analytics": "premium_analytics"})
SETTINGS = SourceSettings("le_us", catalog=CATALOG,
                          connected_accounts={"acct_1DE": "le_de", "acct_1JP": "le_jp"})


def created(sub: dict[str, Any], settings: SourceSettings = SETTINGS,
            account: str | None = None) -> SubscriptionContract:
    evt = event("customer.subscription.created", sub, evt="evt_sub", account=account)
    (draft,) = translate(settings, "stripe", delivered(evt, version=1))
    assert isinstance(draft.event, ContractCreated)
    return draft.event.contract


def issued(inv: dict[str, Any], settings: SourceSettings = SETTINGS,
           account: str | None = None) -> Invoice:
    evt = event("invoice.finalized", inv, evt="evt_inv", account=account)
    (draft,) = translate(settings, "stripe", webhook(evt))
    assert isinstance(draft.event, InvoiceIssued)
    return draft.event.invoice


# -- prices and products -> the revenue catalogue ---------------------------------------------

def test_items_are_booked_on_the_revenue_products_their_prices_map_to() -> None:
    sub = subscription([item("si_seats", SEATS, 10), item("si_analytics", ANALYTICS, 1)])
    signed = created(sub)
    # price_seats_annual is mapped itself; price_analytics through its product
    assert [(li.line_id, li.product_id, li.price_id) for li in signed.lines] == [
        ("si_seats", "platform_seat", "price_seats_annual"),
        ("si_analytics", "premium_analytics", "price_analytics")]
    assert [li.unit_price for li in signed.lines] == [Money.of("120.00", "USD"),
                                                      Money.of("24000.00", "USD")]


def test_a_price_of_its_own_wins_over_its_product() -> None:
    # prod_seats sold at two prices: the annual one is mapped itself, the monthly one only
    # through its product, so the two are two revenue products (and two SSPs).
    monthly = created(subscription([item("si_seats", SEATS_MONTHLY, 10)]))
    assert monthly.lines[0].product_id == "platform_seat_flex"


def test_an_unmapped_price_is_a_master_data_mismatch_naming_it() -> None:
    stray = price("price_stray", "prod_stray", 5_000)
    with pytest.raises(MappingError) as refused:
        created(subscription([item("si_seats", SEATS, 10), item("si_stray", stray, 2)]))
    assert refused.value.code == "master_data_mismatch"
    assert refused.value.exception_class is ExceptionClass.MASTER_DATA_MISMATCH
    assert "price_stray" in str(refused.value) and "prod_stray" in str(refused.value)
    assert "items[1]" in str(refused.value)  # where in the subscription


def test_without_a_catalogue_stripe_product_ids_are_the_products() -> None:
    plain = SourceSettings("le_us")
    signed = created(subscription([item("si_seats", SEATS, 10)]), plain)
    assert signed.lines[0].product_id == "prod_seats"
    assert issued(invoice([line("il_1", 12_000, product="prod_seats")], 12_000),
                  plain).lines[0].product_id == "prod_seats"


def test_invoice_lines_map_through_the_same_catalogue_as_their_contract() -> None:
    # payloads.line prices a line at f"price_{product}": price_prod_seats is not mapped
    # itself, so the line books on prod_seats' product, as a contract item at that price.
    billed = issued(invoice([line("il_seats", 120_000, product="prod_seats", quantity=10),
                             line("il_analytics", 2_400_000, product="prod_analytics")],
                            2_520_000))
    assert [li.product_id for li in billed.lines] == ["platform_seat_flex",
                                                      "premium_analytics"]


def test_an_unmapped_invoice_line_price_is_a_master_data_mismatch() -> None:
    with pytest.raises(MappingError) as refused:
        issued(invoice([line("il_1", 5_000, product="prod_stray")], 5_000))
    assert refused.value.exception_class is ExceptionClass.MASTER_DATA_MISMATCH
    assert "price_prod_stray" in str(refused.value)


def test_a_line_without_any_price_keeps_the_fallback_product() -> None:
    unpriced = line("il_1", 5_000)
    unpriced["pricing"] = {"type": "price_details", "price_details": None,
                           "unit_amount_decimal": None}
    assert issued(invoice([unpriced], 5_000)).lines[0].product_id == "stripe_unpriced"


# -- Stripe accounts and Connect accounts -> legal entities -----------------------------------

def test_events_of_connect_accounts_book_into_their_legal_entities() -> None:
    sub = subscription([item("si_seats", SEATS, 10)])
    assert created(sub).legal_entity == "le_us"  # the source's own account
    assert created(sub, account="acct_1DE").legal_entity == "le_de"
    billed = issued(invoice([line("il_1", 120_000, product="prod_seats")], 120_000),
                    account="acct_1JP")
    assert billed.legal_entity == "le_jp"


def test_an_event_of_an_unknown_connect_account_is_a_mapping_error() -> None:
    sub = subscription([item("si_seats", SEATS, 10)])
    with pytest.raises(MappingError) as refused:
        created(sub, account="acct_1XX")
    assert refused.value.code == "unknown_account"
    assert refused.value.exception_class is ExceptionClass.MAPPING_ERROR
    assert "acct_1XX" in str(refused.value)


def test_an_unknown_account_s_event_without_financial_effect_is_acknowledged() -> None:
    evt = event("customer.subscription.trial_will_end",
                subscription([item("si_seats", SEATS, 10)]), evt="evt_t", account="acct_1XX")
    assert translate(SETTINGS, "stripe", webhook(evt)) == []


# -- configuration --------------------------------------------------------------------------

def config(**stripe: Any) -> dict[str, Any]:
    return {
        "ownership": {d.value: "stripe" for d in BusinessDomain} | {
            "ledger": "ledger", "revenue": "revrec"},
        "sources": {"stripe": "stripe"},
        "stripe": {"stripe": {"legal_entity": "le_us", **stripe}},
        "systems": {"revrec": {"role": "revenue", "connector": "embedded"}},
        "revenue": {"ssp": [{"product_id": "platform_seat", "amount": "120.00",
                             "currency": "USD", "effective_from": "2026-01-01"}]},
    }


def test_the_catalogue_and_connect_accounts_come_from_the_source_section() -> None:
    parsed = parse_config(config(catalog={"prices": {"price_seats_annual": "platform_seat"}},
                                 connected_accounts={"acct_1DE": "le_de"}), Path("."))
    settings = stripe_settings(parsed, "stripe")
    assert settings.catalog == Catalog(prices={"price_seats_annual": "platform_seat"})
    assert settings.connected_accounts == {"acct_1DE": "le_de"}


def test_a_catalogue_naming_a_product_the_revenue_catalogue_lacks_is_refused() -> None:
    parsed = parse_config(config(catalog={"products": {"prod_seats": "platform_sea"}}),
                          Path("."))
    with pytest.raises(ConfigError, match="prod_seats -> platform_sea"):
        stripe_settings(parsed, "stripe")


@pytest.mark.parametrize("accounts", [{"cus_1": "le_de"}, {"acct_1DE": ""}])
def test_a_connect_account_needs_its_id_and_an_entity(accounts: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="connected_accounts"):
        parse_config(config(connected_accounts=accounts), Path("."))
