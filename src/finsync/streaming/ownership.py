"""Partition ownership: which worker processes which partition, one at a time.

Rules:
- A worker owns a partition only while it holds that partition's lease: the key `p<N>` of
  the KV bucket `<ns>_leases`, whose value is the worker's name. A lease is taken with
  `create` (which succeeds only where the key holds nothing) and renewed every
  `lease_ttl_s / 3` by `update(last_revision)`. A renewal
  that loses its compare-and-set means another worker holds the partition now: it is
  dropped at once, whatever the worker was doing with it.
- The bucket's entries expire `lease_ttl_s` after their last write: the lease of a worker
  that died (SIGKILL, a lost machine) runs out by itself, and another worker takes it on
  its next round. Takeover is bounded: `lease_ttl_s` plus one round (`lease_ttl_s / 3`).
- A clean stop releases each lease (a `delete` from our last revision: never another's
  lease) and removes the worker's heartbeat, so its partitions move on the others' next round.
- Every worker heartbeats in `<ns>_nodes` (the key is its name, the same expiry). A worker
  does not start under the name of a live heartbeat: it waits for it to run out (its
  predecessor killed moments ago), then refuses (another process runs under that name). The
  partitions an automatic worker wants are those the rendezvous (highest random weight)
  hash gives it among the live automatic workers: when a worker comes or goes, only the
  partitions it gains or loses move. Partitions named by a live explicit worker are left
  to it.
- An explicit worker (`--partitions 0-3,7`) wants exactly those. If another worker holds
  one of them, it waits for that lease (logging who holds it) and takes it once it is
  released or runs out: two workers never process one partition together, and a new
  worker started before the old one stops takes over cleanly.
- Ownership is an optimisation of the work split, not the guard of correctness: the
  database orders each aggregate's versions (aggregate cursors) and its deliveries (the
  outbox's per-partition-key order), so a batch finished by a worker that just lost its
  partition is still applied in order and never twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from finsync.domain.errors import DomainError, TransientError

log = logging.getLogger(__name__)

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")
SPEC_MAX_CHARS = 4096  # a partition spec comes from a command line


class PartitionSpecError(DomainError):
    """A `--partitions` value that does not name partitions of this cluster."""

    code = "invalid_partitions"


class WorkerNameTakenError(DomainError):
    """Another live worker heartbeats under the name this one was given."""

    code = "worker_name_taken"


def parse_partitions(spec: str, count: int) -> frozenset[int]:
    """The partitions of a spec like `0-3,7` (ranges inclusive), each below `count`."""
    if len(spec) > SPEC_MAX_CHARS:
        raise PartitionSpecError(f"a partition spec is at most {SPEC_MAX_CHARS} characters")
    chosen: set[int] = set()
    for part in spec.split(","):
        found = _RANGE.match(part.strip())
        if found is None:
            raise PartitionSpecError(f"{part.strip()!r} is not a partition nor a range "
                                     "(expected e.g. 0-3,7)")
        first = int(found.group(1))
        last = int(found.group(2)) if found.group(2) is not None else first
        if last < first:
            raise PartitionSpecError(f"range {first}-{last} is empty")
        if last >= count:
            raise PartitionSpecError(f"partition {last} does not exist: there are {count} "
                                     f"(0-{count - 1})")
        chosen.update(range(first, last + 1))
    return frozenset(chosen)


def format_partitions(partitions: Collection[int]) -> str:
    """`parse_partitions`'s inverse: `0-3,7` (empty: `-`)."""
    ordered = sorted(set(partitions))
    if not ordered:
        return "-"
    runs: list[list[int]] = [[ordered[0], ordered[0]]]
    for p in ordered[1:]:
        if p == runs[-1][1] + 1:
            runs[-1][1] = p
        else:
            runs.append([p, p])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _weight(node: str, partition: int) -> int:
    digest = hashlib.blake2b(f"{node}\x1f{partition}".encode("utf-8", "surrogatepass"),
                             digest_size=8).digest()
    return int.from_bytes(digest, "big")


def rendezvous(partition: int, nodes: Iterable[str]) -> str | None:
    """The node of highest weight for `partition` (ties, all but impossible, to the smaller
    name); None without nodes."""
    best: tuple[int, str] | None = None
    for node in nodes:
        key = (_weight(node, partition), node)
        if best is None or key[0] > best[0] or (key[0] == best[0] and node < best[1]):
            best = key
    return None if best is None else best[1]


