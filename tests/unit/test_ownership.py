"""Partition ownership's pure parts (`streaming.ownership`): the spec of `--partitions`, the
rendezvous assignment, and the lease rounds against a hand-written KV with the
compare-and-set rules of a JetStream KV bucket."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finsync.domain.partition import partition_hash, partition_of
from finsync.streaming.errors import TransportUnavailableError
from finsync.streaming.ownership import (
    DECLINED_MAX,
    REASON_MAX_CHARS,
    Leases,
    Node,
    PartitionSpecError,
    WorkerNameTakenError,
    assignment,
    format_partitions,
    parse_partitions,
    read_declined,
    rendezvous,
    wanted,
)

names = st.text(st.characters(min_codepoint=48, max_codepoint=122), min_size=1, max_size=12)
node_sets = st.sets(names, min_size=1, max_size=8)


def test_spec_names_ranges_and_single_partitions() -> None:
    assert parse_partitions("0-3,7", 16) == {0, 1, 2, 3, 7}
    assert parse_partitions(" 5 ", 16) == {5}
    assert parse_partitions("2-2,1-3", 4) == {1, 2, 3}


@pytest.mark.parametrize(("spec", "says"), [
    ("", "not a partition"), ("3-1", "empty"), ("16", "does not exist"),
    ("0-16", "does not exist"), ("a", "not a partition"), ("-1", "not a partition"),
    ("1,,2", "not a partition"), ("1" * 5000, "at most 4096"),
])
def test_spec_refuses_what_names_no_partition(spec: str, says: str) -> None:
    with pytest.raises(PartitionSpecError, match=says):
        parse_partitions(spec, 16)


@settings(deadline=None)  # a loaded CI machine, not the code, sets the pace
@given(st.sets(st.integers(0, 63)))
def test_spec_round_trips(chosen: set[int]) -> None:
    text = format_partitions(chosen)
    assert (parse_partitions(text, 64) if chosen else frozenset()) == chosen


@settings(deadline=None)  # a loaded CI machine, not the code, sets the pace
@given(node_sets, st.integers(1, 64))
def test_every_partition_has_exactly_one_live_owner(nodes: set[str], count: int) -> None:
    owners = assignment(count, nodes)
    assert set(owners) == set(range(count))
    assert set(owners.values()) <= nodes
    # Each node asking for itself gets a share that, together, covers each partition once.
    shares = [wanted(Node(n, None), count, [Node(m, None) for m in nodes]) for n in nodes]
    assert sum(len(s) for s in shares) == count
    assert frozenset().union(*shares) == set(range(count))


@settings(deadline=None)  # a loaded CI machine, not the code, sets the pace
@given(node_sets, names, st.integers(1, 64))
def test_a_node_leaving_moves_only_its_partitions(nodes: set[str], leaving: str,
                                                  count: int) -> None:
    everyone = nodes | {leaving}
    before = assignment(count, everyone)
    after = assignment(count, everyone - {leaving})
    moved = {p for p in range(count) if before[p] != after.get(p)}
    assert moved == {p for p, owner in before.items() if owner == leaving}


@settings(deadline=None)  # a loaded CI machine, not the code, sets the pace
@given(node_sets, names, st.integers(1, 64))
def test_a_node_joining_takes_only_partitions_it_now_owns(nodes: set[str], joining: str,
                                                          count: int) -> None:
    before = assignment(count, nodes)
    after = assignment(count, nodes | {joining})
    assert {p for p in range(count) if before.get(p) != after[p]} <= {
        p for p, owner in after.items() if owner == joining}


def test_explicit_partitions_are_left_to_their_worker() -> None:
    explicit = Node("x", frozenset({0, 1}))
    autos = [Node("a", None), Node("b", None)]
    shares = [wanted(n, 4, [explicit, *autos]) for n in autos]
    assert frozenset().union(*shares) == {2, 3}
    assert wanted(explicit, 4, autos) == {0, 1}
    assert rendezvous(0, []) is None


@settings(deadline=None)  # a loaded CI machine, not the code, sets the pace
@given(st.text(max_size=60), st.integers(1, 1000))
def test_partition_hash_is_62_bits_and_the_partition_is_its_remainder(key: str,
                                                                      count: int) -> None:
    value = partition_hash(key)
    assert 0 <= value < 2**62
    assert partition_of(key, count) == value % count


def test_partition_hash_is_pinned() -> None:
    """Stored in `deliveries.partition_hash` and used by every process: it must never
    change (a changed function would move every stored delivery)."""
    assert partition_hash("subscription_contract:con_1") == 1121007313675126138
    assert partition_hash("") == 2640974528976106164


# -- leases ----------------------------------------------------------------------------


class KeyExistsError(Exception):
    pass


class WrongRevisionError(Exception):
    pass


@dataclass(frozen=True)
class Entry:
    key: str
    value: bytes
    revision: int


class Bucket:
    """A KV bucket with JetStream's compare-and-set rules; `expire(key)` is its TTL."""

    def __init__(self) -> None:
        self._items: dict[str, Entry] = {}
        self.revision = 0

    def _write(self, key: str, value: bytes) -> int:
        self.revision += 1
        self._items[key] = Entry(key, value, self.revision)
        return self.revision

    def get(self, key: str) -> Entry | None:
        return self._items.get(key)

    def create(self, key: str, value: bytes) -> int:
        if key in self._items:
            raise KeyExistsError(key)
        return self._write(key, value)

    def update(self, key: str, value: bytes, last_revision: int) -> int:
        entry = self._items.get(key)
        if entry is None or entry.revision != last_revision:
            raise WrongRevisionError(key)
        return self._write(key, value)

    def put(self, key: str, value: bytes) -> int:
        return self._write(key, value)

    def delete(self, key: str, last_revision: int | None = None) -> None:
        entry = self._items.get(key)
        if last_revision is not None and (entry is None or entry.revision != last_revision):
            raise WrongRevisionError(key)
        self._items.pop(key, None)

    def entries(self) -> list[Entry]:
        return [self._items[key] for key in sorted(self._items)]

    def expire(self, key: str) -> None:
        del self._items[key]


