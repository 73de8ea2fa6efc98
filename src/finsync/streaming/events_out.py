"""Events out: the relay that publishes accepted canonical events and milestones from the
database to JetStream (stream `<NS>_OUT`) for downstream consumers (a data warehouse,
alerting: `docs/events-out.md`).

Rules:
- One relay publishes at a time, cluster-wide: whoever holds the key `relay` of the KV
  bucket `<ns>_leases` (created with its revision, renewed by revision before each pass,
  gone `lease_ttl_s` after its holder stops renewing it). Every worker may run one; the
  others wait. Two holders at once (a relay that stalled past its lease) publish the same
  message ids and move the cursor only from where they read it: nothing doubles, nothing
  goes back.
- A pass reads the log beyond its cursor (events by position, milestones by id) up to the
  safe end (`gap_watch`: never past a number whose transaction may still commit), publishes
  and waits for every PubAck, and only then moves the cursor, in one transaction with its
  waiting list. A crash between the two publishes the same messages again: JetStream keeps
  one per message id (event id, `milestone:<id>`).
- An event that is not accepted when the relay reaches it is not published. If it may still
  be (parked, overdue, or a changed body finance may choose: `relay_log`), the relay keeps
  its position in its waiting list and publishes it the pass it is accepted.
- Order: events in position order, except that one aggregate's events go out in version
  order (a parked version accepted later is published after the versions it waited for; an
  accepted event whose lower version lies beyond the pass's end waits for it). Milestones in
  id order. The two logs are independent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from finsync.domain.clock import utc_now
from finsync.domain.status import EventStatus
from finsync.storage import relay_log
from finsync.storage.db import reading, transaction
from finsync.storage.relay_log import EventRow, Log
from finsync.streaming.client import JetStream
from finsync.streaming.gap_watch import GapWatch
from finsync.streaming.out_message import event_message, milestone_message
from finsync.streaming.settings import TransportSettings
from finsync.streaming.singleton import LEASES, RELAY, SingletonLease

log = logging.getLogger(__name__)

LEASE_KEY = RELAY


@dataclass(frozen=True, slots=True)
class RelaySettings:
    batch: int = 500  # rows read per log and pass
    settle_s: float = 1.0  # how long a missing position waits before its writers are noted
    idle_s: float = 0.25  # pause between passes that found nothing


@dataclass(frozen=True, slots=True)
class PassResult:
    """What one pass did: published counts, and whether it held the lease."""

    leader: bool
    events: int = 0
    milestones: int = 0

    @property
    def published(self) -> int:
        return self.events + self.milestones


class EventsOut:
    """The relay of one namespace; `run_once` is one pass, `run` passes until stopped. In a
    supervised worker thread: `step` (what it published) each round, `release` at a clean
    stop."""

    def __init__(self, engine: Engine, js: JetStream, settings: TransportSettings, name: str,
                 relay: RelaySettings | None = None,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self._engine = engine
        self._js = js
        self._ns = settings.namespace
        self._relay = relay or RelaySettings()
        self._clock = clock
        self._lease = SingletonLease(
            js.kv(settings.bucket(LEASES), ttl_s=settings.lease_ttl_s), LEASE_KEY, name)
        self._gaps = {log_: GapWatch(self._relay.settle_s) for log_ in Log}
        self._started = False

    def run(self, stop: threading.Event) -> None:
        """Pass until `stop` is set; a failed pass (database or JetStream down) is logged
        and tried again after a pause: the cursor is where the last good pass left it."""
        try:
            while not stop.is_set():
                try:
                    result = self.run_once()
                except Exception:  # one pass failed; the next starts from the cursor
                    log.exception("events out: pass failed")
                    result = PassResult(leader=False)
                if not result.published:
                    stop.wait(self._relay.idle_s)
        finally:
            self.release()

    def step(self) -> int:
        """One pass; the messages it published (0 while another relay holds the lease)."""
        return self.run_once().published

    def release(self) -> None:
        """A clean stop: the lease goes, so another worker's relay takes over at once."""
        self._lease.release()

    def run_once(self) -> PassResult:
        if not self._lease.hold():
            return PassResult(leader=False)
        if not self._started:
            with transaction(self._engine) as conn:
                relay_log.start(conn, self._ns, self._clock())
            self._started = True
        return PassResult(True, self._events_pass(), self._milestones_pass())

    def _events_pass(self) -> int:
        with reading(self._engine) as conn:
            writers = relay_log.running_writers(conn)
            read = relay_log.cursor(conn, self._ns, Log.EVENTS)
            rows = relay_log.events_after(conn, read, self._relay.batch)
            end = self._gaps[Log.EVENTS].safe_end(read, [r.position for r in rows], writers)
            fresh = [r for r in rows if r.position <= end]
            waited = relay_log.events_at(conn, relay_log.waiting(conn, self._ns))
            pending = [r for r in [*waited, *fresh] if r.status != EventStatus.ACCEPTED]
            keep = relay_log.may_still_be_accepted(conn, pending)
            accepted = [r for r in [*waited, *fresh] if r.status == EventStatus.ACCEPTED]
            held = relay_log.waiting_for_earlier(conn, accepted, end)
            replaces = relay_log.replaced(conn, [r.event_id for r in accepted])
        out = in_version_order(r for r in accepted if r.position not in held)
        waited_at = {r.position for r in waited}
        still = keep | held
        if end == read and not out and still == waited_at:
            return 0
        self._js.publish_many([event_message(self._ns, r, replaces.get(r.event_id))
                               for r in out])
        with transaction(self._engine) as conn:
            if not relay_log.advance(conn, self._ns, Log.EVENTS, read, end, self._clock()):
                return 0  # another relay moved on meanwhile: its pass recorded ours too
            relay_log.wait_for(conn, self._ns, sorted(still - waited_at), self._clock())
            relay_log.stop_waiting(conn, self._ns, waited_at - still)
        return len(out)

    def _milestones_pass(self) -> int:
        with reading(self._engine) as conn:
            writers = relay_log.running_writers(conn)
            read = relay_log.cursor(conn, self._ns, Log.MILESTONES)
            rows = relay_log.milestones_after(conn, read, self._relay.batch)
        end = self._gaps[Log.MILESTONES].safe_end(read, [r.id for r in rows], writers)
        out = [r for r in rows if r.id <= end]
        if not out:
            return 0
        self._js.publish_many([milestone_message(self._ns, r) for r in out])
        with transaction(self._engine) as conn:
            if not relay_log.advance(conn, self._ns, Log.MILESTONES, read, end, self._clock()):
                return 0
        return len(out)


def in_version_order(rows: Iterable[EventRow]) -> list[EventRow]:
    """`rows` by position, each aggregate's versions then put in version order within the
    places its rows hold (an aggregate's v3 parked at position 5 and released by its v2 at
    position 9 goes out at 9, v2 at 5)."""
    ordered = sorted(rows, key=lambda r: r.position)
    places: dict[tuple[str, str], list[int]] = {}
    for index, row in enumerate(ordered):
        if row.aggregate_version is not None:
            places.setdefault((row.aggregate_type, row.aggregate_id), []).append(index)
    result = list(ordered)
    for indexes in places.values():
        by_version = sorted((ordered[i] for i in indexes), key=_version)
        for index, row in zip(indexes, by_version, strict=True):
            result[index] = row
    return result


def _version(row: EventRow) -> int:
    assert row.aggregate_version is not None  # only versioned rows are placed
    return row.aggregate_version