def assignment(count: int, nodes: Collection[str],
               reserved: Collection[int] = ()) -> dict[int, str]:
    """Each partition (but the `reserved` ones) to its rendezvous node."""
    if not nodes:
        return {}
    return {p: owner for p in range(count) if p not in reserved
            if (owner := rendezvous(p, nodes)) is not None}


class KeyValueEntry(Protocol):
    @property
    def value(self) -> bytes: ...
    @property
    def revision(self) -> int: ...


class NamedEntry(KeyValueEntry, Protocol):
    @property
    def key(self) -> str: ...


class KeyValueStore(Protocol):
    """What leases need of a KV bucket (`streaming.client.KeyValue`)."""

    def get(self, key: str) -> KeyValueEntry | None: ...
    def create(self, key: str, value: bytes) -> int: ...
    def update(self, key: str, value: bytes, last_revision: int) -> int: ...
    def put(self, key: str, value: bytes) -> int: ...
    def delete(self, key: str, last_revision: int | None = None) -> None: ...
    def entries(self) -> Sequence[NamedEntry]: ...


@dataclass(frozen=True, slots=True)
class Node:
    """A live worker as its heartbeat shows it: its explicit partitions, or None; when it
    started (`finsync cluster status` shows its age); and the cluster duties it does not
    take, each with why (`declined`: a worker without the daily job says so)."""

    name: str
    explicit: frozenset[int] | None
    started_at: datetime | None = None
    declined: tuple[tuple[str, str], ...] = ()

    def encode(self) -> bytes:
        chosen = None if self.explicit is None else sorted(self.explicit)
        started = None if self.started_at is None else self.started_at.isoformat()
        return json.dumps({"explicit": chosen, "started_at": started,
                           "declined": dict(self.declined)}).encode()

    @classmethod
    def decode(cls, name: str, data: bytes) -> Node:
        """A heartbeat that does not read counts as an automatic worker's."""
        try:
            read = json.loads(data)
            chosen, started = read.get("explicit"), read.get("started_at")
            declined = read.get("declined")
        except (ValueError, AttributeError):
            chosen = started = declined = None
        started_at = _moment(started)
        if not isinstance(chosen, list) or not all(isinstance(p, int) for p in chosen):
            return cls(name, None, started_at, read_declined(declined))
        return cls(name, frozenset(chosen), started_at, read_declined(declined))


DECLINED_MAX = 16  # duties a heartbeat may name as declined
REASON_MAX_CHARS = 500
# How long a starting worker waits out a transport that does not answer (a new namespace's
# buckets electing their leaders) before it gives up.
JOIN_UNAVAILABLE_S = 60.0


def read_declined(value: object) -> tuple[tuple[str, str], ...]:
    """A heartbeat's declined duties (name, why), in name order; what does not read as
    text is left out, and each text is cut at `REASON_MAX_CHARS`."""
    if not isinstance(value, dict):
        return ()
    found = sorted((duty[:REASON_MAX_CHARS], why[:REASON_MAX_CHARS])
                   for duty, why in value.items() if isinstance(why, str))
    return tuple(found[:DECLINED_MAX])


