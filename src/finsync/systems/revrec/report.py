"""The what-if report of one revenue contract: the figures `finsync revrec run` shows.

Rules:
- The reporting span runs from the first to the last day any schedule line covers; with
  nothing scheduled, it is the contract's term.
- Revenue per obligation per reporting period (month, quarter or year) is the sum of the
  waterfall's months that fall in it; a row's total is the sum of its periods. Nothing is
  rounded here: the months are the engine's, already at the currency's precision.
- A reporting period ends on the last day of its last month in the span; balances are taken
  at each period's end (00:00 of that day, see `balance`).
- An obligation's inception method and paragraph are those of the inception allocation; an
  obligation added later has none, so its first revision says how it was priced and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum

from finsync.domain.clock import Period
from finsync.domain.money import Money
from finsync.systems.revrec.balance import ContractBalances, balances
from finsync.systems.revrec.modification import ModificationDecision
from finsync.systems.revrec.pattern import Granularity, RecognitionPattern
from finsync.systems.revrec.schedule import schedules, waterfall
from finsync.systems.revrec.state import RevenueContractState


class ReportingPeriod(StrEnum):
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


@dataclass(frozen=True, slots=True)
class AllocationRow:
    obligation_id: str
    product_id: str
    pattern: RecognitionPattern
    standalone_selling_price: Money
    stated_price: Money
    inception_method: str
    inception_paragraph: str
    allocated_price: Money
    schedule_reference: str


@dataclass(frozen=True, slots=True)
class PeriodEnd:
    label: str  # 2026-08, 2026-Q3 or 2026
    end: date


@dataclass(frozen=True, slots=True)
class RevenueRow:
    obligation_id: str
    amounts: tuple[Decimal, ...]  # one per period of `RevenueByPeriod.periods`
    total: Decimal


@dataclass(frozen=True, slots=True)
class RevenueByPeriod:
    periods: tuple[PeriodEnd, ...]
    rows: tuple[RevenueRow, ...]


@dataclass(frozen=True, slots=True)
class ContractReport:
    contract_id: str
    revenue_contract_id: str
    currency: str
    legal_entity: str
    granularity: Granularity
    reporting_period: ReportingPeriod
    transaction_price: Money
    allocation: tuple[AllocationRow, ...]
    modifications: tuple[ModificationDecision, ...]
    revenue: RevenueByPeriod
    balances: tuple[ContractBalances, ...]


def period_label(month: Period, size: ReportingPeriod) -> str:
    """The reporting period a calendar month falls in."""
    start = month.start
    if size is ReportingPeriod.MONTH:
        return f"{start:%Y-%m}"
    if size is ReportingPeriod.QUARTER:
        return f"{start.year}-Q{(start.month - 1) // 3 + 1}"
    return str(start.year)


def reporting_span(state: RevenueContractState) -> tuple[date, date]:
    lines = [li.period for s in schedules(state) for li in s.lines]
    if not lines:
        return state.contract.start_date, state.contract.end_date
    return min(p.start for p in lines), max(p.end for p in lines)


def revenue_by_period(state: RevenueContractState, size: ReportingPeriod) -> RevenueByPeriod:
    start, end = reporting_span(state)
    fall = waterfall(state, start, end)
    labels: list[str] = []
    ends: dict[str, date] = {}
    for month in fall.months:
        label = period_label(month, size)
        if label not in ends:
            labels.append(label)
        ends[label] = month.end
    rows = []
    for row in fall.rows:
        sums = dict.fromkeys(labels, Decimal(0))
        for month, amount in zip(fall.months, row.amounts, strict=True):
            sums[period_label(month, size)] += amount.amount
        amounts = tuple(sums[label] for label in labels)
        rows.append(RevenueRow(row.obligation_id, amounts, sum(amounts, Decimal(0))))
    periods = tuple(PeriodEnd(label, ends[label]) for label in labels)
    return RevenueByPeriod(periods, tuple(rows))


def allocation(state: RevenueContractState) -> tuple[AllocationRow, ...]:
    inception = {s.obligation_id: s for s in state.inception_allocation}
    references = {s.obligation_id: s.reference for s in schedules(state)}
    rows = []
    for ob in state.obligations:
        share = inception.get(ob.obligation_id)
        method = share.method.value if share else ob.revisions[0].detail
        paragraph = share.paragraph if share else ob.revisions[0].cause
        rows.append(AllocationRow(ob.obligation_id, ob.product_id, ob.pattern,
                                  ob.standalone_selling_price, ob.stated_price, method,
                                  paragraph, ob.allocated_price,
                                  references[ob.obligation_id]))
    return tuple(rows)


def contract_report(state: RevenueContractState, size: ReportingPeriod) -> ContractReport:
    revenue = revenue_by_period(state, size)
    closing = tuple(balances(state, period.end) for period in revenue.periods)
    return ContractReport(state.contract.id, state.revenue_contract_id, state.currency,
                          state.legal_entity, state.granularity, size, state.transaction_price,
                          allocation(state), state.decisions, revenue, closing)
