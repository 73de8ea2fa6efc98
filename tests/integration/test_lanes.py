"""ERP lanes (issue 20): deliveries to an ERP go out per (target, legal entity), so a slow or
closed entity holds back no other; and two worker processes (two buffers on one database)
spend one posting budget. On SQLite and PostgreSQL; time is a clock we step, except where
a call is held on a real thread."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select, update

from finsync.connectors.embedded.ledger import EmbeddedLedger
from finsync.connectors.ports import LedgerPort, Posting, Receipt
from finsync.domain.errors import FinsyncError, TransientError
from finsync.domain.events import InvoiceIssued
from finsync.domain.journal import PeriodStatus
from finsync.hub.budget import Grant, Limit, Limits, PostingBudget
from finsync.hub.buffer import BufferPolicy, PostingBuffer
from finsync.hub.delivery import DeliveryWorker
from finsync.hub.service import Hub
from finsync.hub.target import ledger_target
from finsync.storage import outbox
from finsync.storage.db import reading, transaction
from finsync.storage.schema import deliveries
from tests.bufferkit import RecordingLedger, buffered_hub, drain, event, statuses
from tests.hubkit import Clock, ingest
from tests.ledgerkit import invoice, ledger_service

CURRENCY = {"le_us": "USD", "le_eu": "EUR", "le_uk": "GBP", "le_jp": "JPY"}


def _invoices(n: int, entities: Sequence[str], prefix: str = "inv") -> list[bytes]:
    return [event(InvoiceIssued(invoice(
        f"{prefix}_{i}", ["100"], currency=CURRENCY[entities[i % len(entities)]],
        entity=entities[i % len(entities)])), 1) for i in range(n)]


def _lanes(engine: Engine) -> dict[str | None, dict[str, int]]:
    """Per lane, how many deliveries have each status."""
    found: dict[str | None, dict[str, int]] = {}
    with reading(engine) as conn:
        for lane, status, n in conn.execute(
                select(deliveries.c.lane, deliveries.c.status, func.count())
                .group_by(deliveries.c.lane, deliveries.c.status)):
            found.setdefault(lane, {})[status] = n
    return found


def _until(done: Callable[[], bool], what: str, limit_s: float = 60) -> None:
    """Wait for another thread's work (a bound, so that a broken build fails, not hangs)."""
    end = time.monotonic() + limit_s
    while not done():
        if time.monotonic() > end:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.01)


class HeldLedger:
    """The embedded ledger, whose calls for one legal entity wait until a gate opens: a
    double of timing (an ERP slow for that entity), not of behaviour."""

    def __init__(self, inner: EmbeddedLedger, entity: str, gate: threading.Event) -> None:
        self._inner, self._entity, self._gate = inner, entity, gate
        self.max_batch = inner.max_batch
        self.held = threading.Event()  # a call for the entity is waiting at the gate

    def post_batch(self, postings: Sequence[Posting]) -> Sequence[Receipt | FinsyncError]:
        if any(p.event.document.legal_entity == self._entity for p in postings):
            self.held.set()
            self._gate.wait(120)
        return self._inner.post_batch(postings)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _other_process(engine: Engine, hub: Hub, port: LedgerPort, policy: BufferPolicy,
                   clock: Clock, owner: str = "worker-2") -> PostingBuffer:
    """A second worker process's buffer for the same ERP: its own worker and lease owner."""
    targets = {port.system: ledger_target(port)}
    worker = DeliveryWorker(engine, targets, hub.settings.delivery, clock, owner,
                            skip_targets=tuple(targets))
    return PostingBuffer(engine, targets[port.system], port, worker, policy, clock, owner,
                         30, sleep=clock.advance)


def _accept_all(hub: Hub) -> None:
    while hub.processor.process_batch():
        pass


def test_deliveries_carry_their_entity_as_lane_and_claims_choose_lanes(engine: Engine) -> None:
    clock = Clock()
    hub = buffered_hub(engine, {"ledger": (RecordingLedger(clock), BufferPolicy())}, clock)
    ingest(hub, _invoices(3, ("le_us", "le_eu", "le_uk")))
    _accept_all(hub)
    assert _lanes(engine) == {"le_us": {"pending": 1}, "le_eu": {"pending": 1},
                              "le_uk": {"pending": 1}}
    with transaction(engine) as conn:  # a delivery written before lanes
        conn.execute(update(deliveries).where(deliveries.c.lane == "le_uk").values(lane=None))

    def claimed(**lanes: Any) -> list[str | None]:
        with transaction(engine) as conn:
            got = outbox.claim(conn, "w", clock(), 30, 10, **lanes)
            outbox.release(conn, [d.id for d in got], "w")
        return sorted((d.lane for d in got), key=lambda lane: lane or "")

    assert claimed(lanes=[None]) == [None]
    assert claimed(lanes=["le_us", None]) == [None, "le_us"]
    assert claimed(skip_lanes=["le_us"]) == [None, "le_eu"]  # no lane is a lane of its own
    assert claimed(skip_lanes=[None]) == ["le_eu", "le_us"]
    assert claimed(lanes=[]) == []