def _moment(text: object) -> datetime | None:
    """A heartbeat's start, when it reads as a UTC-aware moment (else left out)."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def lease_key(partition: int) -> str:
    return f"p{partition}"


def wanted(me: Node, count: int, nodes: Collection[Node]) -> frozenset[int]:
    """The partitions `me` should own among the live `nodes` (itself included)."""
    if me.explicit is not None:
        return me.explicit
    reserved = {p for n in nodes if n.explicit is not None for p in n.explicit}
    automatic = {n.name for n in nodes if n.explicit is None} | {me.name}
    return frozenset(p for p, owner in assignment(count, automatic, reserved).items()
                     if owner == me.name)


# Raised by a compare-and-set that lost (`KeyExistsError`, `WrongRevisionError` of
# `streaming.client`): given by the caller, so that this module stays testable alone.
Lost = tuple[type[Exception], ...]


class Leases:
    """One worker's heartbeat and partition leases; `tick` every `lease_ttl_s / 3`."""

    def __init__(self, me: Node, count: int, nodes: KeyValueStore, leases: KeyValueStore,
                 lost: Lost, on_change: Callable[[frozenset[int]], None] | None = None, *,
                 ttl_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.me, self.count = me, count
        self._nodes, self._leases, self._lost = nodes, leases, lost
        self._on_change = on_change
        # A round that fails (the transport unreachable) renews nothing: once `ttl_s` has
        # passed since the start of the last round that succeeded, the leases may have run
        # out and been taken, so nothing counts as owned (`current`) until a round succeeds.
        self._ttl_s, self._clock = ttl_s, clock
        self._confirmed_at: float | None = None
        self._held: dict[int, int] = {}  # partition -> revision of our lease
        self._lock = threading.Lock()
        self.owned: frozenset[int] = frozenset()  # a snapshot, read by other threads
        self.waiting: dict[int, str] = {}  # wanted partitions held by another: by whom

    def tick(self) -> frozenset[int]:
        """Heartbeat, renew, release what is no longer wanted, take what is wanted and
        free; returns the partitions owned now."""
        with self._lock:
            started = self._clock()
            self._nodes.put(self.me.name, self.me.encode())
            want = wanted(self.me, self.count, self._live())
            for partition in sorted(self._held):
                if partition in want:
                    self._renew(partition)
                else:
                    self._release(partition)
            before, self.waiting = self.waiting, {}
            for partition in sorted(want - set(self._held)):
                self._take(partition)
            if self.waiting and self.waiting != before:
                log.warning("%s waits for partitions held by others: %s", self.me.name,
                            holders(self.waiting))
            self._publish()
            self._confirmed_at = started
            return self.owned

    def current(self) -> frozenset[int]:
        """The partitions owned, as long as the last successful round is recent enough
        that none of their leases can have run out; else none."""
        confirmed = self._confirmed_at
        if self._ttl_s is not None and (confirmed is None
                                        or self._clock() - confirmed >= self._ttl_s):
            return frozenset()
        return self.owned

    def owns(self, partition: int) -> bool:
        return partition in self.current()

    def lose(self, partition: int) -> None:
        """Drop a partition now (its lease was found taken by another worker)."""
        with self._lock:
            self._held.pop(partition, None)
            self._publish()

    def join(self, wait_s: float, sleep: Callable[[float], None] = time.sleep,
             poll_s: float = 0.5, unavailable_s: float = JOIN_UNAVAILABLE_S) -> None:
        """Before the first round: a live heartbeat under this worker's name means another
        process runs under it (two would share leases they each think their own), or this
        one's predecessor was killed moments ago. Waits `wait_s` at most for it to run
        out, else `WorkerNameTakenError`; and `unavailable_s` at most for a transport
        that does not answer (a transient error: a bucket just made has no leader yet)."""
        waited = unavailable = 0.0
        while True:
            try:
                if self._nodes.get(self.me.name) is None:
                    return
            except TransientError as exc:
                if unavailable >= unavailable_s:
                    raise
                log.info("%s: waiting for the transport: %s", self.me.name, exc)
                sleep(poll_s)
                unavailable += poll_s
                continue
            if waited >= wait_s:
                raise WorkerNameTakenError(
                    f"a worker named {self.me.name!r} is running (its heartbeat in the "
                    f"cluster is live): give this one another --name")
            sleep(poll_s)
            waited += poll_s

    def release_all(self) -> None:
        """A clean stop: every lease released, the heartbeat removed."""
        with self._lock:
            for partition in sorted(self._held):
                self._release(partition)
            self._publish()
            self._nodes.delete(self.me.name)

    def _live(self) -> list[Node]:
        return [Node.decode(entry.key, entry.value) for entry in self._nodes.entries()
                if entry.value]

    def _renew(self, partition: int) -> None:
        try:
            self._held[partition] = self._leases.update(
                lease_key(partition), self.me.name.encode(), self._held[partition])
        except self._lost:
            log.warning("%s lost partition %d: another worker holds its lease now",
                        self.me.name, partition)
            del self._held[partition]

    def _release(self, partition: int) -> None:
        revision = self._held.pop(partition)
        with contextlib.suppress(*self._lost):  # taken by another: nothing to give back
            self._leases.delete(lease_key(partition), revision)

    def _take(self, partition: int) -> None:
        key = lease_key(partition)
        entry = self._leases.get(key)
        try:
            if entry is None:
                self._held[partition] = self._leases.create(key, self.me.name.encode())
            else:  # held, even under our own name (another process, or ours before a
                # restart): it runs out by itself if nobody renews it
                self.waiting[partition] = entry.value.decode("utf-8", "replace")
        except self._lost:
            self.waiting[partition] = "another worker"

    def _publish(self) -> None:
        before, self.owned = self.owned, frozenset(self._held)
        if self.owned != before:
            log.info("%s owns partitions %s", self.me.name, format_partitions(self.owned))
            if self._on_change is not None:
                self._on_change(self.owned)


def holders(leases: Mapping[int, str]) -> str:
    """`p3 by w-a, p7 by w-b`: who holds the partitions a worker waits for."""
    return ", ".join(f"p{p} by {who}" for p, who in sorted(leases.items()))
