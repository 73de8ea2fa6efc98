from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from finsync.domain.clock import Period
from finsync.domain.invoice import UsageRecord
from finsync.domain.payment import Refund
from finsync.systems.revrec import (
    Granularity,
    PriceChangeKind,
    ProgressReported,
    RecognitionPattern,
    RefundRecorded,
    TransactionPriceChanged,
    UsageRecorded,
    apply_event,
    book_contract,
    obligation_schedule,
    period_journal,
    waterfall,
)
from finsync.systems.revrec.errors import (
    AccountMappingError,
    ContractMismatchError,
    MissingStandaloneSellingPriceError,
    RevenueError,
)
from finsync.systems.revrec.progress import recognised
from finsync.systems.revrec.schedule import schedule_id_for
from finsync.systems.revrec.timegrid import at_midnight
from tests.unit.revrec.builders import booked, line, modified, ssp, usd

ACCOUNTS = {"deferred_revenue": "2400", "revenue": "4000", "contract_asset": "1250",
            "unbilled_receivable": "1260"}


def test_booking_without_an_ssp_is_refused() -> None:
    with pytest.raises(MissingStandaloneSellingPriceError, match="prod_ln_x"):
        book_contract(booked(line("ln_x", 1, "10.00"), ssps=(ssp("prod_other", "1"),)))


def test_duplicate_event_returns_the_same_state() -> None:
    state = book_contract(booked(line("ln_a", 1, "1200.00")))
    event = TransactionPriceChanged("evt_vc", date(2026, 3, 1), usd("120.00"),
                                    PriceChangeKind.VARIABLE_CONSIDERATION)
    once = apply_event(state, event)
    assert apply_event(once, event) is once
    assert once.transaction_price == usd("1320.00")


def test_amendment_out_of_version_order_is_refused() -> None:
    state = book_contract(booked(line("ln_a", 1, "1200.00")))
    with pytest.raises(ContractMismatchError, match="version 3"):
        apply_event(state, modified("evt_m", date(2026, 2, 1), line("ln_a", 2, "1200.00"),
                                    version=3))


def test_usage_is_recognised_on_the_day_it_occurs() -> None:
    state = book_contract(booked(line("ln_api", 0, "0.02"),
                                 patterns={"prod_ln_api": RecognitionPattern.USAGE}))
    usage = UsageRecord("use_1", "con_t", "prod_ln_api", 1500, date(2026, 3, 31))
    state = apply_event(state, UsageRecorded("evt_use", usage))
    sched = obligation_schedule(state, "ln_api")
    assert [(li.period.start, li.amount) for li in sched.lines] == [(date(2026, 3, 1),
                                                                      usd("30.00"))]
    assert state.transaction_price == usd("30.00")


def test_usage_outside_the_line_is_refused() -> None:
    state = book_contract(booked(line("ln_api", 0, "0.02"),
                                 patterns={"prod_ln_api": RecognitionPattern.USAGE}))
    usage = UsageRecord("use_1", "con_t", "prod_ln_api", 1, date(2027, 3, 31))
    with pytest.raises(RevenueError, match="outside"):
        apply_event(state, UsageRecorded("evt_use", usage))


def test_progress_above_one_hundred_percent_is_refused() -> None:
    state = book_contract(booked(line("ln_p", 1, "100.00"),
                                 patterns={"prod_ln_p": RecognitionPattern.PROGRESS}))
    with pytest.raises(RevenueError, match=r"0\.\.100"):
        apply_event(state, ProgressReported("evt_p", "ln_p", date(2026, 2, 1), Decimal(101)))


def test_refund_of_a_credit_balance_changes_no_revenue() -> None:
    state = book_contract(booked(line("ln_a", 1, "1200.00")))
    refund = Refund("rfd_1", "pay_1", "cus_t", "le_us", usd("200.00"), date(2026, 8, 12),
                    "credit_balance")
    after = apply_event(state, RefundRecorded("evt_rfd", refund))
    assert after.obligations == state.obligations and after.billings == state.billings


def test_refund_as_a_concession_lowers_price_and_billings() -> None:
    state = book_contract(booked(line("ln_a", 1, "1200.00")))
    refund = Refund("rfd_1", "pay_1", "cus_t", "le_us", usd("200.00"), date(2026, 8, 12),
                    "goodwill")
    after = apply_event(state, RefundRecorded("evt_rfd", refund, "ln_a"))
    assert after.transaction_price == usd("1000.00")
    assert after.billings[-1].amount == usd("-200.00")


def test_by_second_granularity_counts_part_days() -> None:
    state = book_contract(booked(line("ln_a", 1, "36500.00"), granularity=Granularity.SECOND))
    noon = at_midnight(date(2026, 1, 2)).replace(hour=12)
    assert recognised(state.obligation("ln_a"), Granularity.SECOND, noon) == usd("150.00")
    assert recognised(state.obligation("ln_a"), Granularity.DAY, noon) == usd("100.00")


def test_schedule_reference_is_stable_and_versioned() -> None:
    state = book_contract(booked(line("ln_a", 1, "1200.00")))
    first = obligation_schedule(state, "ln_a")
    state = apply_event(state, TransactionPriceChanged(
        "evt_vc", date(2026, 7, 1), usd("120.00"), PriceChangeKind.VARIABLE_CONSIDERATION))
    second = obligation_schedule(state, "ln_a")
    assert first.schedule_id == second.schedule_id == schedule_id_for(
        state.revenue_contract_id, "ln_a")
    assert (first.reference, second.reference) == (f"{first.schedule_id}@v1",
                                                    f"{first.schedule_id}@v2")
    traced = {li.period.start.month: li.event_id for li in second.lines}
    assert traced[6] == "evt_book" and traced[7] == "evt_vc"


def test_waterfall_rows_match_schedules() -> None:
    state = book_contract(booked(line("ln_a", 1, "1200.00"), line("ln_b", 1, "365.00")))
    fall = waterfall(state, date(2026, 1, 1), date(2027, 1, 1))
    assert len(fall.months) == 12
    row_b = next(r for r in fall.rows if r.obligation_id == "ln_b")
    assert row_b.amounts[0] == usd("31.00") and sum(a.amount for a in row_b.amounts) == 365


def test_period_journal_needs_every_account_code() -> None:
    state = book_contract(booked(line("ln_a", 1, "1200.00")))
    with pytest.raises(AccountMappingError, match="contract_asset"):
        period_journal([state], "le_us", Period(date(2026, 1, 1), date(2026, 2, 1)),
                       {"revenue": "4000", "deferred_revenue": "2400",
                        "unbilled_receivable": "1260"})


def test_period_journal_of_a_quiet_period_is_none() -> None:
    state = book_contract(booked(line("ln_a", 1, "1200.00")))
    assert period_journal([state], "le_us", Period(date(2030, 1, 1), date(2030, 2, 1)),
                          ACCOUNTS) is None


def test_period_journal_refuses_another_entity() -> None:
    state = book_contract(booked(line("ln_a", 1, "1200.00")))
    with pytest.raises(ContractMismatchError):
        period_journal([state], "le_eu", Period(date(2026, 1, 1), date(2026, 2, 1)), ACCOUNTS)
