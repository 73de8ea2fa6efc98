"""Quarantine, never stall (issue 12): a defect in one raw event or one delivery becomes a
classified exception on that item alone and the rest flows; no delivery stays `in_flight`;
the pipeline's threads survive failures, are restarted when dead, and `/healthz` says when
the pipeline is not making progress. On SQLite and PostgreSQL; time is the hub's clock."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, select
from sqlalchemy.exc import DataError, OperationalError

from finsync.api.app import create_app
from finsync.connectors.embedded.ledger import EmbeddedLedger
from finsync.connectors.ports import DeliveryContext, Receipt
from finsync.domain import codec
from finsync.domain.envelope import Envelope
from finsync.domain.errors import ExceptionClass
from finsync.domain.events import AnyEvent, InvoiceIssued, PaymentApplied
from finsync.domain.status import DeliveryStatus, RawStatus
from finsync.hub.acceptance import Acceptance
from finsync.hub.buffer import BufferPolicy
from finsync.hub.mapping import MapperRegistry
from finsync.hub.pipeline import PIPELINE, DailyJob, PipelineWorker, describe
from finsync.hub.processor import Processor
from finsync.hub.service import Hub
from finsync.hub.settings import DeliveryPolicy
from finsync.storage import jsonutil, outbox, raw_log
from finsync.storage.db import reading, transaction
from finsync.storage.raw_log import RawEvent
from finsync.storage.schema import deliveries
from tests.bufferkit import buffered_hub, statuses
from tests.bufferkit import event as ledger_event
from tests.builders import envelope, payment_doc
from tests.hubkit import Clock, ingest, make_hub
from tests.integration.test_delivery import Faulty, _invoice
from tests.ledgerkit import invoice, ledger_service, payment

EXPIRIES_MAX = DeliveryPolicy().lease_expiries_max


def _payment(name: str, customer: str = "cus_1") -> bytes:
    return json.dumps(envelope("payment.applied", name, ("payment", name, None),
                               {"payment": payment_doc(name, "10.00", "inv_1", customer)},
                               correlation_id=f"c-{name}")).encode()


class TrustingMapper:
    """Canonical envelopes without the source's input limits: values that intake refuses
    today (a NUL) reach the processor's and the delivery's own defences, which must hold
    whatever a mapper lets through."""

    def map(self, raw: RawEvent) -> list[Envelope]:
        data = jsonutil.loads(raw.body)
        items = data if isinstance(data, list) else [data]
        return [codec.draft_from_json(item).stamp(raw.received_at) for item in items]


def _mapping_with(hub: Hub, mapper: Any) -> Hub:
    hub.processor = Processor(hub.engine, MapperRegistry({"canonical": mapper}),
                              Acceptance(hub.settings), hub.clock, 50)
    return hub


def _raw(engine: Engine, raw_id: int) -> RawEvent:
    with reading(engine) as conn:
        raw = raw_log.get(conn, raw_id)
    assert raw is not None
    return raw


def _error_code(engine: Engine, raw_id: int) -> str | None:
    from finsync.storage.schema import raw_events

    with reading(engine) as conn:
        code = conn.execute(select(raw_events.c.error_code)
                            .where(raw_events.c.id == raw_id)).scalar_one()
    return None if code is None else str(code)


# --- one raw event ----------------------------------------------------------------------


def _recurse(depth: int) -> int:
    return _recurse(depth + 1) + 1


def _overflow() -> float:
    return math.exp(1000)


def _forty_digits() -> Decimal:
    return Decimal("1" * 40).quantize(Decimal("0.01"))  # past the context's 28 digits


class PoisonedMapper:
    """The canonical mapper, except that mapping a body that says "poison" runs `defect`
    (a real recursion, overflow or decimal error, raised from inside the mapping)."""

    def __init__(self, defect: Callable[[], object]) -> None:
        self.defect, self.inner = defect, TrustingMapper()

    def map(self, raw: RawEvent) -> list[Any]:
        if b"poison" in raw.body:
            self.defect()
        return self.inner.map(raw)


@pytest.mark.parametrize(("defect", "error"), [
    (lambda: _recurse(0), "RecursionError"),
    (_overflow, "OverflowError"),
    (_forty_digits, "InvalidOperation"),
])
def test_defect_while_mapping_rejects_that_raw_event_alone(
        engine: Engine, tmp_path: Path, defect: Callable[[], object], error: str) -> None:
    """Findings 1 and 2: a RecursionError (100,000 nested arrays), an OverflowError or an
    InvalidOperation (a 40-digit amount) inside mapping one raw event used to kill the
    pipeline; now that raw event is rejected with an `internal_error` and the next one is
    delivered."""
    hub = _mapping_with(make_hub(engine, tmp_path), PoisonedMapper(defect))
    ingest(hub, [_payment("poison"), _payment("pay_good")])
    summary = hub.run_until_idle()
    assert summary.raw_processed == 2
    assert _raw(engine, 1).status is RawStatus.REJECTED
    assert _error_code(engine, 1) == ExceptionClass.INTERNAL_ERROR
    (quarantined,) = hub.exceptions()
    assert quarantined["class"] == ExceptionClass.INTERNAL_ERROR
    assert quarantined["raw_event_id"] == 1
    assert quarantined["summary"].startswith(
        f"canonical event #1 could not be processed: {error}")
    assert len(quarantined["summary"]) < 400
    assert "Traceback" in quarantined["detail"]
    assert _raw(engine, 2).status is RawStatus.MAPPED
    assert hub.status()["deliveries"] == {"done": 1}


def test_nul_byte_in_one_event_fails_only_that_raw_event(engine: Engine,
                                                         tmp_path: Path) -> None:
    """Finding 5, at acceptance: PostgreSQL refuses a NUL in a text column (the payment's id
    is the aggregate id); that raw event alone is quarantined, the good payment beside it in
    the batch is delivered. SQLite stores the NUL, and both go through."""
    hub = _mapping_with(make_hub(engine, tmp_path), TrustingMapper())
    ingest(hub, [_payment("pay\u0000bad"), _payment("pay_good")])
    hub.run_until_idle()
    if engine.dialect.name == "postgresql":
        (quarantined,) = hub.exceptions()
        assert quarantined["class"] == ExceptionClass.INTERNAL_ERROR
        assert quarantined["raw_event_id"] == 1
        assert "NUL" in quarantined["summary"] and "[SQL" not in quarantined["summary"]
        assert hub.status()["deliveries"] == {"done": 1}
    else:
        assert hub.status()["deliveries"] == {"done": 2}
    assert _raw(engine, 2).status is RawStatus.MAPPED


def test_nul_byte_in_customer_id_fails_only_its_payment_in_an_erp_batch(
        engine: Engine) -> None:
    """Finding 5, at delivery: with a payment whose `customer_id` holds "\\u0000" and a good
    payment in one ERP call, PostgreSQL refused the call and both failed as `internal_error`
    with the full SQL in the summary. Now the call is made again one posting at a time: the
    good payment is posted, the bad one fails alone with a short summary."""
    ledger = ledger_service(engine)
    clock = Clock()
    hub = _mapping_with(buffered_hub(engine, {"ledger": (EmbeddedLedger("ledger", ledger),
                                                         BufferPolicy())}, clock),
                        TrustingMapper())
    ingest(hub, [ledger_event(InvoiceIssued(invoice("inv_1", ["100.00"])))])
    hub.run_until_idle()
    ingest(hub, [
        ledger_event(PaymentApplied(payment("pay_bad", "10.00", {"inv_1": "10.00"},
                                            customer="cus\u0000x"))),
        ledger_event(PaymentApplied(payment("pay_good", "10.00", {"inv_1": "10.00"}))),
    ])
    hub.run_until_idle()
    done = {d.correlation_id for d in hub.delivered(["ledger"])}
    assert "corr-pay_good" in done
    if engine.dialect.name == "postgresql":
        assert statuses(hub) == {"done": 2, "failed": 1}
        (failed,) = hub.exceptions()
        assert failed["class"] == ExceptionClass.INTERNAL_ERROR
        assert failed["correlation_id"] == "corr-pay_bad"
        assert "NUL" in failed["summary"]
        assert "[SQL" not in failed["summary"] and "SELECT" not in failed["summary"]


class _CommitWatch:
    """The canonical mapper, noting which raw events were mapped since the last commit."""

    def __init__(self) -> None:
        self.inner, self.seen = TrustingMapper(), set[int]()

    def map(self, raw: RawEvent) -> list[Any]:
        self.seen.add(raw.id)
        return self.inner.map(raw)


def test_batch_whose_commit_fails_is_retried_one_raw_event_at_a_time(
        engine: Engine, tmp_path: Path) -> None:
    """A batch whose own transaction fails (here its commit, whenever raw event 2 is in it)
    is done again one raw event per transaction: only raw event 2 fails."""
    mapper = _CommitWatch()
    hub = _mapping_with(make_hub(engine, tmp_path), mapper)
    ingest(hub, [_payment("pay_1"), _payment("pay_2"), _payment("pay_3")])

    def refuse_raw_event_2(_conn: Any) -> None:
        seen, mapper.seen = mapper.seen, set()
        if 2 in seen:
            raise RuntimeError("a deferred check refused the commit")

    event.listen(engine, "commit", refuse_raw_event_2)
    try:
        hub.run_until_idle()
    finally:
        event.remove(engine, "commit", refuse_raw_event_2)
    assert [_raw(engine, n).status for n in (1, 2, 3)] == \
        [RawStatus.MAPPED, RawStatus.REJECTED, RawStatus.MAPPED]
    (quarantined,) = hub.exceptions()
    assert quarantined["raw_event_id"] == 2
    assert quarantined["summary"].endswith("RuntimeError: a deferred check refused the commit")
    assert hub.status()["deliveries"] == {"done": 2}


# --- one delivery -----------------------------------------------------------------------


@pytest.mark.parametrize("error", [OverflowError("int too large to convert"),
                                   InvalidOperation([InvalidOperation])])
def test_target_raising_a_defect_fails_that_delivery_alone(
        engine: Engine, tmp_path: Path, error: Exception) -> None:
    """Finding 2: an OverflowError or InvalidOperation escaping a target settles that
    attempt alone as `internal_error`; the deliveries behind it flow."""
    target = Faulty(tmp_path, [error])
    hub = make_hub(engine, tmp_path, targets={"ledger": target})
    ingest(hub, [_invoice(1), _invoice(2), _invoice(3)])
    hub.run_until_idle()
    assert hub.status()["deliveries"] == {"failed": 1, "done": 2}
    (failed,) = hub.exceptions()
    assert failed["class"] == ExceptionClass.INTERNAL_ERROR
    assert failed["correlation_id"] == "amd-1"
    assert type(error).__name__ in failed["summary"] and "Traceback" in failed["detail"]


class _UnrecordableReceipt(Faulty):
    """Answers inv_1 with a receipt that cannot be recorded (a float in its detail)."""

    def deliver(self, event: AnyEvent, ctx: DeliveryContext) -> Receipt:
        receipt = super().deliver(event, ctx)
        if event.document.id == "inv_1":
            return Receipt(receipt.external_id, receipt.references, {"rate": 1.5})  # type: ignore[dict-item]
        return receipt


def test_outcome_that_cannot_be_recorded_fails_that_delivery_alone(
        engine: Engine, tmp_path: Path) -> None:
    """Finding 2: recording one attempt's outcome failed (an amount past the column, a value
    the database refuses), the batch's transaction rolled back and every delivery in it
    stayed `in_flight`. Now that attempt alone fails as `internal_error`."""
    hub = make_hub(engine, tmp_path, targets={"ledger": _UnrecordableReceipt(tmp_path, [])})
    ingest(hub, [_invoice(1), _invoice(2), _invoice(3)])
    hub.run_until_idle()
    assert hub.status()["deliveries"] == {"failed": 1, "done": 2}
    (failed,) = hub.exceptions()
    assert failed["class"] == ExceptionClass.INTERNAL_ERROR
    assert "could not be recorded: TypeError" in failed["summary"]


class WorkerKilledError(BaseException):
    """The worker's process dying in the middle of a call (no outcome is recorded)."""


