"""The hub's side of partitioned workers (issue 20), on SQLite and PostgreSQL: deliveries
carry their partition hash, a worker claims only its partitions, and raw events
mapped elsewhere are accepted by the same batch path, each decided once however often its
message comes."""

from __future__ import annotations

import json
import random
from pathlib import Path

from sqlalchemy import Engine, insert, select, update

from finsync.domain.envelope import Envelope
from finsync.domain.errors import ExceptionClass
from finsync.domain.partition import partition_hash
from finsync.domain.status import RawStatus
from finsync.hub.service import Hub
from finsync.storage import outbox, raw_log
from finsync.storage.db import reading, transaction
from finsync.storage.schema import deliveries, events, raw_events
from tests.builders import envelope, payment_doc
from tests.contract.test_storage import NOW, _event_row
from tests.hubkit import ingest, make_hub, settings
from tests.integration.test_pipeline_batch import ROUTES, RecordingTarget, _version


def _stored(engine: Engine, *ids: str) -> None:
    with transaction(engine) as conn:
        conn.execute(insert(events), [_event_row(i) for i in ids])


def _key_in(partition: int, count: int, taken: set[str]) -> str:
    """A partition key of `partition` (out of `count`) not in `taken`."""
    for n in range(10_000):
        key = f"payment:pay_{n}"
        if key not in taken and partition_hash(key) % count == partition:
            return key
    raise AssertionError("no key found")


def test_enqueue_fills_the_partition_hash(engine: Engine) -> None:
    _stored(engine, "e1", "e2")
    with transaction(engine) as conn:
        outbox.enqueue(conn, "e1", ["ledger"], "payment:p1", "c", NOW)
        outbox.enqueue_many(conn, [outbox.NewDeliveries("e2", ("ledger",), "payment:p2", "c")],
                            NOW)
        rows = {r["event_id"]: r for r in outbox.all_rows(conn)}
    assert rows["e1"]["partition_hash"] == partition_hash("payment:p1")
    assert rows["e2"]["partition_hash"] == partition_hash("payment:p2")


def test_claim_takes_only_the_owned_partitions_and_a_null_hash_is_partition_0(
        engine: Engine) -> None:
    keys: set[str] = set()
    for p in (0, 1, 2, 3):
        keys.add(_key_in(p, 4, keys))
    by_partition = {partition_hash(k) % 4: k for k in keys}
    _stored(engine, "e0", "e1", "e2", "e3", "old")
    with transaction(engine) as conn:
        for p, key in sorted(by_partition.items()):
            outbox.enqueue(conn, f"e{p}", ["ledger"], key, "c", NOW)
        outbox.enqueue(conn, "old", ["ledger"], "legacy:1", "c", NOW)
        conn.execute(update(deliveries).where(deliveries.c.event_id == "old")
                     .values(partition_hash=None))  # enqueued before the column
    with transaction(engine) as conn:
        assert outbox.claim(conn, "w", NOW, 30, 10, partitions=(4, ())) == []
        assert not outbox.any_due(conn, NOW, partitions=(4, ()))
        assert outbox.any_due(conn, NOW, partitions=(4, {2}))
        mine = outbox.claim(conn, "w", NOW, 30, 10, partitions=(4, {0, 2}))
        assert sorted(d.event_id for d in mine) == ["e0", "e2", "old"]
        rest = outbox.claim(conn, "v", NOW, 30, 10, partitions=(4, {1, 3}))
        assert sorted(d.event_id for d in rest) == ["e1", "e3"]


def test_an_expired_lease_in_my_partitions_is_not_held_back_by_others_in_flight(
        engine: Engine) -> None:
    """A suspect (a lease that ran out) is retaken when nothing else is in flight: in the
    owner's partitions, not in the whole outbox (another worker is always busy)."""
    from datetime import timedelta

    mine = _key_in(0, 2, set())
    theirs = _key_in(1, 2, {mine})
    _stored(engine, "m", "t")
    with transaction(engine) as conn:
        outbox.enqueue(conn, "m", ["ledger"], mine, "c", NOW)
        outbox.enqueue(conn, "t", ["ledger"], theirs, "c", NOW)
        (dead,) = outbox.claim(conn, "gone", NOW, 30, 10, partitions=(2, {0}))
        later = NOW + timedelta(seconds=31)
        (busy,) = outbox.claim(conn, "other", later, 30, 10, partitions=(2, {1}))
        (taken,) = outbox.claim(conn, "new", later, 30, 10, partitions=(2, {0}))
    assert taken.id == dead.id and busy.event_id == "t"


