"""Reconciliation results as values: a check is a list of items, each with what one system
says, what the other says, the variance and, for a break, its cause."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from finsync.domain.money import Money


@dataclass(frozen=True, slots=True)
class Item:
    ref: str  # what is compared: "invoice:inv_1", "customer:cus_1", "period:2026-03" …
    expected: Money  # the system of record's figure (billing, or the revenue engine)
    actual: Money  # the other system's figure
    customer_id: str | None = None
    cause: str | None = None  # None when they agree
    explained_by: str | None = None  # an open exception or a state that explains the break

    @property
    def variance(self) -> Money:
        return self.actual - self.expected

    @property
    def is_break(self) -> bool:
        return not self.variance.is_zero

    def as_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "customer_id": self.customer_id,
                "expected": str(self.expected.amount), "actual": str(self.actual.amount),
                "currency": self.expected.currency, "variance": str(self.variance.amount),
                "cause": self.cause, "explained_by": self.explained_by}


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    legal_entity: str
    currency: str
    items: tuple[Item, ...]
    notes: tuple[str, ...] = ()

    @property
    def breaks(self) -> tuple[Item, ...]:
        return tuple(i for i in self.items if i.is_break)

    @property
    def variance(self) -> Money:
        """The sum of absolute item variances: breaks in opposite directions never net."""
        total = sum((abs(i.variance.amount) for i in self.breaks), Decimal(0))
        return Money(total, self.currency).quantize()

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "legal_entity": self.legal_entity,
                "variance": str(self.variance.amount), "currency": self.currency,
                "items": len(self.items), "breaks": [i.as_dict() for i in self.breaks],
                "notes": list(self.notes)}


@dataclass(frozen=True, slots=True)
class Report:
    as_of: date
    checks: tuple[CheckResult, ...] = field(default=())

    def total_variance(self) -> dict[str, Money]:
        totals: dict[str, Money] = {}
        for check in self.checks:
            totals[check.currency] = totals.get(check.currency,
                                                Money.zero(check.currency)) + check.variance
        return totals