class _Killer(Faulty):
    """Kills the worker whenever it delivers inv_1, while `armed`."""

    armed = True

    def deliver(self, event: AnyEvent, ctx: DeliveryContext) -> Receipt:
        if self.armed and event.document.id == "inv_1":
            self.calls += 1
            raise WorkerKilledError
        return self.inner.deliver(event, ctx)


def _lease_expiries(engine: Engine, correlation_id: str) -> tuple[str, int]:
    with reading(engine) as conn:
        status, expiries = conn.execute(
            select(deliveries.c.status, deliveries.c.lease_expiries)
            .where(deliveries.c.correlation_id == correlation_id)).one()
    return str(status), int(expiries)


def test_lease_running_out_n_times_makes_the_delivery_dead_with_an_exception(
        engine: Engine, tmp_path: Path) -> None:
    """Finding 2: a delivery on which the worker dies stayed `in_flight` for ever and held
    up the others. Now each expired lease is counted and taken back alone; after
    `lease_expiries_max` (3 by default) the delivery is `dead` with an `internal_error` exception,
    and the deliveries claimed with it go through."""
    clock = Clock()
    target = _Killer(tmp_path, [])
    hub = make_hub(engine, tmp_path, targets={"ledger": target}, clock=clock)
    ingest(hub, [_invoice(1), _invoice(2), _invoice(3)])
    for _ in range(EXPIRIES_MAX):
        with pytest.raises(WorkerKilledError):
            hub.run_until_idle()
        assert hub.status()["deliveries"].get("in_flight")
        clock.advance(31)  # the lease (30 s) runs out
    hub.run_until_idle()
    assert target.calls == EXPIRIES_MAX
    assert hub.status()["deliveries"] == {"dead": 1, "done": 2}
    assert _lease_expiries(engine, "amd-1") == (DeliveryStatus.DEAD, EXPIRIES_MAX)
    (dead,) = hub.exceptions()
    assert dead["class"] == ExceptionClass.INTERNAL_ERROR
    assert dead["correlation_id"] == "amd-1" and dead["amount_at_stake"] == "100.00 USD"
    assert "lease ran out 3 times" in dead["summary"]

    target.armed = False  # fixed; a person retries it: the count starts again
    with transaction(engine) as conn:
        assert outbox.retry_now(conn, dead["delivery_id"], clock())
    hub.run_until_idle()
    assert hub.status()["deliveries"] == {"done": 3}
    assert hub.exceptions() == []


