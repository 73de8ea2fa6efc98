"""The archiver on a real 3-node JetStream cluster, on SQLite and PostgreSQL: a batch of raw
messages is stored in one transaction, each raw event mapped and its envelopes published to
its partition; a crash anywhere (before the publish, after it, before the acks) or a failed
publish hands the batch over again, and then nothing is stored twice and nothing published
twice; an unmappable body is a `mapping_error`, published nowhere; rows the archiver stored
are never taken by the in-process processor."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

from finsync.domain.status import RawStatus
from finsync.hub.acceptance import partition_key
from finsync.hub.group_commit import Checked
from finsync.hub.service import Hub
from finsync.storage import raw_log
from finsync.storage.db import reading
from finsync.storage.exception_log import listing
from finsync.storage.raw_log import RawIn
from finsync.streaming.archiver import Archived, Archiver
from finsync.streaming.client import Incoming, JetStream, TransportUnavailableError
from finsync.streaming.event_message import RAW_ID, decode_envelopes
from finsync.streaming.raw_publisher import RawPublisher
from finsync.streaming.settings import TransportSettings
from finsync.streaming.subjects import partition_of
from tests.hubkit import make_hub
from tests.rawkit import (
    NO_QUORUM,
    Crash,
    FailingPublish,
    checked,
    jetstream,
    payment,
    raw_rows,
    statuses,
    stream_messages,
)

REDELIVERY_WAIT_S = 5.0  # fetch long enough for a message whose ack_wait (1 s) ran out
# A first fetch by a new consumer can answer late on a loaded machine (seen in CI: nothing
# within 1 s); a fetch returns as soon as messages come, so waiting longer costs nothing
# when they are there.
FIRST_FETCH_WAIT_S = 15.0


@pytest.fixture
def settings(transport_settings: TransportSettings) -> TransportSettings:
    """A short ack_wait, so that what a crashed archiver held comes again within the test."""
    return replace(transport_settings, ack_wait_s=1.0, partitions=4)


@pytest.fixture
def js(settings: TransportSettings) -> Iterator[JetStream]:
    with jetstream(settings) as connected:
        yield connected


def _archiver(engine: Engine, hub: Hub, js: Any, settings: TransportSettings,
              fetch_wait_s: float = FIRST_FETCH_WAIT_S) -> Archiver:
    return Archiver(engine, hub.mappers, js, settings, hub.clock, fetch_wait_s=fetch_wait_s)


def _redelivered(archiver: Archiver, messages: int, rounds: int = 10) -> Archived:
    """What `archiver` did with the next `messages` messages handed over again (they may
    come back over several fetches: each one's ack_wait or nak delay runs on its own)."""
    total = Archived()
    for _ in range(rounds):
        total.add(archiver.archive_batch())
        if total.messages >= messages:
            break
    return total


def _events(js: JetStream, settings: TransportSettings) -> list[Incoming]:
    return stream_messages(js, settings, "EVENTS", f"{settings.namespace}.events.>")


def _published_raw_ids(js: JetStream, settings: TransportSettings) -> list[int]:
    return sorted(int(m.headers[RAW_ID]) for m in _events(js, settings))


def test_a_batch_is_stored_mapped_and_published_one_message_per_raw_event(
        engine: Engine, tmp_path: Path, js: JetStream, settings: TransportSettings) -> None:
    hub = make_hub(engine, tmp_path)
    sent = RawPublisher(js, settings)(checked(hub, [payment(n) for n in range(3)]))
    archived = _archiver(engine, hub, js, settings).archive_batch()
    assert (archived.messages, archived.stored, archived.again, archived.published) == (
        3, 3, 0, 3)
    rows = raw_rows(engine)
    assert [r["transport_id"] for r in rows] == [p.transport_id for p in sent]
    assert {r["status"] for r in rows} == {RawStatus.MAPPED}
    by_raw = {int(m.headers[RAW_ID]): m for m in _events(js, settings)}
    assert sorted(by_raw) == [r["id"] for r in rows]
    for row in rows:
        message = by_raw[row["id"]]
        [envelope] = decode_envelopes(message.data)
        assert envelope.source_event_id == json.loads(row["body"])["source_event_id"]
        assert envelope.received_at == row["received_at"]
        p = partition_of(partition_key(envelope.aggregate), settings.partitions)
        assert message.subject.startswith(f"{settings.namespace}.events.")
        assert message.subject.endswith(f".{p}")
    # Stored as mapped at once: the in-process processor has nothing to take.
    assert hub.processor.process_batch()["raw"] == 0


def test_a_crash_between_the_commit_and_the_publish_loses_nothing(
        engine: Engine, tmp_path: Path, js: JetStream, settings: TransportSettings) -> None:
    hub = make_hub(engine, tmp_path)
    RawPublisher(js, settings)(checked(hub, [payment(n) for n in range(3)]))
    with pytest.raises(Crash):  # committed, then died: no publish, no ack, no nak
        _archiver(engine, hub, FailingPublish(js, Crash()), settings).archive_batch()
    assert statuses(engine) == [RawStatus.MAPPED] * 3
    assert _events(js, settings) == []
    again = _redelivered(_archiver(engine, hub, js, settings, REDELIVERY_WAIT_S), 3)
    assert (again.messages, again.stored, again.again, again.published) == (3, 0, 3, 3)
    assert len(raw_rows(engine)) == 3  # nothing stored twice
    assert _published_raw_ids(js, settings) == [r["id"] for r in raw_rows(engine)]


class _PublishThenCrash:
    """Publishes, then dies before acknowledging anything."""

    def __init__(self, js: JetStream) -> None:
        self._js = js

    def publish_many(self, *args: Any, **kwargs: Any) -> Any:
        self._js.publish_many(*args, **kwargs)
        raise Crash()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._js, name)


