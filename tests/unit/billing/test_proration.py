"""Cycles and proration shares."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from finsync.domain.clock import Period
from finsync.systems.billing.cycle import add_months, cycle_containing, months_between
from finsync.systems.billing.errors import InvalidCommandError
from finsync.systems.billing.proration import ProrationRule, ProrationUnit, Share

YEAR = Period(date(2025, 1, 1), date(2026, 1, 1))


def test_by_day_share_is_days_left_over_days_in_cycle() -> None:
    share = ProrationRule().share(YEAR, Period(date(2025, 5, 16), date(2026, 1, 1)))
    assert share == Share(230, 365)


def test_by_second_share_counts_from_the_instant() -> None:
    # 2025-05-16 18:00 UTC: 229 days + 6 hours = 19807200 s of 31536000 s
    rule = ProrationRule(ProrationUnit.SECOND)
    span = Period(date(2025, 5, 16), date(2026, 1, 1))
    at = datetime(2025, 5, 16, 18, tzinfo=UTC)
    assert rule.share(YEAR, span, at) == Share(19_807_200, 31_536_000)
    assert rule.share(YEAR, span) == Share(230, 365)


def test_span_outside_its_cycle_is_refused() -> None:
    with pytest.raises(InvalidCommandError):
        ProrationRule().share(YEAR, Period(date(2025, 6, 1), date(2026, 2, 1)))


def test_month_end_anchor_clamps_without_drifting() -> None:
    anchor = date(2025, 1, 31)
    assert [add_months(anchor, k) for k in range(4)] == [
        date(2025, 1, 31), date(2025, 2, 28), date(2025, 3, 31), date(2025, 4, 30)]
    cycle = cycle_containing(anchor, 1, date(2025, 3, 15))
    assert cycle.period == Period(date(2025, 2, 28), date(2025, 3, 31))


def test_quarterly_cycle_contains_its_days() -> None:
    cycle = cycle_containing(date(2025, 1, 1), 3, date(2025, 5, 16))
    assert cycle.period == Period(date(2025, 4, 1), date(2025, 7, 1))
    assert months_between(date(2025, 1, 1), date(2026, 1, 1)) == 12
    assert months_between(date(2025, 1, 1), date(2025, 12, 15)) is None