# --- the pipeline's threads and /healthz ------------------------------------------------


def test_pipeline_thread_keeps_running_after_a_failed_iteration() -> None:
    """Finding 1: one exception in an iteration killed the pipeline thread. Now it is
    logged and counted, and the next iteration runs."""
    clock = Clock()
    calls: list[threading.Event] = [threading.Event(), threading.Event()]

    def step(_progressed: Callable[[], None]) -> int:
        done = next(c for c in calls if not c.is_set())
        done.set()
        if done is calls[0]:
            raise RecursionError("maximum recursion depth exceeded")
        return 1

    worker = PipelineWorker("test-pipeline", step, clock, interval_s=3600)
    worker.start()
    try:
        worker.wake()
        assert calls[0].wait(30)
        worker.wake()
        assert calls[1].wait(30)
    finally:
        worker.stop()
        assert worker.join(30)
    assert worker.failures == 1 and worker.last_error is not None
    assert worker.last_error.startswith("RecursionError")
    assert worker.last_iteration_at == clock() and worker.last_progress_at == clock()


class PipelineDiedError(BaseException):
    """Something no iteration guard catches (a SystemExit, say): the thread ends."""


def test_healthz_turns_503_when_the_pipeline_stalls_or_dies_and_200_after(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 1: with the pipeline thread dead, `/healthz` still said ok. Now it answers 503
    with the reasons while the thread is dead, or while work waits and no iteration
    completed within the stall window, and 200 again once the supervisor restarted it or
    an iteration completed."""
    clock = Clock()
    hub = make_hub(engine, tmp_path, clock=clock)
    app = create_app(hub, worker_interval_s=3600)  # iterations run only when the test asks
    pipeline = app.state.pipeline
    pipeline.check_s = 3600  # the supervisor restarts only when the test asks
    worker = pipeline.worker(PIPELINE)
    with TestClient(app) as client:
        if engine.dialect.name == "postgresql":
            # The wake-up listener wakes the worker once as it starts listening (for work
            # committed meanwhile): let that iteration end before pay_1 is stored, or it
            # races the test's own run_once (seen: pay_1's delivery still in_flight).
            deadline = time.monotonic() + 30
            while worker.last_iteration_at is None and time.monotonic() < deadline:
                time.sleep(0.01)
            assert worker.last_iteration_at is not None
        ok = client.get("/healthz")
        assert ok.status_code == 200 and ok.json()["status"] == "ok"

        ingest(hub, [_payment("pay_1")])
        clock.advance(worker.stall_s + 1)
        stalled = client.get("/healthz")
        assert stalled.status_code == 503
        (reason,) = stalled.json()["reasons"]
        assert "no progress" in reason and "raw events are waiting" in reason
        assert worker.run_once()
        assert client.get("/healthz").status_code == 200
        assert hub.status()["deliveries"] == {"done": 1}

        def die(*_args: object) -> None:
            raise PipelineDiedError

        monkeypatch.setattr(hub, "run_until_idle", die)
        worker.wake()
        assert worker.join(30)
        dead = client.get("/healthz")
        assert dead.status_code == 503
        assert dead.json()["reasons"] == ["finsync-pipeline thread is dead (PipelineDiedError)"]
        assert not dead.json()["workers"]["finsync-pipeline"]["alive"]

        monkeypatch.undo()
        assert pipeline.check() == [PIPELINE]
        again = client.get("/healthz")
        assert again.status_code == 200
        assert again.json()["workers"]["finsync-pipeline"]["restarts"] == 1


def test_daily_job_runs_once_a_day_and_is_tried_again_after_a_failure() -> None:
    """The daily job (reconciliation) has a thread of its own; a failed run is tried again
    on the next iteration, a run that went through waits for the next day."""
    clock = Clock()
    runs: list[date] = []
    failures = [OperationalError("SELECT 1", {}, Exception("database unavailable"))]

    def reconcile(as_of: date) -> None:
        if failures:
            raise failures.pop()
        runs.append(as_of)

    worker = PipelineWorker("test-daily", DailyJob(reconcile, clock), clock, 60)
    assert not worker.run_once()
    assert worker.run_once() and worker.run_once()
    clock.advance(86_400)
    assert worker.run_once()
    today = clock().date()
    assert runs == [today - timedelta(days=2), today - timedelta(days=1)]


def test_description_keeps_no_statement_and_no_credentials() -> None:
    """What is logged and summarised never holds the SQL, its parameters or a password."""
    error = DataError("INSERT INTO raw_events (body) VALUES (%(body)s)", {"body": "card 4242"},
                      Exception("PostgreSQL text fields cannot contain NUL (0x00) bytes"))
    assert describe(error) == \
        "DataError: PostgreSQL text fields cannot contain NUL (0x00) bytes"
    unreachable = RuntimeError("cannot reach postgresql://finsync:s3cret@db:5432/finsync\n"
                               "more")
    assert describe(unreachable) == \
        "RuntimeError: cannot reach postgresql://finsync:[redacted]@db:5432/finsync"
    assert describe(ValueError("a\u0000b\ud800")) == "ValueError: a\\x00b\\ud800"