LOST = (KeyExistsError, WrongRevisionError)


def _workers(count: int, *named: str) -> tuple[Bucket, Bucket, list[Leases]]:
    nodes, leases = Bucket(), Bucket()
    return nodes, leases, [Leases(Node(n, None), count, nodes, leases, LOST) for n in named]


def _settle(workers: list[Leases], rounds: int = 3) -> None:
    for _ in range(rounds):
        for w in workers:
            w.tick()


def test_two_workers_split_the_partitions_and_never_share_one() -> None:
    _, _, (a, b) = _workers(8, "a", "b")
    a.tick()
    assert a.owned == wanted(a.me, 8, [a.me])  # alone, it wants (and takes) everything
    _settle([a, b])
    assert a.owned | b.owned == set(range(8))
    assert not a.owned & b.owned
    assert b.owned  # the newcomer got its share once a released it


def test_a_dead_workers_partitions_move_once_its_lease_and_heartbeat_run_out() -> None:
    nodes, leases, (a, b) = _workers(8, "a", "b")
    _settle([a, b])
    held_by_b = b.owned
    a.tick()
    assert a.owned.isdisjoint(held_by_b)  # b's heartbeat and leases still live
    nodes.expire("b")
    for p in held_by_b:
        leases.expire(f"p{p}")
    a.tick()
    assert a.owned == set(range(8))


def test_a_clean_stop_hands_the_partitions_over_at_once() -> None:
    _, _, (a, b) = _workers(8, "a", "b")
    _settle([a, b])
    b.release_all()
    a.tick()
    assert a.owned == set(range(8))


