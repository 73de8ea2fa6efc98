"""The ERP posting buffer: budget, concurrency, batching, order, back-pressure, and one
refused document failing alone."""

from __future__ import annotations

import re
import threading
from typing import Any

import sqlalchemy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from finsync.domain.errors import ExceptionClass, PermanentError, TransientError
from finsync.domain.events import InvoiceIssued
from finsync.domain.invoice import Invoice
from finsync.hub.buffer import BufferPolicy
from finsync.storage import outbox
from finsync.storage.db import reading
from tests.bufferkit import RecordingLedger, buffered_hub, drain, event, statuses
from tests.hubkit import Clock, ingest
from tests.ledgerkit import invoice


def _invoices(n: int, entities: tuple[str, ...] = ("le_us",), prefix: str = "inv") -> list[bytes]:
    return [event(InvoiceIssued(invoice(f"{prefix}_{i}", ["100.00"],
                                        entity=entities[i % len(entities)])), 1)
            for i in range(n)]


def test_budget_holds_in_every_minute(engine: Engine) -> None:
    clock = Clock()
    port = RecordingLedger(clock, max_batch=3)
    hub = buffered_hub(engine, {"ledger": (port, BufferPolicy(calls_per_minute=10,
                                                              concurrency=2))}, clock)
    ingest(hub, _invoices(60, ("le_us", "le_eu")))
    drain(hub, clock)
    assert statuses(hub) == {"done": 60}
    times = [c.at for c in port.calls]
    assert len(times) == 20  # 60 documents, 3 a call
    for t in times:
        in_window = [u for u in times if 0 <= (t - u).total_seconds() < 60]
        assert len(in_window) <= 10
    assert (times[-1] - times[0]).total_seconds() > 60  # it waited for the budget


def test_a_budgeted_call_is_full_while_its_lane_has_enough_due(engine: Engine) -> None:
    """Five documents of one entity, then three of another: the second entity's first
    call carries its three, not the one that a look-ahead of the first six met."""
    clock = Clock()
    port = RecordingLedger(clock, max_batch=3)
    hub = buffered_hub(engine, {"ledger": (port, BufferPolicy(calls_per_minute=10,
                                                              concurrency=2))}, clock)
    ingest(hub, _invoices(5, ("le_us",), "us") + _invoices(3, ("le_eu",), "eu"))
    drain(hub, clock)
    assert statuses(hub) == {"done": 8}
    assert sorted(len(c.postings) for c in port.calls) == [2, 3, 3]


def test_concurrency_cap_is_respected_and_used(engine: Engine) -> None:
    clock = Clock()
    port = RecordingLedger(clock, max_batch=2, hold_s=0.02,
                           barrier=threading.Barrier(3, timeout=10))
    hub = buffered_hub(engine, {"ledger": (port, BufferPolicy(concurrency=3))}, clock)
    ingest(hub, _invoices(24, ("le_us", "le_eu", "le_uk")))
    drain(hub, clock)
    assert statuses(hub) == {"done": 24}
    assert port.in_flight_max == 3  # the first three calls met at the barrier, no fourth


def test_calls_hold_one_entity_and_up_to_the_batch_size(engine: Engine) -> None:
    clock = Clock()
    port = RecordingLedger(clock, max_batch=10)
    hub = buffered_hub(engine, {"ledger": (port, BufferPolicy(batch_size=4))}, clock)
    ingest(hub, _invoices(18, ("le_us", "le_eu")))
    drain(hub, clock)
    assert statuses(hub) == {"done": 18}
    assert all(1 <= len(c.postings) <= 4 for c in port.calls)
    assert all(len({p.event.document.legal_entity for p in c.postings}) == 1
               for c in port.calls)
    assert len(port.calls) == 6  # 9 per entity: 4 + 4 + 1, twice


def test_spent_budget_leaves_everything_waiting_in_the_outbox(engine: Engine) -> None:
    clock = Clock()
    port = RecordingLedger(clock, max_batch=5)
    policy = BufferPolicy(calls_per_minute=1, wait_max_s=0)
    hub = buffered_hub(engine, {"ledger": (port, policy)}, clock)
    ingest(hub, _invoices(12, ("le_us", "le_eu")))
    hub.run_until_idle()
    # one call went out (one entity's five); the other entity's call was given back untried
    assert len(port.calls) == 1
    with reading(engine) as conn:
        rows = outbox.all_rows(conn)
    waiting = [r for r in rows if r["status"] != "done"]
    assert len(waiting) == 7 and all(r["status"] == "pending" and r["attempts"] == 0
                                     and r["lease_owner"] is None for r in waiting)
    for _ in range(10):
        clock.advance(61)
        hub.run_until_idle()
    assert statuses(hub) == {"done": 12}
    assert sorted(d for d, _ in port.posted()) == sorted(f"inv_{i}" for i in range(12))


