"""Delivery outcomes: transient errors retry with backoff, permanent ones are classified,
exhausted retries open target_unavailable, and a stuck aggregate holds back its successors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, update

from finsync.connectors.filedrop.ledger import FileDropLedger
from finsync.connectors.ports import DeliveryContext, Receipt
from finsync.domain.errors import ExceptionClass, PermanentError, TransientError
from finsync.domain.events import AnyEvent, EventType
from finsync.hub.milestone import Milestone
from finsync.hub.target import Target, ledger_target
from finsync.storage import outbox
from finsync.storage.db import reading
from finsync.storage.schema import deliveries, events
from tests.builders import envelope, invoice_doc
from tests.hubkit import Clock, ingest, make_hub, settings


class Faulty:
    """The real file-drop ledger behind a switch that fails the first calls."""

    def __init__(self, exports: Path, failures: list[Exception]) -> None:
        self.inner: Target = ledger_target(FileDropLedger("ledger", exports))
        self.system, self.failures, self.calls = "ledger", failures, 0

    def handles(self, event_type: EventType) -> bool:
        return self.inner.handles(event_type)

    def deliver(self, event: AnyEvent, ctx: DeliveryContext) -> Receipt:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return self.inner.deliver(event, ctx)

    def milestone(self, event_type: EventType) -> Milestone | None:
        return self.inner.milestone(event_type)

    def find_receipt(self, key: str) -> Receipt | None:
        return self.inner.find_receipt(key)


def _invoice(n: int, version: int = 1) -> bytes:
    inv = f"inv_{n}"
    return json.dumps(envelope("invoice.issued", f"{inv}-v{version}", ("invoice", inv, version),
                               {"invoice": invoice_doc(inv, "100.00")},
                               correlation_id=f"amd-{n}")).encode()


def _run_retries(hub: Any, clock: Clock, rounds: int) -> None:
    for _ in range(rounds):
        hub.run_until_idle()
        clock.advance(120)


def test_transient_errors_retry_until_delivered(engine: Engine, tmp_path: Path) -> None:
    clock = Clock()
    target = Faulty(tmp_path, [TransientError("timeout"), TransientError("429")])
    hub = make_hub(engine, tmp_path, targets={"ledger": target}, clock=clock)
    ingest(hub, [_invoice(1)])
    hub.run_until_idle()
    assert hub.status()["deliveries"] == {"pending": 1}
    assert hub.status()["next_retry_at"] > clock.now.isoformat()
    _run_retries(hub, clock, 3)
    assert hub.status()["deliveries"] == {"done": 1}
    assert target.calls == 3
    assert hub.exceptions() == []
    assert [m["name"] for m in hub.timeline("amd-1")] == ["invoice_posted"]


def test_exhausted_retries_open_target_unavailable_with_money_at_stake(
        engine: Engine, tmp_path: Path) -> None:
    clock = Clock()
    target = Faulty(tmp_path, [TransientError("down")] * 10)
    hub = make_hub(engine, tmp_path, targets={"ledger": target}, clock=clock,
                   hub_settings=settings(attempts_max=3))
    ingest(hub, [_invoice(1)])
    _run_retries(hub, clock, 5)
    assert target.calls == 3
    assert hub.status()["deliveries"] == {"dead": 1}
    (error,) = hub.exceptions()
    assert error["class"] == ExceptionClass.TARGET_UNAVAILABLE
    assert error["amount_at_stake"] == "100.00 USD"
    assert error["correlation_id"] == "amd-1"


def test_permanent_error_is_classified_and_not_retried(engine: Engine, tmp_path: Path) -> None:
    clock = Clock()
    target = Faulty(tmp_path, [PermanentError("period 2026-01 is closed",
                                              exception_class=ExceptionClass.CLOSED_PERIOD)])
    hub = make_hub(engine, tmp_path, targets={"ledger": target}, clock=clock)
    ingest(hub, [_invoice(1)])
    _run_retries(hub, clock, 3)
    assert target.calls == 1
    (error,) = hub.exceptions()
    assert error["class"] == ExceptionClass.CLOSED_PERIOD
    assert hub.status()["deliveries"] == {"failed": 1}


def test_failed_delivery_holds_back_later_versions_of_its_aggregate(
        engine: Engine, tmp_path: Path) -> None:
    clock = Clock()
    target = Faulty(tmp_path, [PermanentError("unbalanced",
                                              exception_class=ExceptionClass.MAPPING_ERROR)])
    hub = make_hub(engine, tmp_path, targets={"ledger": target}, clock=clock)
    ingest(hub, [_invoice(1, 1), _invoice(1, 2), _invoice(2)])
    _run_retries(hub, clock, 2)
    assert hub.status()["deliveries"] == {"failed": 1, "pending": 1, "done": 1}


def test_unexpected_error_is_recorded_as_internal_error(engine: Engine, tmp_path: Path) -> None:
    target = Faulty(tmp_path, [KeyError("bug")])
    hub = make_hub(engine, tmp_path, targets={"ledger": target})
    ingest(hub, [_invoice(1)])
    hub.run_until_idle()
    (error,) = hub.exceptions()
    assert error["class"] == ExceptionClass.INTERNAL_ERROR
    assert "KeyError" in error["summary"] and "Traceback" in error["detail"]


def test_route_to_an_unconfigured_system_opens_target_unavailable(engine: Engine,
                                                                 tmp_path: Path) -> None:
    hub = make_hub(engine, tmp_path, targets={})
    ingest(hub, [_invoice(1)])
    hub.run_until_idle()
    (error,) = hub.exceptions()
    assert error["class"] == ExceptionClass.TARGET_UNAVAILABLE
    assert "no connector" in error["summary"]


def test_a_stored_event_that_no_longer_reads_fails_alone(engine: Engine,
                                                          tmp_path: Path) -> None:
    clock = Clock()
    target = Faulty(tmp_path, [TransientError("down"), TransientError("down")])
    hub = make_hub(engine, tmp_path, targets={"ledger": target}, clock=clock)
    ingest(hub, [_invoice(1), _invoice(2)])
    hub.run_until_idle()
    assert hub.status()["deliveries"] == {"pending": 2}
    with engine.begin() as conn:  # a payload no upcaster lifts (hand-edited, say)
        conn.execute(update(events).where(events.c.aggregate_id == "inv_1")
                     .values(payload='{"invoice": {"id": 5}}'))
    _run_retries(hub, clock, 3)
    assert hub.status()["deliveries"] == {"failed": 1, "done": 1}
    (error,) = hub.exceptions()
    assert error["class"] == ExceptionClass.MAPPING_ERROR
    assert "does not read" in error["summary"] and error["correlation_id"] == "amd-1"


class Slow(Faulty):
    """Each call lasts 12 s of the hub's clock, and sees which deliveries in flight have
    a lease that ran out."""

    def __init__(self, exports: Path, engine: Engine, clock: Clock) -> None:
        super().__init__(exports, [])
        self.engine, self.clock, self.expired = engine, clock, list[int]()

    def deliver(self, event: AnyEvent, ctx: DeliveryContext) -> Receipt:
        self.clock.advance(12)
        with reading(self.engine) as conn:
            self.expired.append(conn.execute(select(func.count()).where(
                deliveries.c.status == "in_flight",
                deliveries.c.lease_expires_at < self.clock())).scalar_one())
        return super().deliver(event, ctx)


def test_a_batch_slower_than_its_lease_keeps_its_deliveries(
        engine: Engine, tmp_path: Path) -> None:
    """Outcomes are recorded after a batch's last call: five calls of 12 s each outlast
    the 30 s lease of the batch, unless the worker keeps it."""
    clock = Clock()
    target = Slow(tmp_path, engine, clock)
    hub = make_hub(engine, tmp_path, targets={"ledger": target}, clock=clock)
    ingest(hub, [_invoice(n) for n in range(5)])
    hub.run_until_idle()
    assert target.calls == 5 and target.expired == [0] * 5
    assert hub.status()["deliveries"] == {"done": 5}
    with reading(engine) as conn:
        assert {r["lease_expiries"] for r in outbox.all_rows(conn)} == {0}
