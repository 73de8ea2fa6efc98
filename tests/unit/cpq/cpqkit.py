"""Builders for the CPQ source tests: the reference customer's contract, as CPQ approves it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from finsync.domain.catalog import BillingFrequency
from finsync.domain.commercial import (
    CommercialContract,
    CommercialKind,
    CommercialLine,
    CommercialRampStep,
)
from finsync.domain.money import Money
from finsync.domain.party import CustomerAccount, PostalAddress
from finsync.domain.refs import ExternalRefs

APPROVED_AT = datetime(2026, 5, 15, 10, 30, tzinfo=UTC)


def usd(amount: str) -> Money:
    return Money(Decimal(amount), "USD")


def seats(quantity: int, *, start: date = date(2026, 1, 1)) -> CommercialLine:
    # 10.00 list, 10 % off: 9.00 net per seat and month
    return CommercialLine("ql-seats", "SEAT", quantity, usd("10.00"), Decimal("10"),
                          usd("9.00"), start, date(2027, 1, 1))


def contract(version: int = 1, *lines: CommercialLine) -> CommercialContract:
    kind = CommercialKind.NEW if version == 1 else CommercialKind.AMENDMENT
    effective = date(2026, 1, 1) if version == 1 else date(2026, 5, 15)
    return CommercialContract(
        "ct-acme", version, kind, f"q-acme-{version}", "acc-acme", "acc-acme", "le_us", "USD",
        date(2026, 1, 1), date(2027, 1, 1), effective, BillingFrequency.MONTHLY,
        lines or (seats(500),), refs=ExternalRefs.of({"crm": "CT-1"}))


def upgrade() -> CommercialContract:
    """Version 2: 500 -> 800 seats and premium analytics, from 15 May."""
    analytics = CommercialLine("ql-analytics", "ANALYTICS-PREMIUM", 1, usd("2500.00"),
                               Decimal("20"), usd("2000.00"), date(2026, 5, 15),
                               date(2027, 1, 1),
                               (CommercialRampStep(date(2026, 9, 1), 2, usd("1900.00")),))
    return contract(2, seats(800), analytics)


def customer(version: int = 1, name: str = "Acme Corp") -> CustomerAccount:
    return CustomerAccount("acc-acme", name, "le_us", "USD", "US", version,
                           ExternalRefs.of({"crm": "ACME-1"}), "NY", "US12-3456789",
                           PostalAddress(("1 Main St", "Floor 2"), "New York", "10001"))
