"""Revenue schedules (ASC 606 / IFRS 15): what a performance obligation recognises when.

Rules:
- A schedule's lines sum exactly to the obligation's allocated price (cumulative rounding
  is the revenue engine's job; this model only refuses a schedule that does not sum).
- Schedule references are stable and versioned: `schedule_id` + `version`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from finsync.domain.errors import DomainError
from finsync.domain.money import Money, total


@dataclass(frozen=True, slots=True)
class ScheduleLine:
    period_start: date
    period_end: date
    amount: Money


@dataclass(frozen=True, slots=True)
class RevenueSchedule:
    schedule_id: str
    version: int
    obligation_id: str
    allocated_price: Money
    lines: tuple[ScheduleLine, ...]

    def __post_init__(self) -> None:
        summed = total([line.amount for line in self.lines], self.allocated_price.currency)
        if summed != self.allocated_price:
            raise DomainError(
                f"schedule {self.schedule_id} v{self.version} sums to {summed}, "
                f"not its allocated price {self.allocated_price}"
            )

    @property
    def reference(self) -> str:
        return f"{self.schedule_id}@v{self.version}"
