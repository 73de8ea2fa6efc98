"""Reconciliation results as values: a check is a list of items, each with what one system
says, what the other says, the variance and, for a break, its cause.

Rules:
- Each document counts once in its check. A line that sums documents other items already
  compare (a customer's balance) reports both balances as context and counts as variance
  only the part its documents' items do not (`counted_elsewhere`).
- A break is explained when `explained_by` names something other than the break itself (an
  exception of another class, or a period not closed yet); the rest are unexplained.
- A check compares every item but keeps only some (`Collector`): every break, every item an
  open break watches (so the queue can resolve it), and the first `AGREEING_KEPT_MAX`
  agreeing items in key order. A small company's report lists everything; a company of a
  million invoices keeps its breaks and its counts, never a million items.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from finsync.domain.money import Money, total


@dataclass(frozen=True, slots=True)
class Item:
    ref: str  # what is compared: "invoice:inv_1", "customer:cus_1", "period:2026-03" …
    expected: Money  # the system of record's figure (billing, or the revenue engine)
    actual: Money  # the other system's figure
    customer_id: str | None = None
    cause: str | None = None  # None when they agree
    explained_by: str | None = None  # an open exception or a state that explains the break
    counted_elsewhere: Money | None = None  # the part of the difference other items count

    @property
    def difference(self) -> Money:
        return self.actual - self.expected

    @property
    def variance(self) -> Money:
        """What this item adds to its check: the difference less what other items count."""
        if self.counted_elsewhere is None:
            return self.difference
        return self.difference - self.counted_elsewhere

    @property
    def is_break(self) -> bool:
        return not self.variance.is_zero

    def as_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "customer_id": self.customer_id,
                "expected": str(self.expected.amount), "actual": str(self.actual.amount),
                "currency": self.expected.currency, "variance": str(self.variance.amount),
                "counted_elsewhere": None if self.counted_elsewhere is None
                else str(self.counted_elsewhere.amount),
                "cause": self.cause, "explained_by": self.explained_by}


AGREEING_KEPT_MAX = 1_000


class Collector:
    """The items one check keeps (see the rules above) and how many it compared."""

    def __init__(self, watched: Collection[str] = (),
                 agreeing_max: int = AGREEING_KEPT_MAX) -> None:
        self.items: list[Item] = []
        self.compared = 0
        self._watched, self._agreeing_left = watched, agreeing_max

    def wants(self, ref: str, breaks: bool) -> bool:
        """Count one compared item; True if it is to be built and kept."""
        self.compared += 1
        if breaks or ref in self._watched:
            return True
        if self._agreeing_left > 0:
            self._agreeing_left -= 1
            return True
        return False

    def keep(self, item: Item) -> None:
        self.items.append(item)


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    legal_entity: str
    currency: str
    items: tuple[Item, ...]  # what the check kept (see `Collector`)
    notes: tuple[str, ...] = ()
    compared: int | None = None  # items compared; None: all are in `items`

    @property
    def item_count(self) -> int:
        return len(self.items) if self.compared is None else self.compared

    @property
    def breaks(self) -> tuple[Item, ...]:
        return tuple(i for i in self.items if i.is_break)

    @property
    def unexplained(self) -> tuple[Item, ...]:
        return tuple(i for i in self.breaks if i.explained_by is None)

    @property
    def variance(self) -> Money:
        """The sum of absolute item variances: breaks in opposite directions never net.
        Every item is in the check's currency (a sum in Money refuses another one)."""
        return total([abs(i.variance) for i in self.breaks], self.currency).quantize()

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "legal_entity": self.legal_entity,
                "variance": str(self.variance.amount), "currency": self.currency,
                "items": self.item_count, "breaks": [i.as_dict() for i in self.breaks],
                "unexplained": len(self.unexplained), "notes": list(self.notes)}


@dataclass(frozen=True, slots=True)
class Report:
    as_of: date
    checks: tuple[CheckResult, ...] = field(default=())

    @property
    def unexplained(self) -> tuple[tuple[CheckResult, Item], ...]:
        """Every break nothing explains but its own reconciliation_break."""
        return tuple((check, item) for check in self.checks for item in check.unexplained)

    def total_variance(self) -> dict[str, Money]:
        totals: dict[str, Money] = {}
        for check in self.checks:
            totals[check.currency] = totals.get(check.currency,
                                                Money.zero(check.currency)) + check.variance
        return totals