# -- accept_stored -----------------------------------------------------------------------


def _hub(engine: Engine, tmp_path: Path) -> tuple[Hub, RecordingTarget]:
    target = RecordingTarget()
    return make_hub(engine, tmp_path, targets={"books": target},
                    hub_settings=settings(ROUTES)), target


def _mapped(hub: Hub, bodies: list[bytes]) -> list[tuple[int, list[Envelope] | None]]:
    """Store the bodies as raw events and map them, as the archiver does (which marks
    them `mapped` at once, so that the in-process processor never takes them)."""
    ingest(hub, bodies)
    with transaction(hub.engine) as conn:
        stored = raw_log.pending(conn, len(bodies))
        raw_log.mark_many(conn, [raw.id for raw in stored], RawStatus.MAPPED, NOW)
    items: list[tuple[int, list[Envelope] | None]] = []
    for raw in stored:
        try:
            items.append((raw.id, hub.mappers.map(raw)))
        except Exception:
            items.append((raw.id, None))
    return items


def _statuses(engine: Engine) -> dict[int, str]:
    with reading(engine) as conn:
        return {int(i): str(s) for i, s in conn.execute(
            select(raw_events.c.id, raw_events.c.status))}


def test_stored_raw_events_are_accepted_once_whatever_the_redeliveries(
        engine: Engine, tmp_path: Path) -> None:
    hub, target = _hub(engine, tmp_path)
    items = _mapped(hub, [_version("con_a", v) for v in (1, 2, 3)])
    shuffled = [items[2], items[0]]
    first = hub.processor.accept_stored(shuffled)
    assert first["raw"] == 2 and first["parked"] == 1 and first["accepted"] == 1
    again = hub.processor.accept_stored([*shuffled, items[1], items[1]])  # redelivered
    assert again["skipped"] == 2 and again["raw"] == 1 and again["accepted"] == 1
    assert hub.processor.accept_stored([(999_999, None)])["missing"] == 1
    assert set(_statuses(engine).values()) == {RawStatus.MAPPED}
    hub.run_until_idle()
    assert [v for a, v in target.seen if a == "con_a"] == [1, 2, 3]
    assert hub.status()["duplicates_ignored"] == 0


def test_a_bad_item_is_quarantined_alone_and_unreadable_envelopes_are_mapped_again(
        engine: Engine, tmp_path: Path) -> None:
    hub, _target = _hub(engine, tmp_path)
    good = json.dumps(envelope("payment.applied", "pay_1", ("payment", "pay_1", None),
                               {"payment": payment_doc("pay_1", "10.00", "inv_1")},
                               correlation_id="c-1")).encode()
    items = _mapped(hub, [good, b'{"not": "an envelope"', _version("con_b", 1)])
    assert items[1][1] is None
    (raw_good, _), (raw_bad, _), (raw_con, envs) = items
    outcomes = hub.processor.accept_stored([(raw_good, None), (raw_bad, None),
                                            (raw_con, envs)])
    assert outcomes["raw"] == 3 and outcomes["accepted"] == 2 and outcomes["rejected"] == 1
    statuses = _statuses(engine)
    assert statuses[raw_bad] == RawStatus.REJECTED
    assert statuses[raw_good] == statuses[raw_con] == RawStatus.MAPPED
    (exc,) = hub.exceptions()
    assert exc["raw_event_id"] == raw_bad
    assert exc["class"] in (ExceptionClass.MAPPING_ERROR, ExceptionClass.INTERNAL_ERROR)


def test_shuffled_batches_of_versions_apply_in_order(engine: Engine, tmp_path: Path) -> None:
    hub, target = _hub(engine, tmp_path)
    bodies = [_version(c, v) for c in ("con_a", "con_b") for v in range(1, 6)]
    items = _mapped(hub, bodies)
    rng = random.Random(3)
    rng.shuffle(items)
    for start in range(0, len(items), 3):
        hub.processor.accept_stored(items[start:start + 3])
    hub.run_until_idle()
    for contract in ("con_a", "con_b"):
        assert [v for a, v in target.seen if a == contract] == [1, 2, 3, 4, 5]
