"""The reference customer and contract (DESIGN §4) on the shipped default catalogue, and a
billing service on a test database."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, MetaData, select

from finsync.connectors.embedded.billing import billing_service
from finsync.domain.catalog import BillingFrequency
from finsync.domain.contract import ContractLine, SubscriptionContract
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount
from finsync.systems.billing import tables
from finsync.systems.billing.amendment import AmendSubscription
from finsync.systems.billing.catalog_file import load_billing_config
from finsync.systems.billing.edit import AddProduct, AddSeats
from finsync.systems.billing.handler import RegisterCustomer
from finsync.systems.billing.migrate import upgrade
from finsync.systems.billing.service import BillingService
from finsync.systems.billing.subscription import CreateSubscription
from tests.taxkit import RateQuoter

CONFIG = load_billing_config(tax=RateQuoter())
START, END, MAY_16 = date(2026, 1, 1), date(2027, 1, 1), date(2026, 5, 16)
ACME = CustomerAccount("cus_acme", "Acme Analytics Inc.", "le_us", "USD", "US")


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime(2026, 5, 16, 13, 22, tzinfo=UTC))

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def service(engine: Engine, clock: Clock | None = None) -> BillingService:
    upgrade(engine)
    return billing_service(engine, CONFIG, clock or Clock())


def seats(quantity: int = 500) -> ContractLine:
    return ContractLine("ln_seats", "prod_platform_seat", "price_seat_annual", quantity,
                        usd("120.00"), START, END)


def overage() -> ContractLine:
    return ContractLine("ln_overage", "prod_usage_overage", "price_usage_overage", 0,
                        usd("0.002"), START, END)


def create(*lines: ContractLine) -> CreateSubscription:
    contract = SubscriptionContract("con_acme_2026", "cus_acme", "le_us", "USD", START, END,
                                    BillingFrequency.ANNUAL, lines or (seats(),))
    return CreateSubscription(contract, "quote_acme_0001", arrears_frequency=
                              BillingFrequency.MONTHLY)


REGISTER = RegisterCustomer(ACME)
UPGRADE = AmendSubscription("amd_acme_0002", "con_acme_2026", MAY_16,
                            (AddSeats("ln_seats", 300),
                             AddProduct("ln_analytics", "price_analytics_annual", 1)),
                            reason="upgrade")


def snapshot(engine: Engine) -> dict[str, list[str]]:
    """Every row of every billing table, comparable."""
    found = MetaData()
    found.reflect(engine, only=lambda name, _: name.startswith("billing_"))
    with engine.connect() as conn:
        return {name: sorted(json.dumps(dict(row), default=str, sort_keys=True)
                             for row in conn.execute(select(table)).mappings())
                for name, table in found.tables.items()}


def envelopes(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [json.loads(text) for text in conn.execute(
            select(tables.outbox.c.envelope).order_by(tables.outbox.c.seq)).scalars()]