def test_a_claim_takes_at_most_lane_max_of_each_lane_and_leaves_the_rest_pending(
        engine: Engine) -> None:
    clock = Clock()
    hub = buffered_hub(engine, {"ledger": (RecordingLedger(clock), BufferPolicy())}, clock)
    ingest(hub, _invoices(9, ("le_us", "le_us", "le_eu")))  # us us eu us us eu us us eu
    _accept_all(hub)
    with transaction(engine) as conn:  # a delivery written before lanes: a lane of its own
        first_eu = conn.execute(select(func.min(deliveries.c.id))
                                .where(deliveries.c.lane == "le_eu")).scalar_one()
        conn.execute(update(deliveries).where(deliveries.c.id == first_eu).values(lane=None))
    with transaction(engine) as conn:
        got = outbox.claim(conn, "w", clock(), 30, 8, lane_max=2)
    # of the first eight due (us us None us us eu us us), the earliest two of each lane
    assert [d.lane for d in got] == ["le_us", "le_us", None, "le_eu"]
    assert _lanes(engine) == {"le_us": {"in_flight": 2, "pending": 4},
                              "le_eu": {"in_flight": 1, "pending": 1}, None: {"in_flight": 1}}


def test_a_round_leases_only_what_its_calls_carry(engine: Engine,
                                                   monkeypatch: Any) -> None:
    given_back: list[int] = []
    release = outbox.release

    def counted(conn: Any, ids: Any, owner: str) -> int:
        given_back.extend(ids)
        return release(conn, ids, owner)

    monkeypatch.setattr(outbox, "release", counted)
    clock = Clock()
    port = RecordingLedger(clock, max_batch=2)
    hub = buffered_hub(engine, {"ledger": (port, BufferPolicy())}, clock)
    ingest(hub, _invoices(30, ("le_us",)))
    drain(hub, clock)
    assert statuses(hub) == {"done": 30}
    # one lane: a round's task makes four calls of two; the claim looks ahead further (room
    # for a lane it has not seen), but leases no more than those eight, so none is given back
    assert len(port.calls) == 15
    assert given_back == []


def test_a_slow_entity_holds_back_no_other_entity(engine: Engine) -> None:
    clock = Clock()
    gate = threading.Event()
    port = HeldLedger(EmbeddedLedger("ledger", ledger_service(engine)), "le_us", gate)
    policy = BufferPolicy(batch_size=2, lane_wait_s=120)
    hub = buffered_hub(engine, {"ledger": (port, policy)}, clock)
    ingest(hub, _invoices(4, ("le_us",), "us") + _invoices(6, ("le_eu",), "eu"))
    runner = threading.Thread(target=hub.run_until_idle, daemon=True)
    runner.start()
    try:
        assert port.held.wait(60)
        # le_eu's six post in three calls, in rounds of their own, while le_us's call waits
        _until(lambda: _lanes(engine).get("le_eu") == {"done": 6}, "le_eu posted")
        assert "done" not in _lanes(engine)["le_us"]
    finally:
        gate.set()
    runner.join(120)
    assert not runner.is_alive()
    assert _lanes(engine) == {"le_us": {"done": 4}, "le_eu": {"done": 6}}
    assert hub.exceptions() == []


def test_acceptance_goes_on_while_an_erps_call_is_out(engine: Engine) -> None:
    clock = Clock()
    gate = threading.Event()
    port = HeldLedger(EmbeddedLedger("ledger", ledger_service(engine)), "le_us", gate)
    hub = buffered_hub(engine, {"ledger": (port, BufferPolicy(lane_wait_s=120))}, clock)
    ingest(hub, _invoices(120, ("le_us",)))  # three acceptance batches of 50 (20 last)
    runner = threading.Thread(target=hub.run_until_idle, daemon=True)
    runner.start()
    try:
        assert port.held.wait(60)  # the first batch's call is out, and held
        # the later batches are accepted meanwhile, not after the call
        _until(lambda: hub.status()["raw_events"].get("received", 0) == 0,
               "every raw event accepted while the call is out", limit_s=20)
        assert "done" not in _lanes(engine)["le_us"]
    finally:
        gate.set()
    runner.join(120)
    assert not runner.is_alive()
    assert _lanes(engine) == {"le_us": {"done": 120}}
    assert hub.exceptions() == []


