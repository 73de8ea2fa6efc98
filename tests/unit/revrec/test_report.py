"""The what-if report's figures: revenue per reporting period, closing balances, and where
each obligation's allocation came from."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

from finsync.domain.clock import Period
from finsync.systems.revrec import Granularity, RevenueContractState, book_contract
from finsync.systems.revrec.casefile import load_case
from finsync.systems.revrec.report import (
    ReportingPeriod,
    contract_report,
    period_label,
    reporting_span,
    revenue_by_period,
)
from tests.unit.revrec.builders import booked, line

SLA = Path(__file__).resolve().parent / "cases" / "credit_memo_sla.json"


def _monthly_seats() -> RevenueContractState:
    return book_contract(booked(line("ln_seats", 1, "1200.00"), granularity=Granularity.MONTH))


def test_period_label_names_the_month_quarter_or_year() -> None:
    august = Period(date(2026, 8, 1), date(2026, 9, 1))
    assert period_label(august, ReportingPeriod.MONTH) == "2026-08"
    assert period_label(august, ReportingPeriod.QUARTER) == "2026-Q3"
    assert period_label(august, ReportingPeriod.YEAR) == "2026"


def test_revenue_by_quarter_sums_the_months_of_each_quarter() -> None:
    # 1,200.00 over twelve whole months by month: 100.00 a month, 300.00 a quarter.
    revenue = revenue_by_period(_monthly_seats(), ReportingPeriod.QUARTER)
    assert [(p.label, p.end) for p in revenue.periods] == [
        ("2026-Q1", date(2026, 4, 1)), ("2026-Q2", date(2026, 7, 1)),
        ("2026-Q3", date(2026, 10, 1)), ("2026-Q4", date(2027, 1, 1))]
    (row,) = revenue.rows
    assert row.amounts == (Decimal("300.00"),) * 4
    assert row.total == Decimal("1200.00")


def test_reporting_span_is_what_the_schedules_cover() -> None:
    assert reporting_span(_monthly_seats()) == (date(2026, 1, 1), date(2027, 1, 1))


def test_balances_close_each_reporting_period() -> None:
    report = contract_report(_monthly_seats(), ReportingPeriod.YEAR)
    (closing,) = report.balances
    assert closing.as_of == date(2027, 1, 1)
    assert closing.recognised == report.transaction_price


def test_obligation_added_by_a_modification_says_how_it_was_priced() -> None:
    case = load_case(SLA.read_text(encoding="utf-8"))
    report = contract_report(case.state(), ReportingPeriod.MONTH)
    rows = {r.obligation_id: (r.inception_method, r.inception_paragraph)
            for r in report.allocation}
    assert rows["ln_seats"] == ("relative_ssp", "606-10-32-31")
    # Added by the amendment, treated as a separate contract: no inception share.
    assert rows["ln_analytics"] == ("amd_evt_amd: added", "606-10-25-12")
    assert all(r.schedule_reference.startswith("sch_") for r in report.allocation)
    assert sum((r.total for r in report.revenue.rows), Decimal(0)) == \
        report.transaction_price.amount
