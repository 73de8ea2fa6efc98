"""Partitioned acceptance (`Processor.accept_stored`) under locks per aggregate bucket: two
workers' batches of different aggregates are accepted at the same time; one aggregate's
versions still wait for each other; and the same source event id or business key sent in
two aggregates at once still ends as one stored event and one `duplicate_event`, on SQLite
(one writer at a time) and on PostgreSQL (the loser of the unique key is done again).

A worker is held inside its transaction, its rows written and not committed, by a gate on
its tracking rows (the last thing `accept_stored` writes)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from finsync.domain.aggregate import AggregateRef
from finsync.domain.errors import ExceptionClass
from finsync.domain.status import EventStatus
from finsync.hub.acceptance import LOCK, lock_bucket
from finsync.hub.processor import Stored
from finsync.hub.service import Hub
from finsync.storage import tracking
from finsync.storage.db import make_engine, process_name, reading, serialize, transaction
from finsync.storage.schema import events
from tests.builders import envelope, payment_doc
from tests.conftest import empty_postgres
from tests.integration.test_partitioned_hub import _hub, _mapped
from tests.integration.test_pipeline_batch import _version

WAIT_MAX_S = 30.0  # a guard against a hang, never a measure: each wait ends on an event
HOW = ["source_event_id", "business_key"]


@pytest.fixture
def pg_engine(pg_database: str) -> Iterator[Engine]:
    empty_postgres(pg_database)
    engine = make_engine(pg_database)
    yield engine
    engine.dispose()


class Gate:
    """Holds the thread named `name` after it wrote its tracking rows, inside its
    transaction, until released."""

    def __init__(self, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.name = name
        self.arrived, self.released = threading.Event(), threading.Event()
        real = tracking.track_many

        def gated(*args: Any, **kwargs: Any) -> None:
            real(*args, **kwargs)
            if threading.current_thread().name == self.name:
                self.arrived.set()
                assert self.released.wait(WAIT_MAX_S)

        monkeypatch.setattr(tracking, "track_many", gated)


class Acceptor(threading.Thread):
    """`accept_stored(items)` in a thread of its own; its outcomes once done."""

    def __init__(self, name: str, hub: Hub, items: Sequence[Stored]) -> None:
        super().__init__(name=name, daemon=True)
        self._hub, self._items = hub, items
        self.outcomes: Counter[str] | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.outcomes = self._hub.processor.accept_stored(self._items)
        except BaseException as exc:  # shown by the test's assertion
            self.error = exc

    def result(self) -> Counter[str]:
        self.join(WAIT_MAX_S)
        assert not self.is_alive() and self.error is None, self.error
        assert self.outcomes is not None
        return self.outcomes


def held_open(name: str, hub: Hub, item: Stored, monkeypatch: pytest.MonkeyPatch
              ) -> tuple[Gate, Acceptor]:
    """An acceptor of `item`, started and held at its gate (its transaction open)."""
    gate = Gate(name, monkeypatch)
    acceptor = Acceptor(name, hub, [item])
    acceptor.start()
    assert gate.arrived.wait(WAIT_MAX_S)
    return gate, acceptor


def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_MAX_S
    while not condition():
        assert time.monotonic() < deadline, "nothing happened"
        time.sleep(0.005)


def lock_waits(engine: Engine) -> list[str]:
    """What this process's PostgreSQL sessions wait for (`advisory`, `transactionid`)."""
    with engine.connect() as conn:
        return [str(w) for (w,) in conn.execute(text(
            "SELECT wait_event FROM pg_stat_activity WHERE application_name = :name "
            "AND wait_event_type = 'Lock'"), {"name": process_name()})]


def _payment(payment_id: str, source_event_id: str, business_key: str | None,
             version: int | None = None) -> bytes:
    return json.dumps(envelope(
        "payment.applied", source_event_id, ("payment", payment_id, version),
        {"payment": payment_doc(payment_id, "10.00", f"inv_{payment_id}")},
        correlation_id=f"c-{payment_id}", business_key=business_key)).encode()


def _apart(first: str) -> str:
    """A payment id whose aggregate has another bucket lock than `first`'s."""
    taken = lock_bucket(AggregateRef("payment", first, None))
    return next(f"pay_{n}" for n in range(1000)
                if lock_bucket(AggregateRef("payment", f"pay_{n}", None)) != taken)


