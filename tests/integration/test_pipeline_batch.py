"""The pipeline in sets (issue 19): a batch of raw events is accepted a set at a time and
its receipts recorded a set at a time, with every per-item rule intact: a poison item fails
alone, never its batch; versions of an aggregate apply and go out in order; a second copy of
an event is a duplicate. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, select

from finsync.connectors.ports import DeliveryContext, Receipt, Reference
from finsync.domain.errors import ExceptionClass
from finsync.domain.events import AnyEvent
from finsync.domain.status import RawStatus
from finsync.hub.service import Hub
from finsync.storage.db import reading
from finsync.storage.schema import events, raw_events
from tests.builders import contract_doc, envelope, payment_doc
from tests.hubkit import ingest, make_hub, settings
from tests.integration.test_quarantine import PoisonedMapper, _mapping_with

ROUTES = {t: ("books",) for t in ("payment.applied", "contract.created", "contract.amended")}


class RecordingTarget:
    """Takes every event, remembers the order it saw each aggregate's versions in, and
    answers with a cross-reference (so receipts write cross-references and milestones)."""

    system = "books"

    def __init__(self) -> None:
        self.seen: list[tuple[str, int | None]] = []

    def handles(self, event_type: str) -> bool:
        return True

    def deliver(self, event: AnyEvent, ctx: DeliveryContext) -> Receipt:
        aggregate = event.aggregate()
        self.seen.append((aggregate.id, aggregate.version))
        external = f"x-{aggregate.id}-{aggregate.version}"
        return Receipt(external, (Reference(f"{aggregate.id}@{aggregate.version}",
                                            aggregate.type, external),))

    def milestone(self, event_type: str) -> None:
        return None

    def find_receipt(self, key: str) -> None:
        return None


def _payment(name: str, *, source: str = "billing") -> bytes:
    return json.dumps(envelope("payment.applied", name, ("payment", name, None),
                               {"payment": payment_doc(name, "10.00", "inv_1")},
                               correlation_id=f"c-{name}", source=source)).encode()


def _version(contract: str, version: int) -> bytes:
    doc = contract_doc(contract, version, 100 * version, "120.00")
    if version == 1:
        payload, type_ = {"contract": doc}, "contract.created"
    else:
        payload, type_ = {"amendment": {
            "id": f"amd_{contract}_{version}", "contract_id": contract, "version": version,
            "effective_date": "2026-05-16", "reason": "upgrade", "changes": [],
            "contract": doc}}, "contract.amended"
    return json.dumps(envelope(type_, f"{contract}-v{version}",
                               ("subscription_contract", contract, version), payload,
                               correlation_id=f"{contract}-{version}")).encode()


def _poison_mapper() -> PoisonedMapper:
    def defect() -> None:
        raise RecursionError("maximum recursion depth exceeded")
    return PoisonedMapper(defect)


def _hub(engine: Engine, tmp_path: Path,
         intake_batch_size: int | None = None) -> tuple[Hub, RecordingTarget]:
    target = RecordingTarget()
    chosen = settings(ROUTES)
    if intake_batch_size is not None:
        chosen = replace(chosen, intake_batch_size=intake_batch_size)
    hub = make_hub(engine, tmp_path, targets={"books": target}, hub_settings=chosen)
    return _mapping_with(hub, _poison_mapper()), target


def _raw_statuses(engine: Engine) -> dict[int, str]:
    with reading(engine) as conn:
        return {int(i): str(s) for i, s in conn.execute(
            select(raw_events.c.id, raw_events.c.status))}


# 50: one batch holds every item. 3: each full batch has the next three mapped ahead
# (`hub.read_ahead`), poison items among them.
@pytest.mark.parametrize("intake_batch_size", [50, 3])
def test_batch_of_good_poison_and_out_of_order_items_fails_only_the_poison(
        engine: Engine, tmp_path: Path, intake_batch_size: int) -> None:
    hub, target = _hub(engine, tmp_path, intake_batch_size)
    bodies = [
        _payment("pay_1"),                              # 1 good
        _version("con_a", 3),                           # 2 parks (1 and 2 not yet here)
        b'{"not": "an envelope"',                       # 3 poison: a defect (not JSON)
        _version("con_b", 1),                           # 4 good, in order
        _payment("pay_poison"),                         # 5 poison: a defect while mapping
        _version("con_a", 1),                           # 6 applies
        _payment("pay_2", source="revrec"),             # 7 poison: not the owner
        _payment("pay\ud800bad"),                       # 8 poison: no database stores it
        _version("con_b", 2),                           # 9 good, in order
        _version("con_a", 2),                           # 10 fills the gap: 2, then 3
        _payment("pay_1"),                              # 11 a copy of 1: a duplicate
        _payment("pay_3"),                              # 12 good
    ]
    ingest(hub, bodies)
    summary = hub.run_until_idle()

    assert summary.raw_processed == len(bodies)
    statuses = _raw_statuses(engine)
    poison = {3, 5, 7, 8}
    assert {i for i, s in statuses.items() if s == RawStatus.REJECTED} == poison - {7}
    assert all(statuses[i] == RawStatus.MAPPED for i in statuses if i not in poison - {7})
    classes = sorted((e["class"], e["raw_event_id"]) for e in hub.exceptions())
    assert classes == sorted([(ExceptionClass.INTERNAL_ERROR, 3),
                              (ExceptionClass.INTERNAL_ERROR, 5),
                              (ExceptionClass.OWNERSHIP_VIOLATION, 7),
                              (ExceptionClass.INTERNAL_ERROR, 8)])
    status = hub.status()
    assert status["duplicates_ignored"] == 1
    assert status["events"] == {"accepted": 7, "rejected": 1}
    assert status["deliveries"] == {"done": 7}
    # Order holds per aggregate: con_a went out 1, 2, 3 although 3 came first.
    assert [v for a, v in target.seen if a == "con_a"] == [1, 2, 3]
    assert [v for a, v in target.seen if a == "con_b"] == [1, 2]
    with reading(engine) as conn:
        applied = [v for (v,) in conn.execute(
            select(events.c.aggregate_version).where(events.c.aggregate_id == "con_a")
            .order_by(events.c.position))]
    assert applied == [3, 1, 2]  # stored in arrival order, applied in version order


@contextmanager
def _statements(engine: Engine) -> Iterator[list[str]]:
    """Every statement sent to the database (an executemany counts once)."""
    sent: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(" ".join(statement.split()).upper())

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", note)


def test_a_batch_writes_each_table_once(engine: Engine, tmp_path: Path) -> None:
    """Thirty plain events: one statement per table for acceptance and for their receipts,
    not one per event."""
    hub, target = _hub(engine, tmp_path)
    ingest(hub, [_payment(f"pay_{i}") for i in range(30)])
    with _statements(engine) as sent:
        hub.run_until_idle()
    assert len(target.seen) == 30
    assert hub.status()["deliveries"] == {"done": 30}

    def count(prefix: str) -> int:
        return sum(1 for s in sent if s.startswith(prefix))

    assert count("INSERT INTO EVENTS") == 1
    assert count("INSERT INTO DELIVERIES") == 1
    assert count("UPDATE RAW_EVENTS") == 1
    assert count("INSERT INTO CROSS_REFS") == 2  # receipts in two claims of 20 (batch_size)
    assert count("SAVEPOINT") == 0


def test_handed_over_envelopes_are_the_stored_events(engine: Engine, tmp_path: Path) -> None:
    """Delivery takes what acceptance handed over instead of decoding the stored event: it
    must be the very event the log holds (contracts, amendments, invoices, payments)."""
    from finsync.storage import event_log
    from tests.builders import lifecycle_stream

    hub = make_hub(engine, tmp_path, hub_settings=settings({}))
    ingest(hub, lifecycle_stream(customers=2).lines())
    hub.run_until_idle()  # no routes: nothing is delivered, so nothing is taken
    with reading(engine) as conn:
        ids = [str(i) for (i,) in conn.execute(select(events.c.event_id))]
        stored = event_log.get_many(conn, ids)
    handed = hub.handover.take_many(ids)
    assert handed and len(handed) == len(ids)
    for event_id, env in handed.items():
        assert stored[event_id] == env