def test_a_crash_after_the_publish_republishes_under_the_same_ids_deduplicated(
        engine: Engine, tmp_path: Path, js: JetStream, settings: TransportSettings) -> None:
    hub = make_hub(engine, tmp_path)
    RawPublisher(js, settings)(checked(hub, [payment(n) for n in range(4)]))
    with pytest.raises(Crash):
        _archiver(engine, hub, _PublishThenCrash(js), settings).archive_batch()
    again = _redelivered(_archiver(engine, hub, js, settings, REDELIVERY_WAIT_S), 4)
    assert (again.stored, again.again, again.published) == (0, 4, 4)
    ids = [r["id"] for r in raw_rows(engine)]
    assert len(ids) == 4
    assert _published_raw_ids(js, settings) == ids  # each raw event's message once


def test_a_publish_without_quorum_hands_the_batch_back(
        engine: Engine, tmp_path: Path, js: JetStream, settings: TransportSettings) -> None:
    hub = make_hub(engine, tmp_path)
    RawPublisher(js, settings)(checked(hub, [payment(n) for n in range(2)]))
    with pytest.raises(TransportUnavailableError):
        _archiver(engine, hub, FailingPublish(js, NO_QUORUM), settings).archive_batch()
    again = _redelivered(_archiver(engine, hub, js, settings, REDELIVERY_WAIT_S), 2)
    assert (again.messages, again.again, again.published) == (2, 2, 2)
    assert _published_raw_ids(js, settings) == [r["id"] for r in raw_rows(engine)]


def _unmappable(hub: Hub) -> Checked:
    """A body a node published although it does not map here (the node's configuration
    differed): what the archiver must reject, never lose."""
    [good] = checked(hub, [payment(1)])
    body = json.dumps({"type": "payment.applied", "source": "billing"}).encode()
    return Checked(RawIn("billing", body, {}, "application/json"), None, good.received_at)


def test_an_unmappable_raw_event_is_a_mapping_error_and_is_published_nowhere(
        engine: Engine, tmp_path: Path, js: JetStream, settings: TransportSettings) -> None:
    hub = make_hub(engine, tmp_path)
    RawPublisher(js, settings)([_unmappable(hub), *checked(hub, [payment(2)])])
    with pytest.raises(Crash):  # and once more after a crash: still one exception
        _archiver(engine, hub, FailingPublish(js, Crash()), settings).archive_batch()
    again = _redelivered(_archiver(engine, hub, js, settings, REDELIVERY_WAIT_S), 2)
    assert (again.again, again.published) == (2, 1)
    bad, good = raw_rows(engine)
    assert bad["status"] == RawStatus.REJECTED and bad["error_code"] == "invalid_envelope"
    assert good["status"] == RawStatus.MAPPED
    with reading(engine) as conn:
        [opened] = listing(conn)
    assert opened["class"] == "mapping_error"
    assert opened["raw_event_id"] == bad["id"]
    assert _published_raw_ids(js, settings) == [good["id"]]


def test_a_message_no_intake_node_wrote_is_terminated_and_the_batch_goes_on(
        engine: Engine, tmp_path: Path, js: JetStream, settings: TransportSettings) -> None:
    hub = make_hub(engine, tmp_path)
    js.publish(f"{settings.namespace}.raw.billing", b"{}", msg_id="stray")
    RawPublisher(js, settings)(checked(hub, [payment(1)]))
    archived = _archiver(engine, hub, js, settings).archive_batch()
    assert (archived.messages, archived.unreadable, archived.stored) == (2, 1, 1)
    assert _archiver(engine, hub, js, settings, REDELIVERY_WAIT_S).archive_batch().messages == 0
    assert len(raw_rows(engine)) == 1


