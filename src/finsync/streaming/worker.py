"""The partitioned worker: the events of the partitions it owns into the database, and the
deliveries of those partitions out.

Rules:
- Partitions are owned through leases (`streaming.ownership`), renewed every
  `lease_ttl_s / 3` by a thread of their own. A partition gained starts its consumer loop;
  a partition lost stops it before its next fetch.
- Each owned partition `N` reads the durable pull consumer `p<N>` on `<NS>_EVENTS`
  (filter `<ns>.events.*.<N>`), shared by whichever worker owns `N`. A fetched batch (at
  most `BATCH_MAX` messages, one raw event each) is accepted by the hub in one transaction
  (`Processor.accept_stored`: de-duplication, version order by the aggregate cursors, the
  outbox, a tracking row per raw event), and each message is acked after the commit.
- A message whose envelopes do not read is accepted all the same: the hub maps its raw
  event again from the stored body, and rejects or quarantines it there. A message without
  a raw event id (`Finsync-Raw-Id`) was not written by the archiver: it cannot be tied to
  anything stored, so it is logged as an error and terminated; the batch goes on. One
  naming a raw event the database does not hold is logged and handed back, never acked.
- The database failing fails the batch: every message is handed back (`nak`) with a delay
  that doubles with its deliveries (`RETRY_BASE_S` up to `RETRY_MAX_S`); nothing is acked.
- A batch fetched by a worker that loses the partition meanwhile is handed back at once
  (`nak` without delay), unless it is already in the database's hands: then it finishes.
  Both are safe, because acceptance is idempotent (the tracking rows) and ordered by the
  database, whichever worker owns what: each batch holds the locks of its aggregates, so
  partitions are accepted at the same time and one aggregate's versions one at a time.
- Deliveries: the hub's delivery worker and posting buffers claim only the deliveries of
  the owned partitions (`DeliveryWorker.restrict`), in a thread woken after each batch.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from finsync.domain.envelope import Envelope
from finsync.hub.pipeline import PipelineWorker, describe
from finsync.hub.processor import Stored
from finsync.hub.service import Hub
from finsync.storage import raw_log
from finsync.storage.db import reading
from finsync.storage.outbox import Owned
from finsync.streaming import subjects
from finsync.streaming.client import (
    Consumer,
    Incoming,
    JetStream,
    KeyExistsError,
    WrongRevisionError,
)
from finsync.streaming.event_message import RAW_ID, decode_envelopes
from finsync.streaming.ownership import Leases, Node
from finsync.streaming.settings import TransportSettings
from finsync.streaming.singleton import SingletonLease

log = logging.getLogger(__name__)

BATCH_MAX = 500
FETCH_WAIT_S = 1.0
RETRY_BASE_S = 1.0
RETRY_MAX_S = 60.0
EVENTS = "events"  # the stream suffix (`streaming.setup`)
_RAW_ID = re.compile(r"[0-9]{1,18}")  # ASCII digits only (`str.isdigit` takes `²`), in a BIGINT


def durable(partition: int) -> str:
    """The durable consumer of partition `partition`, shared by its successive owners."""
    return f"p{partition}"


def retry_delay_s(num_delivered: int) -> float:
    """How long a message handed back after its `num_delivered`-th delivery waits."""
    doublings = min(max(num_delivered - 1, 0), 30)
    return min(RETRY_BASE_S * 2.0 ** doublings, RETRY_MAX_S)


def raw_id_of(message: Incoming) -> int | None:
    """The raw event a message carries the envelopes of; None when it names none."""
    text = message.headers.get(RAW_ID, "")
    return int(text) if _RAW_ID.fullmatch(text) else None


def read(message: Incoming) -> Sequence[Envelope] | None:
    """The message's envelopes; None when they do not read (mapped again from the body)."""
    try:
        return decode_envelopes(message.data)
    except Exception as exc:
        log.warning("event message %s does not read (%s): its raw event is mapped again "
                    "from the stored body", message.stream_seq, describe(exc))
        return None


@dataclass(slots=True)
class BatchOutcome:
    """What one fetch did: messages acked, handed back, terminated; the hub's outcomes."""

    acked: int = 0
    handed_back: int = 0
    terminated: int = 0
    outcomes: Counter[str] | None = None


