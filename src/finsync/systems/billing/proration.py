"""Proration: the share of a billing cycle a change covers.

Rules (see docs/billing/rules.md):
- By day (default): days remaining in the cycle / days in the cycle, counted on half-open
  periods `[start, end)`. 230 days left of a 365-day cycle is 230/365.
- By second (option, as Stripe): seconds from the change's UTC instant to the end of the
  span / seconds in the cycle. Given plain dates it equals the by-day share.
- A share is an exact integer ratio; the charge is `amount * numerator / denominator`,
  multiplied before it is divided, and rounded once per document line (half-even, to the
  currency's minor unit) by the caller, never here.
- The denominator is always the full cycle, also for a stub clipped to the term end.
- Per contract (`SubscriptionContract.proration`, laid on the subscription's anchor): the
  month conventions `monthly_even` and `partial_months` price a piece by anchored months
  (`finsync.domain.proration`); `by_second` asks for the by-second share of an instant even
  where the platform prorates by day; `by_day` (the default) keeps the platform's unit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import StrEnum

from finsync.domain.clock import Period
from finsync.domain.contract import SubscriptionContract
from finsync.domain.errors import DomainError
from finsync.domain.proration import ProrationConvention, cycle_share
from finsync.systems.billing.errors import InvalidCommandError

_DAY_S = 86_400


class ProrationUnit(StrEnum):
    DAY = "day"
    SECOND = "second"


@dataclass(frozen=True, slots=True)
class Share:
    numerator: int
    denominator: int

    def __post_init__(self) -> None:
        if self.denominator <= 0 or not 0 <= self.numerator <= self.denominator:
            raise InvalidCommandError(f"a share must lie in [0, 1]: {self}")

    @property
    def whole(self) -> bool:
        return self.numerator == self.denominator

    def of(self, amount: Decimal) -> Decimal:
        return amount * self.numerator / self.denominator


@dataclass(frozen=True, slots=True)
class ProrationRule:
    unit: ProrationUnit = ProrationUnit.DAY
    convention: ProrationConvention = ProrationConvention.BY_DAY
    anchor: date | None = None  # the cycle calendar's anchor (month conventions)

    def of(self, contract: SubscriptionContract, anchor: date) -> ProrationRule:
        """The rule for a contract billed on cycles laid from `anchor`."""
        by_second = contract.proration is ProrationConvention.BY_SECOND
        unit = ProrationUnit.SECOND if by_second else self.unit
        return replace(self, unit=unit, convention=contract.proration, anchor=anchor)

    def share(self, cycle: Period, span: Period, starts_at: datetime | None = None) -> Share:
        """The part of `cycle` that `span` covers; `starts_at` refines the start by second."""
        if span.start < cycle.start or span.end > cycle.end:
            raise InvalidCommandError(f"span {span} lies outside its cycle {cycle}")
        if self.convention.by_month:
            return self._by_month(cycle, span)
        if self.unit is ProrationUnit.DAY or starts_at is None:
            return Share(span.days, cycle.days)
        return Share(_seconds(starts_at, span), cycle.days * _DAY_S)

    def _by_month(self, cycle: Period, span: Period) -> Share:
        try:
            part = cycle_share(self.convention, self.anchor or cycle.start, cycle, span)
        except DomainError as exc:
            raise InvalidCommandError(str(exc)) from exc
        return Share(part.numerator, part.denominator)


def _seconds(starts_at: datetime, span: Period) -> int:
    if starts_at.tzinfo is None:
        raise InvalidCommandError("a by-second proration needs a timezone-aware instant")
    moment = starts_at.astimezone(UTC)
    if moment.date() != span.start:
        raise InvalidCommandError(f"instant {moment} is not on the span's first day {span.start}")
    end = datetime.combine(span.end, time(), tzinfo=UTC)
    delta = end - moment  # whole seconds only: sub-second parts are dropped, never floated
    return delta.days * _DAY_S + delta.seconds