def test_two_thousand_raw_events_are_archived_in_a_handful_of_transactions(
        engine: Engine, tmp_path: Path, js: JetStream, settings: TransportSettings) -> None:
    # A loaded machine can take longer than the fixture's 1 s ack_wait over a 500-message
    # batch; the redelivered batch then counts twice (seen in CI). Redelivery is not what
    # this test measures.
    settings = replace(settings, ack_wait_s=60.0)
    hub = make_hub(engine, tmp_path)
    publisher = RawPublisher(js, settings)
    for first in range(0, 2000, 500):
        publisher(checked(hub, [payment(n) for n in range(first, first + 500)]))
    inserts: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO RAW_EVENTS"):
            inserts.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    archiver = _archiver(engine, hub, js, settings, fetch_wait_s=1.0)  # ends on an empty one
    batches: list[None] = []
    started = time.perf_counter()
    archived = 0
    for _ in range(3):  # a pipeline worker's step; on a loaded machine a long poll can come
        archived += archiver.step(lambda: batches.append(None))  # back empty (seen in CI)
        if archived >= 2000:
            break
    assert archived == 2000
    took_s = time.perf_counter() - started - archiver.fetch_wait_s  # the last, empty fetch
    event.remove(engine, "before_cursor_execute", count)
    print(f"2,000 raw events archived: {archiver.transactions} transactions, "
          f"{len(inserts)} INSERT statements, {2000 / took_s:,.0f} raw events/s "
          f"({engine.dialect.name}; a figure, not a test)")
    assert archiver.transactions == len(batches) <= 5
    assert len(inserts) <= 5
    assert statuses(engine) == [RawStatus.MAPPED] * 2000
    assert len(_events(js, settings)) == 2000


def test_envelopes_too_large_to_carry_quarantine_their_raw_event_alone(
        engine: Engine, tmp_path: Path, js: JetStream, settings: TransportSettings) -> None:
    hub = make_hub(engine, tmp_path)
    small, large = payment(1), b"[" + b",".join(payment(n) for n in range(2, 12)) + b"]"
    RawPublisher(js, settings)(checked(hub, [small, large]))
    archiver = Archiver(engine, hub.mappers, js, settings, hub.clock, fetch_wait_s=1.0,
                        message_max_bytes=4 * len(small))  # 1 envelope fits, 10 do not
    archived = archiver.archive_batch()
    assert (archived.stored, archived.rejected, archived.published) == (2, 1, 1)
    fits, too_large = raw_rows(engine)
    assert fits["status"] == RawStatus.MAPPED
    assert too_large["status"] == RawStatus.REJECTED
    assert too_large["error_code"] == "internal_error"
    assert "transport's limit" in too_large["error_detail"]
    assert _published_raw_ids(js, settings) == [fits["id"]]


def test_a_message_that_cannot_be_stored_even_alone_is_given_up_with_an_exception(
        engine: Engine, tmp_path: Path, js: JetStream, settings: TransportSettings,
        monkeypatch: pytest.MonkeyPatch) -> None:
    hub = make_hub(engine, tmp_path)
    sent = RawPublisher(js, settings)(checked(hub, [payment(n) for n in range(3)]))
    poison = sent[1].transport_id
    append = raw_log.append_transported

    def failing(conn: Any, items: Any) -> Any:  # a defect met on one message only
        if any(item.transport_id == poison for item in items):
            raise ValueError("a defect on this message")
        return append(conn, items)

    monkeypatch.setattr(raw_log, "append_transported", failing)
    archived = _archiver(engine, hub, js, settings).archive_batch()
    assert (archived.messages, archived.stored, archived.unstorable, archived.published) == (
        3, 2, 1, 2)
    assert [r["transport_id"] for r in raw_rows(engine)] == [sent[0].transport_id,
                                                            sent[2].transport_id]
    with reading(engine) as conn:
        [opened] = listing(conn)
    assert opened["class"] == "internal_error"
    assert "a defect on this message" in opened["summary"]
    # Terminated: never handed over again, so it never holds back the stream.
    assert _archiver(engine, hub, js, settings, REDELIVERY_WAIT_S).archive_batch().messages == 0


def test_two_archivers_share_the_stream_and_store_each_raw_event_once(
        engine: Engine, tmp_path: Path, js: JetStream, settings: TransportSettings) -> None:
    hub = make_hub(engine, tmp_path)
    publisher = RawPublisher(js, settings)
    for first in range(0, 1000, 250):
        publisher(checked(hub, [payment(n) for n in range(first, first + 250)]))
    with jetstream(settings) as other, ThreadPoolExecutor(2) as pool:
        archivers = [Archiver(engine, hub.mappers, connection, settings, hub.clock,
                              batch_max=100, fetch_wait_s=1.0) for connection in (js, other)]
        for archiver in archivers:  # both bound before they race: a fetch racing the
            archiver.bind()          # consumer's creation by another gets a 503 (retried)
        done = list(pool.map(lambda archiver: archiver.step(), archivers))
    # Both took a share; a batch slower than ack_wait (1 s here) is handed to the other
    # archiver as well, which finds it stored: more deliveries, never more rows.
    assert sum(done) >= 1000 and all(done)
    rows = raw_rows(engine)
    assert len(rows) == len({r["transport_id"] for r in rows}) == 1000
    assert _published_raw_ids(js, settings) == sorted(r["id"] for r in rows)
