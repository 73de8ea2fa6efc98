"""Billing commands of different customers run at the same time (threads, one connection
each): every one commits, numbers stay gapless and positions unique, on SQLite (one writer
at a time) and PostgreSQL (row locks per customer and subscription, positions from
sequences, numbers locked per legal entity)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date

from sqlalchemy import Engine, func, select

from finsync.domain.catalog import BillingFrequency
from finsync.domain.contract import SubscriptionContract
from finsync.domain.invoice import UsageRecord
from finsync.domain.party import CustomerAccount
from finsync.systems.billing import tables
from finsync.systems.billing.amendment import AmendSubscription
from finsync.systems.billing.edit import AddSeats
from finsync.systems.billing.handler import RecordUsage, RegisterCustomer
from finsync.systems.billing.service import BillingService
from finsync.systems.billing.subscription import CreateSubscription
from tests.unit.billing.servicekit import END, START, overage, seats, service

CUSTOMERS = 4


def _business(billing: BillingService, n: int) -> None:
    billing.execute(RegisterCustomer(CustomerAccount(f"cus_{n}", f"Customer {n}", "le_us",
                                                     "USD", "US")))
    contract = SubscriptionContract(f"con_{n}", f"cus_{n}", "le_us", "USD", START, END,
                                    BillingFrequency.MONTHLY, (seats(10), overage()))
    billing.execute(CreateSubscription(contract, f"ord_{n}"))
    for k in range(5):
        billing.execute(RecordUsage(UsageRecord(f"use_{n}_{k}", contract.id,
                                                "prod_usage_overage", 10, date(2026, 1, 9))))
    billing.execute(AmendSubscription(f"amd_{n}", contract.id, date(2026, 1, 16),
                                      (AddSeats("ln_seats", 1),)))


def test_customers_served_at_once_all_commit_with_gapless_numbers(engine: Engine) -> None:
    billing = service(engine)
    with ThreadPoolExecutor(CUSTOMERS) as pool:
        list(pool.map(lambda n: _business(billing, n), range(CUSTOMERS)))
    numbers = sorted(s.number for s in billing.invoices())
    assert numbers == [f"INV-le_us-{k:06d}" for k in range(1, 2 * CUSTOMERS + 1)]
    with engine.connect() as conn:
        for table in (tables.invoices, tables.usage_records, tables.subscriptions):
            positions = conn.execute(select(table.c.position)).scalars().all()
            assert len(set(positions)) == len(positions)
        assert conn.execute(select(func.count()).select_from(tables.usage_records)
                            ).scalar_one() == 5 * CUSTOMERS