class PartitionConsumer:
    """One partition's loop: fetch, accept, ack."""

    def __init__(self, partition: int, consumer: Consumer, hub: Hub,
                 owns: Callable[[int], bool], on_accepted: Callable[[], None]) -> None:
        self.partition, self._consumer, self._hub = partition, consumer, hub
        self._owns, self._on_accepted = owns, on_accepted

    def step(self, progressed: Callable[[], None]) -> int:
        """One fetch and its batch (a `PipelineWorker` step); returns messages settled."""
        if not self._owns(self.partition):
            return 0
        messages = self._consumer.fetch(BATCH_MAX, FETCH_WAIT_S)
        if not messages:
            return 0
        done = self.accept(messages)
        progressed()
        return done.acked + done.terminated

    def accept(self, messages: Sequence[Incoming]) -> BatchOutcome:
        done = BatchOutcome()
        if not self._owns(self.partition):  # lost while fetching: the new owner takes them
            _hand_back(messages, at_once=True)
            done.handed_back = len(messages)
            return done
        items: list[Stored] = []
        carried: list[Incoming] = []
        for message in messages:
            raw_id = raw_id_of(message)
            if raw_id is None:
                log.error("event message %s on %s names no raw event (header %s): not "
                          "written by the archiver; terminated", message.stream_seq,
                          message.subject, RAW_ID)
                message.term()
                done.terminated += 1
                continue
            items.append((raw_id, read(message)))
            carried.append(message)
        if not items:
            return done
        try:
            done.outcomes = self._hub.processor.accept_stored(items)
        except Exception as exc:  # the database: the batch is done again later
            log.warning("partition %d: a batch of %d event messages failed (%s); handed "
                        "back", self.partition, len(carried), describe(exc))
            _hand_back(carried, at_once=False)
            done.handed_back = len(carried)
            raise
        self._settle(carried, done)
        return done

    def _settle(self, carried: Sequence[Incoming], done: BatchOutcome) -> None:
        """Ack what the commit decided. A message naming a raw event the database does not
        hold (a database restored from an older backup, another database) is never acked:
        it comes back every `RETRY_MAX_S`, counted among the redeliveries, until someone
        stores its raw event."""
        outcomes = done.outcomes or Counter()
        kept = carried
        if outcomes["missing"]:
            kept = self._hold_missing(carried, done)
        self._consumer.ack_all(kept)  # one trip to the client's loop for the batch
        done.acked = len(kept)
        if outcomes["accepted"] or outcomes["raw"]:
            self._on_accepted()

    def _hold_missing(self, carried: Sequence[Incoming], done: BatchOutcome) -> list[Incoming]:
        with reading(self._hub.engine) as conn:
            known = raw_log.existing(conn, [raw_id_of(m) or 0 for m in carried])
        missing = [m for m in carried if raw_id_of(m) not in known]
        log.error("partition %d: %d event message(s) name raw events the database does not "
                  "hold (%s): handed back, retried every %.0f s", self.partition, len(missing),
                  ", ".join(m.headers.get(RAW_ID, "") for m in missing[:10]), RETRY_MAX_S)
        for message in missing:
            message.nak(RETRY_MAX_S)
        done.handed_back += len(missing)
        return [m for m in carried if raw_id_of(m) in known]


def _hand_back(messages: Sequence[Incoming], *, at_once: bool) -> None:
    for message in messages:
        try:
            message.nak(None if at_once else retry_delay_s(message.num_delivered))
        except Exception as exc:  # a lost nak: the ack wait delivers it again anyway
            log.warning("nak of %s failed: %s", message.stream_seq, describe(exc))


