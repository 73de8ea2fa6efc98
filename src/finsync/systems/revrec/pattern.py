"""Recognition patterns and granularity.

Rules:
- `RATABLE`: evenly over the service period, weighted by the quantity in effect (a ramp from
  500 to 800 seats earns more per day after the step), at the contract's granularity.
- `POINT_IN_TIME`: all at once when control transfers, on the line's start date.
- `PER_UNIT`: units delivered to date / units promised (the line quantity).
- `USAGE`: as incurred; each usage record is variable consideration allocated wholly to its
  obligation (606-10-32-40) and recognised on the day it occurred.
- `PROGRESS`: allocated price x the latest percent complete reported (supplied per date).
- A fact dated D (transfer, delivery, progress report, usage, event) lands in the period that
  contains D.
- A per-unit or progress obligation not complete by its last service day is forecast
  complete on that day, so a schedule always sums to the allocated price.
- Granularity (ratable obligations and period components): `DAY` (default: every day weighs
  the same), `MONTH` (every calendar month weighs the same; a part month weighs its share of
  days), `SECOND` (every second weighs the same), `INVOICED` (a ratable obligation follows
  billing's invoice lines, each rounded as billing rounds it, ASC 606-10-55-18; period
  components are spread by day).
"""

from __future__ import annotations

from enum import StrEnum


class RecognitionPattern(StrEnum):
    RATABLE = "ratable"
    POINT_IN_TIME = "point_in_time"
    PER_UNIT = "per_unit"
    USAGE = "usage"
    PROGRESS = "progress"

    @property
    def priced_per_period(self) -> bool:
        """Ratable lines are priced per unit per billing period; the others once."""
        return self is RecognitionPattern.RATABLE

    @property
    def variable(self) -> bool:
        """Usage is wholly variable consideration: outside the relative-SSP pool."""
        return self is RecognitionPattern.USAGE


class Granularity(StrEnum):
    DAY = "day"
    MONTH = "month"
    SECOND = "second"
    INVOICED = "invoiced"  # ratable obligations as billing invoices them (`invoiced`)
