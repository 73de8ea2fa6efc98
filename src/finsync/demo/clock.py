"""Simulated business time: one clock drives billing, the hub and the ERP in a scenario.

Rules:
- Time only moves forward: `to` a moment already passed changes nothing.
- `to(day, hour)` moves to that day's hour in UTC, `at(moment)` to a moment; `tick` adds
  seconds (retry back-off).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta


class SimClock:
    """Business time for a whole scenario; call it for the current moment."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def to(self, day: date, hour: int = 9) -> None:
        self.now = max(self.now, datetime(day.year, day.month, day.day, hour, tzinfo=UTC))

    def at(self, moment: datetime) -> None:
        self.now = max(self.now, moment.astimezone(UTC))

    def tick(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
