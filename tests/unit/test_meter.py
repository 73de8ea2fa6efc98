"""Meter events: the one-pass read of a good item (`meter._good`) takes exactly what the
field-by-field `read_event` takes, and leaves every other item to it."""

from __future__ import annotations

from datetime import date
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from finsync.domain import meter
from finsync.domain.errors import MappingError
from finsync.domain.limits import InputLimits

LIMITS = InputLimits(id_max_chars=8, years_back=1, years_ahead=1)
RECEIVED = date(2026, 3, 10)

IDS = st.one_of(st.text(max_size=10), st.sampled_from(["a", "x\x00", "\ud800", "é", ""]),
                st.integers(), st.none())
QUANTITIES = st.one_of(st.integers(min_value=-2, max_value=10**12 + 2), st.booleans(),
                       st.floats(allow_nan=False), st.text(max_size=3))
STAMPS = st.one_of(
    st.sampled_from(["2026-03-10T00:00:00Z", "2025-03-10T00:00:00Z", "2025-03-09T23:59:59Z",
                     "2027-03-10T23:59:59.999999Z", "2027-03-11T00:00:00Z",
                     "2027-03-10T23:00:00-05:00", "2025-03-10T02:00:00+05:00",
                     "2026-03-10T10:00:00", "2026-03-10", "9999-12-31T23:00:00-05:00",
                     "not a time", "2026-03-10T10:00:00+00:00" + " " * 30]),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.integers())
ITEMS = st.one_of(
    st.fixed_dictionaries({"id": IDS, "subscription": IDS, "product": IDS,
                           "quantity": QUANTITIES, "timestamp": STAMPS}),
    st.dictionaries(st.sampled_from(meter.FIELDS), st.just("a"), max_size=4),
    st.lists(st.integers(), max_size=2))


def _one_by_one(item: Any) -> meter.MeterEvent | str:
    first = date(RECEIVED.year - LIMITS.years_back, RECEIVED.month, RECEIVED.day)
    last = date(RECEIVED.year + LIMITS.years_ahead, RECEIVED.month, RECEIVED.day)
    try:
        return meter.read_event(item, LIMITS, first, last)
    except MappingError as exc:
        return exc.code


@given(st.lists(ITEMS, max_size=8))
def test_a_batch_reads_each_item_as_read_event_does(items: list[Any]) -> None:
    batch = meter.read_items(items, LIMITS, RECEIVED)
    read: dict[int, meter.MeterEvent | str] = {r.index: r.code for r in batch.refused}
    read.update(zip(batch.indexes, batch.events, strict=True))
    assert read == {index: _one_by_one(item) for index, item in enumerate(items)}
    assert all(type(e) is meter.MeterEvent for e in batch.events)
