"""The relay's safe end in a log with gaps (`streaming.gap_watch`), and the order it
publishes a pass's events in (`events_out.in_version_order`)."""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from finsync.domain.status import EventStatus
from finsync.storage.relay_log import EventRow
from finsync.streaming.events_out import in_version_order
from finsync.streaming.gap_watch import GapWatch
from tests.builders import T0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_without_gaps_the_end_is_the_last_number_read() -> None:
    assert GapWatch(1.0).safe_end(4, [5, 6, 7], frozenset()) == 7
    assert GapWatch(1.0).safe_end(4, [], frozenset()) == 4


def test_on_sqlite_a_gap_is_passed_at_once() -> None:
    # Writers take turns there: what a reader does not see was never committed.
    assert GapWatch(1.0).safe_end(0, [1, 4, 5], None) == 5


def test_a_gap_waits_the_settle_time_then_for_the_writers_running_then() -> None:
    clock = Clock()
    watch = GapWatch(1.0, clock)
    assert watch.safe_end(0, [1, 2, 4], frozenset({70, 71})) == 2  # 3 first seen missing
    clock.now = 0.5
    assert watch.safe_end(0, [1, 2, 4], frozenset()) == 2  # not settled yet, even if idle
    clock.now = 1.0
    # Settled: writers 70 and 72 run now; 3 may be either's, so it waits for both.
    assert watch.safe_end(2, [4], frozenset({70, 72})) == 2
    assert watch.safe_end(2, [4], frozenset({72, 80})) == 2
    # 80 began after 3 was noted missing: it cannot hold it; 70 and 72 are over.
    assert watch.safe_end(2, [4, 5], frozenset({80})) == 5


def test_a_gap_that_fills_is_read_through() -> None:
    clock = Clock()
    watch = GapWatch(1.0, clock)
    assert watch.safe_end(0, [1, 3], frozenset({9})) == 1
    assert watch.safe_end(1, [2, 3], frozenset({9})) == 3  # 2 committed meanwhile


def test_every_gap_is_watched_so_they_settle_together() -> None:
    clock = Clock()
    watch = GapWatch(1.0, clock)
    assert watch.safe_end(0, [2, 4, 6], frozenset({9})) == 0  # 1, 3 and 5 missing
    clock.now = 1.0
    assert watch.safe_end(0, [2, 4, 6], frozenset({9})) == 0  # noted: writer 9
    assert watch.safe_end(0, [2, 4, 6], frozenset()) == 6  # all three settle at once


def _row(position: int, aggregate: str, version: int | None) -> EventRow:
    return EventRow(position, f"evt_{position}", "contract.amended", 1, "billing",
                    f"s{position}", None, T0, T0, "corr", None, "subscription_contract",
                    aggregate, version, "{}", EventStatus.ACCEPTED)


def test_an_aggregate_goes_out_in_version_order_in_the_places_it_holds() -> None:
    # con_a v3 parked at 2 and v2 at 4, released by v1 at 6; con_b and an unversioned
    # event keep their places.
    rows = [_row(6, "con_a", 1), _row(2, "con_a", 3), _row(3, "con_b", 1), _row(4, "con_a", 2),
            _row(5, "pay", None)]
    out = in_version_order(rows)
    assert [(r.aggregate_id, r.aggregate_version) for r in out] == [
        ("con_a", 1), ("con_b", 1), ("con_a", 2), ("pay", None), ("con_a", 3)]


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.booleans()), max_size=30),
       st.randoms())
def test_order_keeps_every_row_and_each_aggregate_ascending(
        spec: list[tuple[str, bool]], rng: random.Random) -> None:
    versions: dict[str, int] = {}
    rows = []
    for position, (aggregate, versioned) in enumerate(spec, start=1):
        versions[aggregate] = versions.get(aggregate, 0) + 1
        rows.append(_row(position, aggregate, versions[aggregate] if versioned else None))
    # Positions shuffled: a parked version may lie before the one it waited for.
    places = rng.sample(range(1, len(rows) + 1), len(rows))
    moved = [replace(r, position=p) for r, p in zip(rows, places, strict=True)]
    out = in_version_order(moved)
    assert sorted(r.event_id for r in out) == sorted(r.event_id for r in moved)
    for aggregate in "abc":
        seen = [r.aggregate_version for r in out
                if r.aggregate_id == aggregate and r.aggregate_version is not None]
        assert seen == sorted(seen)
    unversioned = [r.position for r in out if r.aggregate_version is None]
    assert unversioned == sorted(unversioned)
