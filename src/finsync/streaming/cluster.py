"""What the cluster looks like now (`finsync cluster status`, the cluster's Prometheus
metrics): one computation, `survey`, read from JetStream and the database.

Rules:
- Nodes are the keys of `<ns>_nodes` (a worker's name, renewed while it lives, gone a lease
  TTL after it stops). Owners are the values of the `p<N>` keys of `<ns>_leases` (a worker's
  name, UTF-8; `streaming.ownership`), the holder of each singleton lease (`relay`,
  `duties`, `daily`: `streaming.singleton.SINGLETONS`) the value of its key, every one
  listed, held or not. What a node owns is read from the leases, which decide it, not from
  its heartbeat; the heartbeat's value (JSON) may add the partitions it was told to take
  (`explicit`), when it started (`started_at`) and the duties it does not take, with why
  (`declined`: a worker without the daily job).
- Everything is read defensively: a heartbeat value that does not parse adds nothing (not a
  guess), a lease held by a name with no heartbeat is still shown as its owner, and a
  consumer not made yet is reported as absent (its lag unknown), never as zero. JetStream
  unreachable is an error (`TransportUnavailableError`), not an empty cluster.
- Lag is what a consumer has not been handed yet plus what it holds unacknowledged; the
  relay's is the accepted events and the milestones beyond its cursors.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from finsync.domain.clock import parse_utc, utc_now
from finsync.domain.errors import FinsyncError
from finsync.storage import relay_log
from finsync.storage.db import reading
from finsync.streaming.client import ConsumerLag, JetStream, KeyValue, TransportRefusedError
from finsync.streaming.ownership import read_declined
from finsync.streaming.settings import TransportSettings
from finsync.streaming.singleton import LEASES, RELAY, SINGLETONS

ARCHIVER = "archiver"
NODES = "nodes"


def partition_key(partition: int) -> str:
    return f"p{partition}"


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    started_at: datetime | None
    partitions: tuple[int, ...]  # the partitions whose lease it holds
    explicit: tuple[int, ...] | None  # the partitions it was told to take; None: automatic
    declined: tuple[tuple[str, str], ...] = ()  # duties it does not take, and why

    def up_s(self, now: datetime) -> float | None:
        return None if self.started_at is None else (now - self.started_at).total_seconds()


@dataclass(frozen=True, slots=True)
class Lag:
    """A durable consumer's backlog: not yet handed out, handed and unacknowledged, and
    messages handed out more than once (redeliveries) since it was made."""

    pending: int
    ack_pending: int
    redelivered: int

    @property
    def behind(self) -> int:
        return self.pending + self.ack_pending

    def as_json(self) -> dict[str, int]:
        return {"pending": self.pending, "ack_pending": self.ack_pending,
                "redelivered": self.redelivered, "behind": self.behind}


@dataclass(frozen=True, slots=True)
class Partition:
    number: int
    owner: str | None
    lag: Lag | None  # None: its consumer `p<N>` is not made yet


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    namespace: str
    measured_at: datetime
    nodes: tuple[Node, ...]
    partitions: tuple[Partition, ...]
    archiver: Lag | None
    relay_behind: int  # accepted events and milestones not yet published
    holders: tuple[tuple[str, str | None], ...]  # each singleton lease and its holder

    @property
    def unowned(self) -> tuple[int, ...]:
        return tuple(p.number for p in self.partitions if p.owner is None)

    @property
    def relay_owner(self) -> str | None:
        return dict(self.holders).get(RELAY)

    def declining(self, duty: str) -> tuple[Node, ...]:
        """The live workers that do not take `duty`."""
        return tuple(n for n in self.nodes if duty in dict(n.declined))

    def as_json(self) -> dict[str, Any]:
        now = self.measured_at
        return {
            "namespace": self.namespace,
            "measured_at": now.isoformat(),
            "nodes": [{"name": n.name, "partitions": list(n.partitions),
                       "explicit": None if n.explicit is None else list(n.explicit),
                       "started_at": None if n.started_at is None else n.started_at.isoformat(),
                       "up_s": n.up_s(now), "declined": dict(n.declined)}
                      for n in self.nodes],
            "partitions": [{"partition": p.number, "owner": p.owner,
                            "lag": None if p.lag is None else p.lag.as_json()}
                           for p in self.partitions],
            "unowned": list(self.unowned),
            "archiver": None if self.archiver is None else self.archiver.as_json(),
            "events_out": {"owner": self.relay_owner, "behind": self.relay_behind},
            "singletons": dict(self.holders),
        }


def survey(js: JetStream, engine: Engine, settings: TransportSettings,
           clock: Callable[[], datetime] = utc_now) -> ClusterStatus:
    ns = settings.namespace
    nodes_kv = js.kv(settings.bucket(NODES), ttl_s=settings.lease_ttl_s)
    leases_kv = js.kv(settings.bucket(LEASES), ttl_s=settings.lease_ttl_s)
    events = settings.stream("EVENTS")
    partitions = tuple(
        Partition(p, _text(_value(leases_kv, partition_key(p))),
                  _lag(js, events, partition_key(p)))
        for p in range(settings.partitions))
    owned: dict[str, list[int]] = {}
    for partition in partitions:
        if partition.owner is not None:
            owned.setdefault(partition.owner, []).append(partition.number)
    nodes = tuple(_node(entry.key, entry.value, tuple(owned.get(entry.key, ())))
                  for entry in nodes_kv.entries())
    with reading(engine) as conn:
        behind = relay_log.accepted_behind(conn, ns)
    holders = tuple((key, _text(_value(leases_kv, key))) for key in SINGLETONS)
    return ClusterStatus(ns, clock(), nodes, partitions,
                         _lag(js, settings.stream("RAW"), ARCHIVER), behind, holders)


def _value(kv: KeyValue, key: str) -> bytes | None:
    entry = kv.get(key)
    return None if entry is None else entry.value


def _text(value: bytes | None) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", errors="replace")


def _node(name: str, value: bytes | None, owned: tuple[int, ...]) -> Node:
    """A node's heartbeat; what does not read is left out, not guessed."""
    try:
        data = json.loads(value or b"")
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return Node(name, None, owned, None)
    started = data.get("started_at")
    try:
        started_at = parse_utc(started) if isinstance(started, str) else None
    except FinsyncError:
        started_at = None
    return Node(name, started_at, owned, _numbers(data.get("explicit")),
                read_declined(data.get("declined")))


def _numbers(value: object) -> tuple[int, ...] | None:
    if not isinstance(value, list):
        return None
    return tuple(sorted(p for p in value if isinstance(p, int) and not isinstance(p, bool)))


def _lag(js: JetStream, stream: str, durable: str) -> Lag | None:
    try:
        found: ConsumerLag = js.consumer_lag(stream, durable)
    except TransportRefusedError:  # not made yet (or its stream not)
        return None
    return Lag(found.num_pending, found.num_ack_pending, found.num_redelivered)