class PartitionedWorker:
    """Leases, one consumer loop per owned partition, and deliveries of those partitions.

    `threads` lists the pipeline threads a supervisor starts and checks; partition loops
    come and go with ownership (`on_change`)."""

    def __init__(self, js: JetStream, settings: TransportSettings, leases: Leases,
                 hub: Hub, make_thread: Callable[[str, Callable[..., int]],
                                                             PipelineWorker],
                 wake_delivery: Callable[[], None]) -> None:
        self._js, self._settings, self._leases = js, settings, leases
        self._hub, self._make_thread = hub, make_thread
        self._wake_delivery = wake_delivery
        self._lock = threading.Lock()
        self._loops: dict[int, PipelineWorker] = {}
        self._stopping = False

    def owned(self) -> Owned:
        """The partitions owned now, as the outbox's claim takes them."""
        return (self._settings.partitions, self._leases.current())

    def tick(self, progressed: Callable[[], None]) -> int:
        """One lease round (a `PipelineWorker` step), then the loops brought in line."""
        before = self._leases.owned
        owned = self._leases.tick()
        self.sync(owned)
        return len(owned ^ before)

    def sync(self, owned: frozenset[int]) -> None:
        """Start the loops of partitions gained, stop those of partitions lost."""
        with self._lock:
            if self._stopping:
                return
            for partition in sorted(set(self._loops) - owned):
                self._loops.pop(partition).stop()
            for partition in sorted(owned - set(self._loops)):
                self._loops[partition] = self._start(partition)

    def _start(self, partition: int) -> PipelineWorker:
        ns = self._settings.namespace
        consumer = self._js.consumer(self._settings.stream(EVENTS), durable(partition),
                                     subjects.partition_filter(ns, partition),
                                     ack_wait_s=self._settings.ack_wait_s)
        loop = PartitionConsumer(partition, consumer, self._hub, self._leases.owns,
                                 self._wake_delivery)
        thread = self._make_thread(f"finsync-p{partition}", loop.step)
        thread.start()
        return thread

    def loops(self) -> dict[int, PipelineWorker]:
        with self._lock:
            return dict(self._loops)

    def check(self) -> list[str]:
        """Start again any partition loop whose thread died; returns their names."""
        restarted: list[str] = []
        for thread in self.loops().values():
            if thread.dead:
                thread.start()
                restarted.append(thread.name)
        return restarted

    def stop(self, timeout_s: float) -> None:
        """Stop every loop (each finishes its batch), then release every lease."""
        with self._lock:
            self._stopping = True
            loops = list(self._loops.values())
            self._loops.clear()
        for thread in loops:
            thread.stop()
        for thread in loops:
            thread.join(timeout_s)
        self._leases.release_all()


LEASES, DELIVERY, HOUSEKEEPING, ARCHIVER, RELAY = (
    "finsync-leases", "finsync-delivery", "finsync-housekeeping", "finsync-archiver",
    "finsync-events-out")
RELAY_IDLE_S = 0.25  # the events-out relay's pause between passes
LOOP_INTERVAL_S = 0.05  # a loop's pause between fetches (each fetch waits FETCH_WAIT_S)
DELIVERY_INTERVAL_S = 1.0  # deliveries are looked at least this often (retries falling due)
HOUSEKEEPING_S = 5.0
STOP_WAIT_S = 30.0


class Relay(Protocol):
    """The events-out relay (`streaming.events_out.EventsOut`): one pass, and its lease
    given back on a clean stop."""

    def step(self) -> int: ...
    def release(self) -> None: ...


Step = Callable[[Callable[[], None]], int]


