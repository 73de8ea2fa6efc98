"""Builders for billing tests, in the business's own words: a catalogue, a customer, a
contract, and a state to run commands on."""

from __future__ import annotations

from datetime import date

from finsync.domain.catalog import BillingFrequency, Price, PriceModel, Product
from finsync.domain.contract import ContractLine, RampStep, SubscriptionContract
from finsync.domain.events import AnyEvent, InvoiceIssued
from finsync.domain.invoice import Invoice
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount
from finsync.systems.billing.catalog import Catalog
from finsync.systems.billing.event import Emitted
from finsync.systems.billing.outcome import Outcome
from finsync.systems.billing.pricing import PricePlan, Tier
from finsync.systems.billing.state import BillingConfig, BillingState, DowngradePolicy
from finsync.systems.billing.subscription import (
    CreateSubscription,
    create_subscription,
    register_customer,
)
from tests.taxkit import UNIT_RATES, RateQuoter

ANNUAL, QUARTERLY, MONTHLY = (BillingFrequency.ANNUAL, BillingFrequency.QUARTERLY,
                              BillingFrequency.MONTHLY)
START, END = date(2025, 1, 1), date(2026, 1, 1)


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def _price(price_id: str, product_id: str, model: PriceModel, amount: Money,
           frequency: BillingFrequency = ANNUAL, included: int = 0) -> Price:
    return Price(price_id, product_id, model, amount, frequency, included)


def catalog() -> Catalog:
    products = (Product("prod_seat", "Seat"), Product("prod_analytics", "Premium analytics"),
                Product("prod_api", "API calls"), Product("prod_prepaid", "Prepaid credits"),
                Product("prod_platform", "Platform fee"), Product("prod_storage", "Storage"))
    tiers = (Tier(100, usd("10.00")), Tier(None, usd("8.00"), usd("50.00")))
    plans = (
        PricePlan(_price("price_seat", "prod_seat", PriceModel.PER_UNIT, usd("120.00"))),
        PricePlan(_price("price_seat_eur", "prod_seat", PriceModel.PER_UNIT,
                         Money.of("110.00", "EUR"))),
        PricePlan(_price("price_analytics", "prod_analytics", PriceModel.PER_UNIT,
                         usd("30.00"))),
        PricePlan(_price("price_platform", "prod_platform", PriceModel.FLAT, usd("1200.00"))),
        PricePlan(_price("price_api", "prod_api", PriceModel.USAGE, usd("0.002"), MONTHLY,
                         included=10_000)),
        PricePlan(_price("price_api_prepaid", "prod_api", PriceModel.USAGE, usd("0.01"),
                         MONTHLY)),
        PricePlan(_price("price_prepaid", "prod_prepaid", PriceModel.FLAT, usd("0.00"))),
        PricePlan(_price("price_storage_tiered", "prod_storage", PriceModel.TIERED,
                         usd("0"), MONTHLY), tiers),
        PricePlan(_price("price_storage_volume", "prod_storage", PriceModel.VOLUME,
                         usd("0"), MONTHLY), tiers),
    )
    return Catalog(products, plans)


TAX = RateQuoter(dict(UNIT_RATES))
CUSTOMER = CustomerAccount("cus_1", "Acme Corp", "le_us", "USD", "US")


def empty_state(policy: DowngradePolicy = DowngradePolicy.CREDIT_NOW) -> BillingState:
    state = BillingState(BillingConfig(catalog(), TAX, downgrade_policy=policy))
    return register_customer(state, CUSTOMER).state


def seat_line(seats: int = 500, unit: str = "120.00", start: date = START, end: date = END,
              ramp: tuple[RampStep, ...] = (), line_id: str = "ln_seats") -> ContractLine:
    return ContractLine(line_id, "prod_seat", "price_seat", seats, usd(unit), start, end, ramp)


def usage_line(price_id: str = "price_api", unit: str = "0.002") -> ContractLine:
    return ContractLine("ln_api", "prod_api", price_id, 0, usd(unit), START, END)


def contract(*lines: ContractLine, frequency: BillingFrequency = ANNUAL,
             contract_id: str = "sub_1") -> SubscriptionContract:
    return SubscriptionContract(contract_id, "cus_1", "le_us", "USD", START, END, frequency,
                                lines or (seat_line(),))


def subscribed(*lines: ContractLine, frequency: BillingFrequency = ANNUAL,
               policy: DowngradePolicy = DowngradePolicy.CREDIT_NOW,
               arrears: BillingFrequency | None = None, auto_renew: bool = True) -> Outcome:
    command = CreateSubscription(contract(*lines, frequency=frequency),
                                 correlation_id="order_1", auto_renew=auto_renew,
                                 arrears_frequency=arrears)
    return create_subscription(empty_state(policy), command)


def invoices(emitted: tuple[Emitted, ...]) -> list[Invoice]:
    return [e.event.invoice for e in emitted if isinstance(e.event, InvoiceIssued)]


def types(emitted: tuple[Emitted, ...]) -> list[type[AnyEvent]]:
    return [type(e.event) for e in emitted]