def test_a_closed_period_holds_back_only_its_entity(engine: Engine) -> None:
    clock = Clock()
    service = ledger_service(engine)
    port = EmbeddedLedger("ledger", service)
    port.close_period("le_us", "2026-01", "controller")  # the invoices are of 15 January
    hub = buffered_hub(engine, {"ledger": (port, BufferPolicy(batch_size=3))}, clock)
    ingest(hub, _invoices(4, ("le_us",), "us") + _invoices(5, ("le_eu",), "eu"))
    hub.run_until_idle()
    assert _lanes(engine) == {"le_us": {"failed": 4}, "le_eu": {"done": 5}}
    assert [e["class"] for e in hub.exceptions()] == ["closed_period"] * 4
    assert len(service.entries("le_eu")) == 5 and service.entries("le_us") == []
    # reopened, a person's retry posts them
    service.set_period_status("le_us", "2026-01", PeriodStatus.OPEN, "controller",
                              "late January invoices")
    with transaction(engine) as conn:
        failed = conn.execute(select(deliveries.c.id).where(
            deliveries.c.status == "failed")).scalars().all()
        for delivery_id in failed:
            assert outbox.retry_now(conn, delivery_id, clock())
    drain(hub, clock)
    assert _lanes(engine) == {"le_us": {"done": 4}, "le_eu": {"done": 5}}
    assert len(service.entries("le_us")) == 4


def test_two_processes_share_the_calls_per_minute(engine: Engine) -> None:
    clock = Clock()
    policy = BufferPolicy(calls_per_minute=6, batch_size=1, wait_max_s=0)
    first, second = RecordingLedger(clock, max_batch=1), RecordingLedger(clock, max_batch=1)
    hub = buffered_hub(engine, {"ledger": (first, policy)}, clock)
    buffers = [hub.buffers[0], _other_process(engine, hub, second, policy, clock)]
    ingest(hub, _invoices(30, ("le_us", "le_eu", "le_uk")))
    _accept_all(hub)
    rng = random.Random(20)
    for _ in range(2000):
        if statuses(hub) == {"done": 30}:
            break
        rng.shuffle(buffers)
        for buffer in buffers:
            buffer.run_once()
        clock.advance(rng.uniform(0, 5))
    assert statuses(hub) == {"done": 30}
    assert first.calls and second.calls  # both processes posted
    times = [c.at for c in first.calls + second.calls]
    for t in times:
        assert sum(1 for u in times if 0 <= (t - u).total_seconds() < 60) <= 6


