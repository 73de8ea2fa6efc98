"""Keeping a batch's leases while its calls go on (`hub.lease_keeper`)."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta

import pytest

from finsync.hub.lease_keeper import LeaseKeeper
from tests.hubkit import Clock


def test_a_tick_extends_once_a_third_of_the_lease_has_passed() -> None:
    clock = Clock()
    extended: list[datetime] = []
    keeper = LeaseKeeper(extended.append, clock, 30)
    keeper.tick()
    clock.advance(10)
    keeper.tick()  # exactly a third: not yet
    assert extended == []
    clock.advance(1)
    keeper.tick()
    keeper.tick()  # the lease was just extended
    assert extended == [clock() + timedelta(seconds=30)]


def test_one_call_slower_than_the_lease_keeps_it() -> None:
    """A call of 1.5 s under a 0.6 s lease, on the wall clock: the keeper's thread extends
    every 0.2 s while the call is out, and stops with it."""
    extended: list[datetime] = []
    keeper = LeaseKeeper(extended.append, lambda: datetime.now(UTC), 0.6)
    with keeper.during():
        threading.Event().wait(1.5)
    assert extended and all(a < b for a, b in itertools.pairwise(extended))
    count = len(extended)
    threading.Event().wait(0.5)
    assert len(extended) == count  # the thread ended with the block


def test_a_failed_extension_is_logged_and_the_calls_go_on(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()

    def broken(_until: datetime) -> None:
        raise OSError("database gone")

    keeper = LeaseKeeper(broken, clock, 30)
    clock.advance(11)
    keeper.tick()  # no error raised
    assert "leases could not be extended" in caplog.text
