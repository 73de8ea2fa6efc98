"""One contract for the hub's storage, run on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from finsync.domain.errors import ExceptionClass
from finsync.domain.money import Money
from finsync.domain.refs import ReferenceConflictError
from finsync.storage import cross_ref, exception_log, milestone_log, outbox, raw_log, tracking
from finsync.storage.db import reading, transaction
from finsync.storage.exception_log import NewException
from finsync.storage.raw_log import RawIn
from finsync.storage.schema import cross_refs, events, metadata
from finsync.storage.tracking import IdempotencyConflictError

NOW = datetime(2026, 6, 30, 23, 59, 59, 999999, tzinfo=UTC)


def _event_row(event_id: str) -> dict[str, object]:
    return {"event_id": event_id, "type": "payment.applied", "schema_version": 1,
            "source": "billing", "source_event_id": event_id, "occurred_at": NOW,
            "received_at": NOW, "correlation_id": "c", "aggregate_type": "payment",
            "aggregate_id": event_id, "payload": "{}", "payload_hash": "h", "status": "accepted",
            "status_changed_at": NOW}


def _events(engine: Engine, *ids: str) -> None:
    with transaction(engine) as conn:
        conn.execute(insert(events), [_event_row(i) for i in ids])


def test_migrations_produce_exactly_the_declared_schema(engine: Engine) -> None:
    hub_tables = set(metadata.tables)

    def ours(name: str | None, kind: str, _parent: object) -> bool:
        return kind != "table" or name in hub_tables  # the systems' tables have their own

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": ours})
        diff = compare_metadata(context, metadata)
    assert diff == []


def test_raw_events_round_trip_bytes_headers_and_utc(engine: Engine) -> None:
    body = b'\x00\xff{"not": "utf-8 safe"}'
    with transaction(engine) as conn:
        first = raw_log.append_one(conn, RawIn("stripe", body, {"stripe-signature": "t=1,v1=ab"}),
                                   NOW)
        assert raw_log.append(conn, [RawIn("stripe", b"2", {}), RawIn("stripe", b"3", {})],
                              NOW) == 2
    with reading(engine) as conn:
        raw = raw_log.get(conn, first)
        assert [r.body for r in raw_log.pending(conn, 10)] == [body, b"2", b"3"]
    assert raw is not None and raw.body == body
    assert raw.headers == {"stripe-signature": "t=1,v1=ab"}
    assert raw.received_at == NOW and raw.received_at.tzinfo is not None


def test_naive_timestamps_are_refused(engine: Engine) -> None:
    with pytest.raises(Exception, match="naive datetime"), transaction(engine) as conn:
        raw_log.append(conn, [RawIn("s", b"x", {})], NOW.replace(tzinfo=None))


def test_source_event_is_unique_per_source(engine: Engine) -> None:
    _events(engine, "e1")
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(events).values({**_event_row("e1"), "event_id": "other"}))


def test_outbox_enqueue_is_idempotent(engine: Engine) -> None:
    _events(engine, "e1")
    with transaction(engine) as conn:
        assert outbox.enqueue(conn, "e1", ["ledger", "revrec"], "p:1", "c", NOW) == 2
        assert outbox.enqueue(conn, "e1", ["ledger", "revrec"], "p:1", "c", NOW) == 0
        assert outbox.counts(conn) == {"pending": 2}


def test_claim_keeps_partition_order_and_leases(engine: Engine) -> None:
    _events(engine, "e1", "e2", "e3")
    with transaction(engine) as conn:
        for event_id, partition in (("e1", "con:1"), ("e2", "con:1"), ("e3", "con:2")):
            outbox.enqueue(conn, event_id, ["ledger"], partition, "c", NOW)
        first = outbox.claim(conn, "w1", NOW, 30, 10)
        assert [d.event_id for d in first] == ["e1", "e3"]  # e2 waits behind e1
        assert outbox.claim(conn, "w2", NOW, 30, 10) == []
        assert outbox.complete(conn, first[0].id, "w1", "{}", NOW)
        assert [d.event_id for d in outbox.claim(conn, "w2", NOW, 30, 10)] == ["e2"]


def test_expired_lease_is_taken_over_and_the_old_owner_cannot_complete(engine: Engine) -> None:
    _events(engine, "e1")
    with transaction(engine) as conn:
        outbox.enqueue(conn, "e1", ["ledger"], "p", "c", NOW)
        (mine,) = outbox.claim(conn, "w1", NOW, 30, 10)
        assert outbox.claim(conn, "w2", NOW + timedelta(seconds=29), 30, 10) == []
        (taken,) = outbox.claim(conn, "w2", NOW + timedelta(seconds=31), 30, 10)
        assert taken.id == mine.id
        assert not outbox.complete(conn, mine.id, "w1", "{}", NOW)
        assert outbox.complete(conn, mine.id, "w2", "{}", NOW)


def test_failed_delivery_blocks_its_partition_until_requeued(engine: Engine) -> None:
    _events(engine, "e1", "e2")
    with transaction(engine) as conn:
        outbox.enqueue(conn, "e1", ["ledger"], "p", "c", NOW)
        outbox.enqueue(conn, "e2", ["ledger"], "p", "c", NOW)
        (d1,) = outbox.claim(conn, "w", NOW, 30, 10)
        outbox.fail(conn, d1.id, "w", "failed", "closed period", NOW)
        assert outbox.claim(conn, "w", NOW, 30, 10) == []
        assert outbox.requeue(conn, ["e1"], NOW) == 1
        assert [d.event_id for d in outbox.claim(conn, "w", NOW, 30, 10)] == ["e1"]


def test_cross_reference_never_changes(engine: Engine) -> None:
    with transaction(engine) as conn:
        assert cross_ref.link(conn, "inv_1", "invoice", "ledger", "JE-1", None, NOW)
        assert not cross_ref.link(conn, "inv_1", "invoice", "ledger", "JE-1", None, NOW)
        with pytest.raises(ReferenceConflictError):
            cross_ref.link(conn, "inv_1", "invoice", "ledger", "JE-2", None, NOW)
        assert cross_ref.resolve(conn, "ledger", "invoice", "JE-1") == "inv_1"
        assert cross_ref.refs_of(conn, "inv_1") == {"ledger": "JE-1"}


def test_tracking_returns_the_first_result_and_refuses_another_body(engine: Engine) -> None:
    with transaction(engine) as conn:
        assert tracking.seen(conn, "ledger", "k1", {"a": 1}) is None
        tracking.track(conn, "ledger", "k1", {"a": 1}, {"entry": "JE-1"}, NOW)
        assert tracking.seen(conn, "ledger", "k1", {"a": 1}) == {"entry": "JE-1"}
        with pytest.raises(IdempotencyConflictError):
            tracking.seen(conn, "ledger", "k1", {"a": 2})


def test_tracking_row_is_unique_per_consumer_and_key(engine: Engine) -> None:
    with pytest.raises(IntegrityError), engine.begin() as conn:
        tracking.track(conn, "ledger", "k1", {}, {}, NOW)
        tracking.track(conn, "ledger", "k1", {}, {}, NOW)


def test_exception_fingerprint_updates_instead_of_duplicating(engine: Engine) -> None:
    new = NewException(ExceptionClass.CLOSED_PERIOD, "delivery:k", "period closed",
                       correlation_id="amd-1", objects=("invoice:inv_1",),
                       amount=Money.of("1234.56", "USD"))
    with transaction(engine) as conn:
        first = exception_log.open_exception(conn, new, NOW)
        again = exception_log.open_exception(conn, new, NOW + timedelta(minutes=1))
        (row,) = exception_log.listing(conn)
    assert first == again
    assert row["amount_at_stake"] == "1234.56 USD"
    assert row["objects"] == ["invoice:inv_1"]
    assert row["updated_at"] == NOW + timedelta(minutes=1)


def test_an_external_id_stands_for_one_canonical_object(engine: Engine) -> None:
    with transaction(engine) as conn:
        cross_ref.link(conn, "inv_1", "invoice", "ledger", "JE-1", None, NOW)
        with pytest.raises(ReferenceConflictError, match="already stands for inv_1"):
            cross_ref.link(conn, "inv_2", "invoice", "ledger", "JE-1", None, NOW)


def test_cross_references_in_a_batch_read_like_linked_ones_and_a_taken_one_fails(
        engine: Engine) -> None:
    links = [("inv_1", "invoice", "ledger", "JE-1", "ev_1"),
             ("pay_1", "payment", "ledger", "PAY-1", None)]
    with transaction(engine) as conn:
        cross_ref.insert_many(conn, links, NOW)
    with reading(engine) as conn:
        assert cross_ref.all_rows(conn) == [("inv_1", "invoice", "ledger", "JE-1"),
                                            ("pay_1", "payment", "ledger", "PAY-1")]
        created = conn.execute(select(cross_refs.c.canonical_id, cross_refs.c.event_id,
                                      cross_refs.c.created_at)
                               .order_by(cross_refs.c.canonical_id)).all()
    assert created == [("inv_1", "ev_1", NOW), ("pay_1", None, NOW)]
    with pytest.raises(IntegrityError), engine.begin() as conn:  # the batch fails whole
        cross_ref.insert_many(conn, [("inv_2", "invoice", "ledger", "JE-2", None),
                                     ("inv_1", "invoice", "ledger", "JE-9", None)], NOW)
    with reading(engine) as conn:
        assert cross_ref.refs_of(conn, "inv_2") == {}


def test_milestones_in_a_batch_are_recorded_once_in_order(engine: Engine) -> None:
    later = NOW + timedelta(seconds=1)
    with transaction(engine) as conn:
        milestone_log.record(conn, "corr-1", "invoice_posted", "ev_1", "ledger", NOW)
        milestone_log.record_many(conn, [
            ("corr-1", "payment_applied", "ev_2", "ledger"),
            ("corr-1", "invoice_posted", "ev_1", "ledger"),  # recorded already
            ("corr-1", "payment_applied", "ev_2", "ledger"),  # twice in the batch
            ("corr-1", "payment_applied", "ev_3", "ledger")], later)
    with reading(engine) as conn:
        timeline = milestone_log.timeline(conn, "corr-1")
    assert [(m["name"], m["event_id"], m["recorded_at"]) for m in timeline] == [
        ("invoice_posted", "ev_1", NOW), ("payment_applied", "ev_2", later),
        ("payment_applied", "ev_3", later)]
    assert [m["id"] for m in timeline] == sorted(m["id"] for m in timeline)
