"""Partitioned workers on a real 3-node JetStream cluster (issue 20), on SQLite and
PostgreSQL: two workers split the partitions and take over each other's; an explicit
overlap waits for the holder; and per-aggregate order holds whoever owns what, whenever
ownership moves (a property test that flips ownership between and inside batches)."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from finsync.domain.status import RawStatus
from finsync.hub.group_commit import Checked
from finsync.hub.mapping import CanonicalMapper, MapperRegistry
from finsync.hub.service import Hub
from finsync.storage import raw_log
from finsync.storage.db import reading, transaction
from finsync.storage.schema import deliveries, events
from finsync.streaming.archiver import Archiver
from finsync.streaming.client import JetStream, TransportUnavailableError
from finsync.streaming.event_message import event_message
from finsync.streaming.ownership import Node
from finsync.streaming.raw_publisher import RawPublisher
from finsync.streaming.settings import TransportSettings
from finsync.streaming.setup import ensure_streams
from finsync.streaming.worker import (
    PartitionConsumer,
    WorkerNode,
    durable,
)
from tests.hubkit import Clock, ingest
from tests.hubkit import settings as hub_settings
from tests.integration.test_pipeline_batch import ROUTES, RecordingTarget, _version
from tests.rawkit import checked

WAIT_MAX_S = 60.0  # liveness only: how long a test waits for something before failing
POLL_S = 0.05


def _hub(engine: Engine, name: str, target: RecordingTarget) -> Hub:
    return Hub(engine, hub_settings(ROUTES), MapperRegistry({"canonical": CanonicalMapper()}),
               {"books": target}, Clock(), name)


def _until(what: str, done: Callable[[], bool]) -> float:
    """Poll `done`; returns the seconds it took (a figure, never asserted)."""
    start = time.monotonic()
    while not done():
        if time.monotonic() - start > WAIT_MAX_S:
            raise AssertionError(f"{what}: not after {WAIT_MAX_S} s")
        time.sleep(POLL_S)
    return time.monotonic() - start


@pytest.fixture
def transport(transport_settings: TransportSettings) -> TransportSettings:
    return replace(transport_settings, partitions=4, lease_ttl_s=2.0)


@pytest.fixture
def connect(transport: TransportSettings) -> Iterator[Callable[[str], JetStream]]:
    opened: list[JetStream] = []

    def open_one(name: str) -> JetStream:
        js = JetStream(transport, name)
        opened.append(js)
        ensure_streams(js, transport)
        return js

    yield open_one
    for js in opened:
        js.close()


def _publish(js: JetStream, transport: TransportSettings, hub: Hub,
             bodies: list[bytes], rng: random.Random, copies: int = 0) -> list[int]:
    """Store `bodies` as raw events (marked mapped, as the archiver does) and publish their
    envelopes shuffled, `copies` of them twice (a resend after the duplicate window)."""
    ingest(hub, bodies)
    with transaction(hub.engine) as conn:
        stored = raw_log.pending(conn, len(bodies))
        raw_log.mark_many(conn, [r.id for r in stored], RawStatus.MAPPED, hub.clock())
    messages = [event_message(transport.namespace, transport.partitions, raw.id,
                              hub.mappers.map(raw)) for raw in stored]
    sent = messages + [replace(m, msg_id=f"{m.msg_id}:again") for m in messages[:copies]]
    rng.shuffle(sent)
    for m in sent:
        js.publish(m.subject, m.data, msg_id=m.msg_id, headers=m.headers)
    return [raw.id for raw in stored]


def _applied(engine: Engine) -> dict[str, list[int]]:
    """Per aggregate, the versions in the order they were applied: the outbox's delivery
    ids follow acceptance (a delivery is enqueued when its event applies)."""
    with reading(engine) as conn:
        rows = conn.execute(
            select(events.c.aggregate_id, events.c.aggregate_version)
            .join(deliveries, deliveries.c.event_id == events.c.event_id)
            .order_by(deliveries.c.id))
        found: dict[str, list[int]] = {}
        for aggregate, version in rows:
            found.setdefault(str(aggregate), []).append(int(version))
    return found


def test_two_workers_split_the_partitions_and_take_over_a_dead_ones(
        engine: Engine, transport: TransportSettings,
        connect: Callable[[str], JetStream]) -> None:
    target = RecordingTarget()
    a = WorkerNode(_hub(engine, "w-a", target), connect("w-a"), transport, "w-a", None)
    b = WorkerNode(_hub(engine, "w-b", target), connect("w-b"), transport, "w-b", None)
    everything = frozenset(range(transport.partitions))
    a.start()
    b.start()
    try:
        _until("the partitions split", lambda: (
            a.leases.owned | b.leases.owned == everything and bool(b.leases.owned)
            and bool(a.leases.owned) and not a.leases.owned & b.leases.owned))
        contracts = [f"con_{i}" for i in range(8)]
        _publish(connect("feeder"), transport, a.hub,
                 [_version(c, v) for c in contracts for v in (1, 2, 3)], random.Random(5), 4)
        _until("every version delivered", lambda: len(target.seen) == 24)
        # b dies (no clean stop): its threads end, its leases are left to run out.
        lost = b.leases.owned
        for thread in (*b.threads, *b.partitions.loops().values()):
            thread.stop()
        taken_s = _until("a takes b's partitions", lambda: a.leases.owned == everything)
        print(f"takeover of {sorted(lost)} after a kill: {taken_s:.1f} s "
              f"(lease_ttl_s {transport.lease_ttl_s})")
        _publish(connect("feeder-2"), transport, a.hub,
                 [_version(c, 4) for c in contracts], random.Random(6))
        _until("the new versions delivered", lambda: len(target.seen) == 32)
    finally:
        a.stop()
        b.stop()
    applied = _applied(engine)
    assert applied == {c: [1, 2, 3, 4] for c in contracts}
    assert sorted(target.seen) == sorted((c, v) for c in contracts for v in (1, 2, 3, 4))


def test_a_clean_stop_hands_the_partitions_over_at_the_next_round(
        engine: Engine, transport: TransportSettings,
        connect: Callable[[str], JetStream]) -> None:
    target = RecordingTarget()
    a = WorkerNode(_hub(engine, "w-a", target), connect("w-a"), transport, "w-a", None)
    b = WorkerNode(_hub(engine, "w-b", target), connect("w-b"), transport, "w-b", None)
    a.start()
    b.start()
    try:
        _until("b gets a share", lambda: bool(b.leases.owned))
        b.stop()
        with_release_s = _until("a owns everything", lambda: len(a.leases.owned) == 4)
        print(f"takeover after a clean stop: {with_release_s:.1f} s")
    finally:
        a.stop()


def test_an_explicit_overlap_waits_for_the_holder(
        engine: Engine, transport: TransportSettings,
        connect: Callable[[str], JetStream]) -> None:
    target = RecordingTarget()
    first = WorkerNode(_hub(engine, "w-1", target), connect("w-1"), transport, "w-1",
                       frozenset({0, 1}))
    second = WorkerNode(_hub(engine, "w-2", target), connect("w-2"), transport, "w-2",
                        frozenset({1, 2}))
    first.start()
    second.start()
    try:
        assert first.leases.owned == {0, 1}
        assert second.leases.owned == {2}
        assert second.leases.waiting == {1: "w-1"}  # it says who holds it
        first.stop()
        _until("the second takes partition 1", lambda: second.leases.owned == {1, 2})
        assert not second.leases.waiting
    finally:
        first.stop()
        second.stop()


# -- order under ownership moves ---------------------------------------------------------

# A schedule: which of the two workers owns the partition for each fetch, how many
# messages it fetches, and whether ownership moves to the other between its fetch and its
# acceptance (the batch is then handed back).
RUNS = itertools.count()
steps = st.lists(st.tuples(st.integers(0, 1), st.integers(1, 6), st.booleans()),
                 min_size=1, max_size=30)


@settings(max_examples=5, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(schedule=steps, seed=st.integers(0, 2**16))
def test_versions_apply_in_order_whatever_the_ownership_moves(
        engine: Engine, tmp_path: Path, transport_settings: TransportSettings,
        schedule: list[tuple[int, int, bool]], seed: int) -> None:
    run = next(RUNS)  # examples share the test's database and cluster: names of their own
    transport = replace(transport_settings, partitions=1,
                        namespace=f"{transport_settings.namespace[:24]}r{run}")
    with JetStream(transport, "order") as js:
        ensure_streams(js, transport)
        hubs = [_hub(engine, f"w-{i}", RecordingTarget()) for i in (0, 1)]
        contracts = [f"c{run}_{i}" for i in range(3)]
        _publish(js, transport, hubs[0], [_version(c, v) for c in contracts
                                          for v in range(1, 5)], random.Random(seed), 3)
        owner = [0]
        consumer = js.consumer(transport.stream("events"), durable(0),
                               f"{transport.namespace}.events.*.0")
        loops = [PartitionConsumer(0, consumer, hub,
                                   lambda _p, me=i: owner[0] == me, lambda: None)
                 for i, hub in enumerate(hubs)]
        rest = [(i % 2, 6, False) for i in range(50)]  # then drain, alternating
        for who, size, moves in [*schedule, *rest]:
            owner[0] = who
            fetched = consumer.fetch(size, 0.2)
            if moves:
                owner[0] = 1 - who
            loops[who].accept(fetched)
            if _versions_applied(engine, contracts) == 12:
                break
    applied = _applied(engine)
    assert {c: applied.get(c) for c in contracts} == {c: [1, 2, 3, 4] for c in contracts}


def _versions_applied(engine: Engine, contracts: list[str]) -> int:
    with reading(engine) as conn:
        return len(conn.execute(select(events.c.event_id).where(
            events.c.aggregate_id.in_(contracts), events.c.status == "accepted")).all())


def test_node_heartbeat_round_trips() -> None:
    assert Node.decode("a", Node("a", frozenset({3, 1})).encode()) == Node("a", frozenset({1, 3}))
    assert Node.decode("a", Node("a", None).encode()) == Node("a", None)
    assert Node.decode("a", b"not json") == Node("a", None)
    started = Node("a", None, datetime(2026, 12, 7, 1, 0, tzinfo=UTC))
    assert Node.decode("a", started.encode()) == started
    assert Node.decode("a", b'{"started_at": "2026-12-07T01:00:00"}') == Node("a", None)


# -- end to end: raw stream, archivers, partitions, deliveries ---------------------------


def test_raw_events_reach_the_books_once_through_two_workers_one_killed(
        engine: Engine, transport: TransportSettings,
        connect: Callable[[str], JetStream]) -> None:
    """Raw messages as intake nodes publish them (shuffled, some twice under their id)
    go through each worker's archiver and the partition loops: every version applied and
    delivered once, in order, though a worker dies half-way."""
    target = RecordingTarget()
    nodes = []
    for name in ("w-a", "w-b"):
        hub = _hub(engine, name, target)
        js = connect(name)
        archiver = Archiver(hub.engine, hub.mappers, js, transport, hub.clock)
        nodes.append(WorkerNode(hub, js, transport, name, None, archive=archiver.step))
    a, b = nodes
    feeder = connect("intake")
    contracts = [f"con_{i}" for i in range(10)]

    intake = RawPublisher(feeder, transport)

    def publish(versions: tuple[int, ...], seed: int) -> None:
        sent = checked(a.hub, [_version(c, v) for c in contracts for v in versions],
                       "canonical")
        random.Random(seed).shuffle(sent)
        send(sent)
        send(sent[:5])  # resent by the source, within the duplicate window

    def send(batch: list[Checked]) -> None:
        for _ in range(10):  # as a source does on 503: the same ids again
            try:
                intake(batch)
                return
            except TransportUnavailableError:  # a stream still electing its leader
                continue
        raise AssertionError("the raw stream took no publish")

    a.start()
    b.start()
    try:
        publish((1, 2, 3), 11)
        _until("half delivered", lambda: len(target.seen) >= 15)
        for thread in (*b.threads, *b.partitions.loops().values()):
            thread.stop()  # b dies: its leases run out, a takes over
        publish((4,), 12)
        _until("every version delivered", lambda: len(target.seen) >= 40)
    finally:
        a.stop()
        b.stop()
    assert _applied(engine) == {c: [1, 2, 3, 4] for c in contracts}
    assert sorted(target.seen) == sorted((c, v) for c in contracts for v in (1, 2, 3, 4))
    with reading(engine) as conn:
        assert raw_log.counts(conn) == {"mapped": 40}  # each raw event stored once


def test_raw_events_stored_straight_in_the_database_are_accepted_by_one_worker(
        engine: Engine, transport: TransportSettings,
        connect: Callable[[str], JetStream]) -> None:
    """Signed webhooks and pumped outboxes reach the database without the transport: the
    worker holding the `duties` lease accepts them with the hub's own processor, the other
    does nothing (two processors at once would race for the same raw events); when the
    holder stops cleanly, the other takes the duty over."""
    target = RecordingTarget()
    ran: dict[str, int] = {"w-a": 0, "w-b": 0}

    def duty(name: str, hub: Hub) -> Callable[[Callable[[], None]], int]:
        def step(_progressed: Callable[[], None]) -> int:
            ran[name] += 1
            return hub.processor.process_batch()["raw"]
        return step

    hubs = {name: _hub(engine, name, target) for name in ("w-a", "w-b")}
    a, b = (WorkerNode(hub, connect(name), transport, name, frozenset({0, 1, 2, 3})
                       if name == "w-a" else frozenset(), duties={"duties": (duty(name, hub),)})
            for name, hub in hubs.items())
    a.start()
    try:
        _until("w-a holds the duties", lambda: ran["w-a"] > 0)  # b, started with it, may win
        b.start()
        ingest(hubs["w-a"], [_version("con_d", v) for v in (1, 2)])
        _until("both versions delivered", lambda: len(target.seen) >= 2)
        assert ran["w-b"] == 0  # it never held the lease
        a.stop()
        ingest(hubs["w-b"], [_version("con_d", 3)])
        with reading(engine) as conn:
            assert raw_log.counts(conn).get("received") == 1
        _until("taken over", lambda: ran["w-b"] > 0)
        _until("accepted by the other", lambda: _mapped(engine) == 3)
    finally:
        a.stop()
        b.stop()
    assert _applied(engine)["con_d"] == [1, 2, 3]


def _mapped(engine: Engine) -> int:
    with reading(engine) as conn:
        return int(raw_log.counts(conn).get("mapped", 0))