def test_a_refused_document_fails_alone_in_its_batch(engine: Engine) -> None:
    clock = Clock()
    port = RecordingLedger(clock, max_batch=5, fail={
        "inv_2": PermanentError("period closed", exception_class=ExceptionClass.CLOSED_PERIOD),
        "inv_3": TransientError("locked row")})
    hub = buffered_hub(engine, {"ledger": (port, BufferPolicy())}, clock)
    ingest(hub, _invoices(5))
    hub.run_until_idle()
    assert statuses(hub) == {"done": 3, "failed": 1, "pending": 1}
    assert [e["class"] for e in hub.exceptions()] == ["closed_period"]
    drain(hub, clock)
    assert statuses(hub) == {"done": 4, "failed": 1}


def test_an_erp_rate_limit_pauses_the_budget(engine: Engine) -> None:
    clock = Clock()
    port = RecordingLedger(clock, refuse_first=TransientError("429", retry_after_s=120))
    hub = buffered_hub(engine, {"ledger": (port, BufferPolicy())}, clock)
    ingest(hub, _invoices(3))
    hub.run_until_idle()
    assert statuses(hub) == {"pending": 3}
    drain(hub, clock)
    assert statuses(hub) == {"done": 3}
    assert len(port.calls) == 2
    assert (port.calls[1].at - port.calls[0].at).total_seconds() >= 120


@st.composite
def _streams(draw: st.DrawFn) -> list[tuple[int, int, int]]:
    """(aggregate, version, entity) in an arrival order where versions may come late."""
    aggregates = draw(st.integers(2, 6))
    events = [(a, v, a % 3) for a in range(aggregates)
              for v in range(1, draw(st.integers(1, 4)) + 1)]
    return draw(st.permutations(events))


_EXAMPLE = [0]


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=_streams(), failing=st.sets(st.integers(0, 5), max_size=2))
def test_aggregate_order_holds_under_batching_and_concurrency(
        engine: Engine, stream: list[tuple[int, int, int]], failing: set[int]) -> None:
    _EXAMPLE[0] += 1
    run = f"x{_EXAMPLE[0]}"
    clock = Clock()
    entities = ("le_us", "le_eu", "le_uk")
    docs = {(a, v): invoice(f"{run}_inv_{a}", [f"{v}00.00"], entity=entities[e])
            for a, v, e in stream}
    fail = {f"{run}_inv_{a}": TransientError("busy") for a in failing}
    port = RecordingLedger(clock, max_batch=3, hold_s=0.002, fail=fail)
    hub = buffered_hub(engine, {"ledger": (port, BufferPolicy(concurrency=3))}, clock)
    ingest(hub, [event(InvoiceIssued(docs[a, v]), v, f"{run}-{a}-{v}") for a, v, _ in stream])
    drain(hub, clock)
    assert port.overlap == []  # never two postings of one aggregate in flight at once
    versions: dict[str, list[int]] = {}  # per aggregate, the versions in the order sent
    for posting in (p for c in port.calls for p in c.postings):
        sent = posting.event.document
        assert isinstance(sent, Invoice)
        versions.setdefault(sent.id, []).append(int(sent.total.amount) // 100)
    for doc_id, seen in versions.items():
        delivered = [v for i, v in enumerate(seen) if i == len(seen) - 1 or seen[i + 1] != v]
        assert delivered == sorted(delivered), (doc_id, seen)
    assert {(d, max(v)) for d, v in versions.items()} == {
        (f"{run}_inv_{a}", max(v for b, v, _ in stream if b == a)) for a, _, _ in stream}




def test_a_tasks_calls_record_their_outcomes_in_one_transaction(engine: Engine) -> None:
    clock = Clock()
    port = RecordingLedger(clock, max_batch=2)
    hub = buffered_hub(engine, {"ledger": (port, BufferPolicy())}, clock)
    ingest(hub, _invoices(8))
    settled: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        words = " ".join(statement.split()).upper()
        if words.startswith("UPDATE DELIVERIES") and re.search(r"\bRESULT ?=", words):
            settled.append(words)

    sqlalchemy.event.listen(engine, "before_cursor_execute", note)
    try:
        hub.run_until_idle()
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", note)
    assert statuses(hub) == {"done": 8}
    # one lane, no limit: one task of four calls of two, whose eight receipts are settled
    # by one statement, not one per call
    assert len(port.calls) == 4
    assert len(settled) == 1