def test_a_lost_compare_and_set_drops_the_partition_at_once() -> None:
    changes: list[frozenset[int]] = []
    nodes, leases = Bucket(), Bucket()
    a = Leases(Node("a", frozenset({0})), 4, nodes, leases, LOST, changes.append)
    a.tick()
    assert a.owned == {0}
    leases.expire("p0")  # a stalled past its lease: b took it meanwhile
    leases.create("p0", b"b")
    a.tick()
    assert a.owned == frozenset()
    assert a.waiting == {0: "b"}
    assert changes == [frozenset({0}), frozenset()]


def test_an_explicit_overlap_waits_for_the_holder() -> None:
    nodes, leases = Bucket(), Bucket()
    first = Leases(Node("first", frozenset({1, 2})), 4, nodes, leases, LOST)
    second = Leases(Node("second", frozenset({2, 3})), 4, nodes, leases, LOST)
    _settle([first, second])
    assert first.owned == {1, 2}
    assert second.owned == {3}
    assert second.waiting == {2: "first"}
    first.release_all()
    second.tick()
    assert second.owned == {2, 3}


def test_ownership_lapses_when_no_round_succeeds_within_the_ttl() -> None:
    """A worker cut off from NATS renews nothing: once its leases may have run out, it
    stops counting the partitions as its own, without being told."""
    now = [100.0]
    nodes, leases = Bucket(), Bucket()
    a = Leases(Node("a", None), 4, nodes, leases, LOST, ttl_s=10.0, clock=lambda: now[0])
    assert a.current() == frozenset()  # no round yet
    a.tick()
    now[0] += 9.9
    assert a.current() == set(range(4)) and a.owns(3)
    now[0] += 0.1
    assert a.current() == frozenset() and not a.owns(3)
    a.tick()  # the transport is back: a round succeeds
    assert a.owns(3)


def test_a_worker_waits_for_a_live_namesake_then_refuses() -> None:
    nodes, leases = Bucket(), Bucket()
    first = Leases(Node("w", None), 4, nodes, leases, LOST)
    first.join(0.0)  # nobody under that name: at once
    first.tick()
    second = Leases(Node("w", None), 4, nodes, leases, LOST)
    slept: list[float] = []
    with pytest.raises(WorkerNameTakenError, match="another --name"):
        second.join(2.0, slept.append)
    assert sum(slept) == 2.0
    nodes.expire("w")  # the namesake was killed: its heartbeat ran out
    second.join(2.0, slept.append)


class Electing(Bucket):
    """A bucket just made: its first `failures` reads find no leader yet."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def get(self, key: str) -> Entry | None:
        if self.failures:
            self.failures -= 1
            raise TransportUnavailableError("no answer within 5.0 s")
        return super().get(key)


def test_a_starting_worker_waits_out_a_transport_that_does_not_answer_yet() -> None:
    slept: list[float] = []
    Leases(Node("w", None), 4, Electing(3), Bucket(), LOST).join(2.0, slept.append)
    assert slept == [0.5, 0.5, 0.5]
    with pytest.raises(TransportUnavailableError):
        Leases(Node("w", None), 4, Electing(100), Bucket(), LOST).join(
            2.0, slept.append, unavailable_s=5.0)


reasons = st.text(max_size=REASON_MAX_CHARS)


@given(st.one_of(st.none(), st.frozensets(st.integers(0, 4095), max_size=8)),
       st.dictionaries(names, reasons, max_size=DECLINED_MAX))
def test_a_heartbeat_round_trips_with_the_duties_it_declines(
        explicit: frozenset[int] | None, declined: dict[str, str]) -> None:
    node = Node("w", explicit, None, tuple(sorted(declined.items())))
    assert Node.decode("w", node.encode()) == node


def test_declined_duties_that_do_not_read_are_left_out_and_cut() -> None:
    many = {f"d{n:02d}": "why" for n in range(DECLINED_MAX + 4)}
    assert len(read_declined(many)) == DECLINED_MAX
    assert read_declined({"daily": None, "relay": ["x"]}) == ()
    assert read_declined(["daily"]) == ()
    assert read_declined({"daily": "y" * (REASON_MAX_CHARS + 1)}) == (
        ("daily", "y" * REASON_MAX_CHARS),)
