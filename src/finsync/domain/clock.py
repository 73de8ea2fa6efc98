"""Time rules: timestamps are UTC-aware; business dates are `date`; periods are half-open."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from finsync.domain.errors import DomainError


def utc_now() -> datetime:
    return datetime.now(UTC)


def parse_utc(text: str) -> datetime:
    """ISO 8601 with an offset (or `Z`), converted to UTC; a naive timestamp is refused."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise DomainError(f"not an ISO 8601 timestamp: {text!r}") from None
    if moment.tzinfo is None:
        raise DomainError(f"timestamp needs a UTC offset: {text!r}")
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00-05:00 is after the last UTC moment there is
        raise DomainError(f"timestamp out of range in UTC: {text!r}") from None


def require_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise DomainError("timestamps must be timezone-aware")
    return moment.astimezone(UTC)


def parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise DomainError(f"not an ISO date: {text!r}") from None


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open span of days `[start, end)`."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise DomainError(f"period end {self.end} must be after start {self.start}")

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def __contains__(self, day: date) -> bool:
        return self.start <= day < self.end

    def overlap(self, other: Period) -> int:
        """Days the two periods share."""
        return max(0, (min(self.end, other.end) - max(self.start, other.start)).days)


def first_of_next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def month_period(name: str) -> Period:
    """`YYYY-MM` as the half-open period of that month."""
    try:
        year, month = (int(part) for part in name.split("-"))
        start = date(year, month, 1)
        end = first_of_next_month(start)  # 9999-12 has no end a date can hold
    except ValueError:
        raise DomainError(f"a period is named YYYY-MM (up to 9999-11), not {name!r}") from None
    return Period(start, end)