def test_batches_of_other_aggregates_are_accepted_while_one_is_open(
        pg_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub, _target = _hub(pg_engine, tmp_path)
    other = _apart("pay_a")
    held, free = _mapped(hub, [_payment("pay_a", "e-a", None), _payment(other, "e-b", None)])
    gate, first = held_open("held", hub, held, monkeypatch)
    second = Acceptor("free", hub, [free])
    second.start()
    until(lambda: not second.is_alive() or "advisory" in lock_waits(pg_engine))
    assert not second.is_alive(), "the second batch waited for the first one's lock"
    assert second.result()["accepted"] == 1
    gate.released.set()
    assert first.result()["accepted"] == 1


def test_versions_of_one_aggregate_wait_for_each_other(
        pg_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub, target = _hub(pg_engine, tmp_path)
    v1, v2 = _mapped(hub, [_version("con_a", 1), _version("con_a", 2)])
    gate, first = held_open("v1", hub, v1, monkeypatch)
    second = Acceptor("v2", hub, [v2])
    second.start()
    until(lambda: not second.is_alive() or "advisory" in lock_waits(pg_engine))
    assert second.is_alive(), "v2 was decided before v1 committed"
    gate.released.set()
    assert first.result()["accepted"] == 1
    # v2 saw v1 applied: accepted, not parked for a gap that is not there.
    assert second.result()["accepted"] == 1
    hub.run_until_idle()
    assert [v for a, v in target.seen if a == "con_a"] == [1, 2]


@pytest.mark.parametrize("alone", [False, True], ids=["plain", "alone"])
@pytest.mark.parametrize("how", HOW)
def test_the_same_key_in_two_aggregates_at_once_is_stored_once(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str,
        alone: bool) -> None:
    """Two workers accept, at the same time, a payment each (aggregates under different
    bucket locks) that share a source event id or a business key, with different bodies.
    The first holds its transaction open; on PostgreSQL the second waits on the unique key
    (not on a lock of the first's aggregate), fails when the first commits, and is done
    again; on SQLite it waits to begin. Either way: one accepted event under the key, the
    other kept rejected beside it with a `duplicate_event`. `alone`: the second is no plain
    event (a version after a gap, decided by `Acceptance` in its savepoint), where losing
    the race must not quarantine it."""
    hub, _target = _hub(engine, tmp_path)
    other = _apart("pay_a")
    same_id = how == "source_event_id"
    bodies = [_payment(pay, "e-same" if same_id else f"e-{pay}",
                       None if same_id else "bk-same", 2 if alone and pay == other else None)
              for pay in ("pay_a", other)]
    first_item, second_item = _mapped(hub, bodies)
    gate, first = held_open("first", hub, first_item, monkeypatch)
    second = Acceptor("second", hub, [second_item])
    second.start()
    if engine.dialect.name == "postgresql":
        until(lambda: "transactionid" in lock_waits(engine))
    gate.released.set()
    assert first.result()["accepted"] == 1
    assert second.result()["held"] == 1
    with reading(engine) as conn:
        rows = conn.execute(select(events.c.aggregate_id, events.c.status)
                            .order_by(events.c.position)).all()
    assert [(str(a), str(s)) for a, s in rows] == [("pay_a", EventStatus.ACCEPTED),
                                                  (other, EventStatus.REJECTED)]
    (exc,) = hub.exceptions()
    assert exc["class"] == ExceptionClass.DUPLICATE_EVENT


def test_the_whole_acceptance_lock_waits_for_a_partitioned_batch(
        pg_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-process hub and triage's supersede take `LOCK` whole: they wait for every
    partitioned batch under way, which holds it shared."""
    hub, _target = _hub(pg_engine, tmp_path)
    (item,) = _mapped(hub, [_payment("pay_a", "e-a", None)])
    gate, first = held_open("held", hub, item, monkeypatch)
    taken = threading.Event()

    def whole() -> None:
        with transaction(pg_engine) as conn:
            serialize(conn, LOCK)
            taken.set()

    second = threading.Thread(target=whole, daemon=True)
    second.start()
    until(lambda: taken.is_set() or "advisory" in lock_waits(pg_engine))
    assert not taken.is_set(), "the whole lock was taken during a partitioned batch"
    gate.released.set()
    assert first.result()["accepted"] == 1
    second.join(WAIT_MAX_S)
    assert taken.is_set()


def test_the_in_process_batch_with_nothing_waiting_does_not_take_the_whole_lock(
        pg_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker's duties poll `process_batch` (raw events stored straight in the database):
    with none waiting it returns at once, never pausing the partitions' acceptance."""
    hub, _target = _hub(pg_engine, tmp_path)
    (item,) = _mapped(hub, [_payment("pay_a", "e-a", None)])
    gate, first = held_open("held", hub, item, monkeypatch)
    polled: list[Counter[str]] = []
    poll = threading.Thread(target=lambda: polled.append(hub.processor.process_batch()),
                            daemon=True)
    poll.start()
    until(lambda: bool(polled) or "advisory" in lock_waits(pg_engine))
    assert polled == [Counter()], "the poll waited for the partitioned batch"
    gate.released.set()
    assert first.result()["accepted"] == 1
