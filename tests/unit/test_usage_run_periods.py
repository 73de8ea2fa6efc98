"""The periods an aggregation run totals by: each waiting day of a subscription lies in
exactly one, billing's periods whole, and the days between them each a period of its own."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from finsync.domain.clock import Period
from finsync.hub.usage import run_periods

DAY0 = date(2026, 1, 1)


@st.composite
def calendars(draw: st.DrawFn) -> tuple[Period, tuple[Period, ...]]:
    """A span of waiting days, and billing's periods (in order, disjoint, with gaps) around
    it."""
    bounds = sorted(draw(st.sets(st.integers(0, 60), max_size=10)))
    pairs = list(zip(bounds[::2], bounds[1::2], strict=False))
    periods = tuple(Period(DAY0 + timedelta(days=a), DAY0 + timedelta(days=b))
                    for a, b in pairs if draw(st.booleans()))
    first = draw(st.integers(0, 59))
    last = draw(st.integers(first + 1, 60))
    return Period(DAY0 + timedelta(days=first), DAY0 + timedelta(days=last)), periods


@given(calendars())
def test_every_waiting_day_lies_in_one_run_period(calendar: tuple[Period, tuple[Period, ...]]
                                                  ) -> None:
    span, periods = calendar
    cut = run_periods({"con_1": span}, {"con_1": periods})
    for offset in range(span.days):
        day = span.start + timedelta(days=offset)
        holding = [p for p in cut if p.start <= day < p.end]
        assert len(holding) == 1
        billing = [p for p in periods if day in p]
        if billing:  # billing's own period, whole
            assert (holding[0].start, holding[0].end, holding[0].daily) == (
                billing[0].start, billing[0].end, False)
        else:
            assert holding[0].daily
    assert all(p.subscription_id == "con_1" for p in cut)


def test_a_subscription_billing_does_not_know_is_all_days() -> None:
    span = Period(date(2026, 3, 1), date(2026, 3, 31))
    [cut] = run_periods({"con_nobody": span}, {})
    assert (cut.start, cut.end, cut.daily) == (span.start, span.end, True)
