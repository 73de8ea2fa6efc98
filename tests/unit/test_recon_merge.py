"""Reconciliation's one-pass building blocks: merging two ordered streams, and what a check
keeps of what it compares."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from finsync.domain.money import Money
from finsync.recon.merge import StreamOrderError, merge
from finsync.recon.model import Collector, Item


@given(st.sets(st.text(min_size=1, max_size=4)), st.sets(st.text(min_size=1, max_size=4)))
def test_merge_pairs_every_key_of_either_stream_once_in_order(left: set[str],
                                                              right: set[str]) -> None:
    pairs = list(merge(sorted(left), sorted(right), lambda k: k, lambda k: k))
    assert [k for k, _, _ in pairs] == sorted(left | right)
    for key, a, b in pairs:
        assert (a == key) is (key in left) and (b == key) is (key in right)


def test_merge_refuses_a_stream_out_of_order() -> None:
    with pytest.raises(StreamOrderError):
        list(merge(["b", "a"], [], lambda k: k, lambda k: k))
    with pytest.raises(StreamOrderError):  # a key twice is out of order too
        list(merge([], ["a", "a"], lambda k: k, lambda k: k))


def test_collector_keeps_breaks_watched_items_and_a_bounded_sample() -> None:
    """Of 10 agreeing items and 2 breaks, with room for 3 agreeing items and one watched
    ref: the 3 first agreeing, the watched one, both breaks; 12 compared."""
    out = Collector(watched={"invoice:i9"}, agreeing_max=3)
    zero = Money.zero("USD")
    for n in range(10):
        if out.wants(f"invoice:i{n}", False):
            out.keep(Item(f"invoice:i{n}", zero, zero))
    for n in (10, 11):
        if out.wants(f"invoice:i{n}", True):
            out.keep(Item(f"invoice:i{n}", zero, Money.of("1.00", "USD")))
    assert [i.ref for i in out.items] == ["invoice:i0", "invoice:i1", "invoice:i2",
                                          "invoice:i9", "invoice:i10", "invoice:i11"]
    assert out.compared == 12
