"""Orders of the reference workflow for the Stripe subscription platform's tests.

The customer takes 500 seats a year at 120.00 USD (quote q-1, CPQ version 1); on 15 May it
upgrades to 800 seats and adds premium analytics at 24,000.00 a year (quote q-2, version 2).
Billing's price ids are the embedded catalogue's; the Stripe account sells them as
`price_seat_annual` and `price_analytics_annual` (`SETTINGS`).
"""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal

from finsync.connectors.stripe.order_params import OrderSettings
from finsync.domain.catalog import BillingFrequency
from finsync.domain.commercial import CommercialKind, OrderLine, ProrationTerms, SubscriptionOrder
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount, PostalAddress

START = date(2026, 1, 1)
END = date(2027, 1, 1)
UPGRADE = date(2026, 5, 15)
SEAT_PRICE, ANALYTICS_PRICE = "seat_annual", "analytics_annual"
SETTINGS = OrderSettings({SEAT_PRICE: "price_seat_annual",
                          ANALYTICS_PRICE: "price_analytics_annual"})


def usd(amount: str) -> Money:
    return Money(Decimal(amount), "USD")


def seats(quantity: int, start: date = START) -> OrderLine:
    return OrderLine("ql-seats", "platform_seat", SEAT_PRICE, quantity, usd("120.00"), start,
                     END)


def analytics(start: date = UPGRADE) -> OrderLine:
    return OrderLine("ql-analytics", "premium_analytics", ANALYTICS_PRICE, 1,
                     usd("24000.00"), start, END)


def new_order(quantity: int = 500, *, start: date = START, order_id: str = "q-1",
              contract: str = "ctr-1", customer: str = "acct-acme") -> SubscriptionOrder:
    return SubscriptionOrder(order_id, CommercialKind.NEW, contract, 1, customer, "le_us",
                             "USD", start, END, start, BillingFrequency.ANNUAL,
                             (seats(quantity, start),), ProrationTerms.INVOICE_NOW, True, 1)


def upgrade(terms: ProrationTerms = ProrationTerms.INVOICE_NOW, *, effective: date = UPGRADE,
            base: SubscriptionOrder | None = None) -> SubscriptionOrder:
    first = base or new_order()
    return dataclasses.replace(first, id="q-2", kind=CommercialKind.AMENDMENT, cpq_version=2,
                               effective_date=effective,
                               lines=(seats(800, first.start_date), analytics(effective)),
                               proration=terms)


def customer(name: str = "Acme Analytics Customer Ltd", version: int = 1,
             country: str = "US") -> CustomerAccount:
    return CustomerAccount("acct-acme", name, "le_us", "USD", country, version,
                           billing_region="NY" if country == "US" else None,
                           tax_id="DE123456789" if country == "DE" else None,
                           address=PostalAddress(("1 Main Street", "Floor 4"), "New York",
                                                 "10001"))