def test_two_processes_share_the_concurrency(engine: Engine) -> None:
    clock = Clock()
    port = RecordingLedger(clock, max_batch=1, hold_s=0.02)  # sees both processes' calls
    policy = BufferPolicy(concurrency=2, batch_size=1, wait_max_s=0)
    hub = buffered_hub(engine, {"ledger": (port, policy)}, clock)
    buffers = [hub.buffers[0], _other_process(engine, hub, port, policy, clock)]
    ingest(hub, _invoices(24, ("le_us", "le_eu", "le_uk", "le_jp")))
    _accept_all(hub)

    def run(buffer: PostingBuffer) -> None:
        for _ in range(5000):
            if statuses(hub) == {"done": 24}:
                return
            buffer.run_once()

    threads = [threading.Thread(target=run, args=(b,), daemon=True) for b in buffers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert statuses(hub) == {"done": 24}
    assert len(port.calls) == 24
    assert 1 <= port.in_flight_max <= 2  # each process alone would allow two


def test_the_daily_cap_stops_posting_until_the_next_day_and_waits(engine: Engine) -> None:
    clock = Clock()
    port = RecordingLedger(clock, max_batch=1)
    policy = BufferPolicy(daily_cap=2, batch_size=1)
    hub = buffered_hub(engine, {"ledger": (port, policy)}, clock)
    buffers = [hub.buffers[0], _other_process(engine, hub, port, policy, clock)]
    ingest(hub, _invoices(5, ("le_us", "le_eu")))
    hub.run_until_idle()
    for buffer in buffers:
        buffer.run_once()
    assert len(port.calls) == 2 and statuses(hub) == {"done": 2, "pending": 3}
    with reading(engine) as conn:
        waiting = [r for r in outbox.all_rows(conn) if r["status"] == "pending"]
    assert all(r["attempts"] == 0 and r["lease_owner"] is None for r in waiting)
    assert hub.waiting().due == 3 and hub.exceptions() == []  # waiting, not failed
    assert all(b.waiting_for is not None and b.waiting_for.limit is Limit.DAILY_CAP
               for b in buffers)
    [held] = hub.status_report().as_json()["budget_waits"]  # what `finsync status` shows
    midnight = datetime.combine(clock().date() + timedelta(days=1), datetime.min.time(), UTC)
    assert held == {"target": "ledger", "limit": "daily_cap",
                    "seconds": round((midnight - clock()).total_seconds(), 3)}
    days = [port.calls[-1].at.date()]
    while statuses(hub) != {"done": 5}:
        assert buffers[0].waiting_for is not None
        clock.advance(buffers[0].waiting_for.seconds)  # to the next UTC midnight
        days.append(clock().date())
        hub.run_until_idle()
        for buffer in buffers:
            buffer.run_once()
    per_day = {d: sum(1 for c in port.calls if c.at.date() == d) for d in days}
    assert list(per_day.values()) == [2, 2, 1]


def test_a_task_slower_than_its_lease_keeps_its_deliveries(engine: Engine) -> None:
    """A task makes its calls one after the other: four calls of 12 s each outlast the
    30 s lease of the deliveries claimed for the last ones, unless the task keeps them."""
    clock = Clock()
    expired: list[int] = []

    class Slow(RecordingLedger):
        def post_batch(self, postings: Sequence[Posting]) -> Sequence[Receipt | FinsyncError]:
            clock.advance(12)
            with reading(engine) as conn:
                expired.append(conn.execute(select(func.count()).where(
                    deliveries.c.status == "in_flight",
                    deliveries.c.lease_expires_at < clock())).scalar_one())
            return super().post_batch(postings)

    port = Slow(clock, max_batch=1)
    hub = buffered_hub(engine, {"ledger": (port, BufferPolicy(batch_size=1))}, clock)
    ingest(hub, _invoices(4, ("le_us",)))
    hub.run_until_idle()
    assert len(port.calls) == 4 and expired == [0, 0, 0, 0]
    assert statuses(hub) == {"done": 4}
    with reading(engine) as conn:
        assert {r["lease_expiries"] for r in outbox.all_rows(conn)} == {0}


def test_a_backlog_in_one_lane_holds_no_other_back(engine: Engine) -> None:
    clock = Clock()
    port = RecordingLedger(clock, max_batch=1, hold_s=0.1)  # ten calls a second at most
    hub = buffered_hub(engine, {"ledger": (port, BufferPolicy(batch_size=1))}, clock)
    ingest(hub, _invoices(40, ("le_us",), "us") + _invoices(2, ("le_eu",), "eu"))
    drain(hub, clock)
    assert statuses(hub) == {"done": 42}
    order = [p.event.document.legal_entity for c in port.calls for p in c.postings]
    # le_eu's two come in delivery order after le_us's forty, but the claims skip the lane
    # served last once a second: they go out within about ten calls, not after forty
    assert max(i for i, entity in enumerate(order) if entity == "le_eu") < 25


def test_a_killed_workers_slot_holds_calls_back_only_until_its_lease_runs_out(
        engine: Engine) -> None:
    clock = Clock()
    port = RecordingLedger(clock, max_batch=5)
    policy = BufferPolicy(concurrency=1, wait_max_s=0)
    hub = buffered_hub(engine, {"ledger": (port, policy)}, clock)
    killed = PostingBudget(engine, "ledger", Limits(concurrency=1), clock, "killed", 30)
    assert isinstance(killed.take(), Grant)  # and its process dies mid-call
    ingest(hub, _invoices(4, ("le_us", "le_eu")))
    hub.run_until_idle()
    assert port.calls == [] and statuses(hub) == {"pending": 4}
    assert hub.buffers[0].waiting_for is not None
    assert hub.buffers[0].waiting_for.limit is Limit.CONCURRENCY
    with reading(engine) as conn:
        assert all(r["attempts"] == 0 for r in outbox.all_rows(conn))  # given back untried
    clock.advance(31)
    drain(hub, clock)
    assert statuses(hub) == {"done": 4}


def test_the_erps_retry_after_pauses_every_process(engine: Engine) -> None:
    clock = Clock()
    policy = BufferPolicy(calls_per_minute=600, batch_size=1, wait_max_s=0)
    refusing = RecordingLedger(clock, max_batch=1,
                               refuse_first=TransientError("429", retry_after_s=120))
    other = RecordingLedger(clock, max_batch=1)
    hub = buffered_hub(engine, {"ledger": (refusing, policy)}, clock)
    second = _other_process(engine, hub, other, policy, clock)
    ingest(hub, _invoices(3, ("le_us",)))
    hub.run_until_idle()
    assert len(refusing.calls) == 1 and statuses(hub) == {"pending": 3}
    clock.advance(60)  # the refused delivery's backoff is over; the ERP's pause is not
    for _ in range(3):
        second.run_once()
    assert other.calls == []
    clock.advance(61)
    for _ in range(10):
        second.run_once()
        clock.advance(1)
    assert statuses(hub) == {"done": 3} and len(other.calls) == 3
