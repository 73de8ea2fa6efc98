"""Accounting periods: one per entity and month, `[first day, first day of next month)`.

Rules:
- open → soft-closed → closed; a soft-closed period takes only approved postings;
  a closed one takes none (the error is `closed_period`).
- Reopening a closed or soft-closed period is an audited action: who, when and why.
- A posting date outside every defined period is refused (`period_not_found`).
"""

from __future__ import annotations

from datetime import date

from finsync.domain.clock import month_period
from finsync.domain.errors import DomainError
from finsync.domain.journal import AccountingPeriod, PeriodStatus
from finsync.systems.ledger.errors import ClosedPeriodError, LedgerError


def period_name(on: date) -> str:
    return f"{on.year:04d}-{on.month:02d}"


def month_bounds(name: str) -> tuple[date, date]:
    try:
        period = month_period(name)
    except DomainError as exc:
        raise LedgerError(str(exc)) from None
    return period.start, period.end


def year_of_periods(legal_entity: str, year: int) -> tuple[AccountingPeriod, ...]:
    return tuple(AccountingPeriod(legal_entity, f"{year:04d}-{m:02d}",
                                  *month_bounds(f"{year:04d}-{m:02d}"))
                 for m in range(1, 13))


def check_posting(period: AccountingPeriod, approved: bool) -> None:
    if period.status is PeriodStatus.CLOSED:
        raise ClosedPeriodError(f"period {period.name} of {period.legal_entity} is closed")
    if period.status is PeriodStatus.SOFT_CLOSED and not approved:
        raise ClosedPeriodError(f"period {period.name} of {period.legal_entity} is soft-closed: "
                                "only approved postings are accepted")


ALLOWED = {
    (PeriodStatus.OPEN, PeriodStatus.SOFT_CLOSED),
    (PeriodStatus.OPEN, PeriodStatus.CLOSED),
    (PeriodStatus.SOFT_CLOSED, PeriodStatus.CLOSED),
    (PeriodStatus.SOFT_CLOSED, PeriodStatus.OPEN),
    (PeriodStatus.CLOSED, PeriodStatus.OPEN),
}


def check_transition(period: AccountingPeriod, to: PeriodStatus, actor: str,
                     reason: str | None) -> None:
    if (period.status, to) not in ALLOWED:
        raise LedgerError(f"period {period.name} is {period.status}; it cannot become {to}")
    if not actor:
        raise LedgerError("a period change needs the person who makes it")
    if to is PeriodStatus.OPEN and not reason:
        raise LedgerError(f"reopening {period.name} needs a reason (it is audited)")