class WorkerNode:
    """A `finsync worker` process's threads: leases, partition loops, deliveries of the
    owned partitions, overdue gaps, the archiver (`archive`: a step) and the events-out
    relay (`relay`), when given; and the cluster's duties (`duties`: each name is what one
    process of the cluster does at a time, in a thread of that name holding the lease of
    that name, every `duty_interval_s[name]` (default `LOOP_INTERVAL_S`), never less often
    than `lease_ttl_s / 3`, which renews the lease): raw events stored straight in the
    database (signed webhooks, source pumps) accepted by the hub's own processor, usage
    totals handed to billing, the daily job. Each step of a duty runs even when another
    failed; the first failure is raised afterwards (the thread backs off). The duties it does
    not take (`declined`: name and why) are in its heartbeat, for `finsync cluster status`."""

    def __init__(self, hub: Hub, js: JetStream, settings: TransportSettings, name: str,
                 explicit: frozenset[int] | None,
                 archive: Callable[[], int] | None = None,
                 relay: Relay | None = None,
                 duties: Mapping[str, Sequence[Step]] | None = None,
                 duty_interval_s: Mapping[str, float] | None = None,
                 declined: Mapping[str, str] | None = None) -> None:
        self.name, self.hub, self._ttl_s = name, hub, settings.lease_ttl_s
        nodes = js.kv(settings.bucket("nodes"), ttl_s=settings.lease_ttl_s)
        buckets = js.kv(settings.bucket("leases"), ttl_s=settings.lease_ttl_s)
        me = Node(name, explicit, hub.clock(), tuple(sorted((declined or {}).items())))
        self.leases = Leases(me, settings.partitions, nodes, buckets,
                             (KeyExistsError, WrongRevisionError), ttl_s=settings.lease_ttl_s)
        self.delivery = self._thread(DELIVERY, self._deliver, DELIVERY_INTERVAL_S)
        self.partitions = PartitionedWorker(
            js, settings, self.leases, hub,
            lambda thread, step: self._thread(thread, step, LOOP_INTERVAL_S),
            self.delivery.wake)
        hub.worker.restrict(self.partitions.owned)
        # A failed round is retried at the same pace, never backed off past the leases.
        self._renewal = self._thread(LEASES, self.partitions.tick, settings.lease_ttl_s / 3,
                                     backoff_max_s=settings.lease_ttl_s / 3)
        threads = [self._renewal, self.delivery,
                   self._thread(HOUSEKEEPING, self._housekeeping, HOUSEKEEPING_S)]
        if archive is not None:
            threads.append(self._thread(ARCHIVER, lambda _progressed: archive(),
                                        LOOP_INTERVAL_S))
        self._duties = [SingletonLease(buckets, duty, name) for duty in duties or {}]
        paces_s = duty_interval_s or {}
        threads += [self._thread(lease.key, self._duty(lease, steps), min(
                        paces_s.get(lease.key, LOOP_INTERVAL_S), settings.lease_ttl_s / 3))
                    for lease, steps in zip(self._duties, (duties or {}).values(), strict=True)]
        self._relay = relay
        if relay is not None:
            threads.append(self._thread(RELAY, lambda _progressed: relay.step(), RELAY_IDLE_S))
        self.threads = tuple(threads)

    def _thread(self, name: str, step: Callable[..., int], interval_s: float, *,
                backoff_max_s: float = 60.0) -> PipelineWorker:
        return PipelineWorker(name, step, self.hub.clock, interval_s,
                              backoff_max_s=backoff_max_s)

    @staticmethod
    def _duty(lease: SingletonLease, steps: Sequence[Step]) -> Step:
        def step(progressed: Callable[[], None]) -> int:
            if not lease.hold():
                return 0
            done = 0
            failures: list[Exception] = []
            for duty in steps:
                try:
                    done += duty(progressed)
                except Exception as exc:  # re-raised below, after the other steps
                    failures.append(exc)
            if failures:
                raise failures[0]
            return done
        return step

    def _deliver(self, progressed: Callable[[], None]) -> int:
        """Deliveries of the owned partitions until none is due (one round at least)."""
        total = 0
        while sent := self.hub.deliver_once():
            total += sent
            progressed()
        return total

    def _housekeeping(self, progressed: Callable[[], None]) -> int:
        """Parked events overdue get their exception (and remapped raw events resolve
        theirs), as `Hub.run_until_idle` does when intake runs dry."""
        flagged = self.hub.processor.flag_overdue()
        return flagged + self.hub.processor.resolve_remapped()

    def start(self) -> None:
        """The first lease round runs before the threads start: the loops of the
        partitions taken at once are up when `start` returns. A live worker of the same
        name is waited for (`lease_ttl_s` and a round), then refused."""
        self.leases.join(self._ttl_s * 4 / 3)
        self.partitions.tick(lambda: None)
        for thread in self.threads:
            thread.start()

    def check(self) -> list[str]:
        """Start again every dead thread; returns their names."""
        restarted = [t.name for t in self.threads if t.dead]
        for thread in self.threads:
            if thread.dead:
                thread.start()
        return restarted + self.partitions.check()

    def stop(self, timeout_s: float = STOP_WAIT_S) -> None:
        """A clean stop: leases stop being renewed, the partition loops finish their batch,
        the leases are released (the others take over at their next round), and the
        delivery round in progress ends."""
        for thread in self.threads:
            thread.stop()
        self._renewal.join(timeout_s)  # no lease round may take a lease after the release
        self.partitions.stop(timeout_s)
        for thread in self.threads:
            thread.join(timeout_s)
        for lease in self._duties:
            lease.release()
        if self._relay is not None:
            self._relay.release()
