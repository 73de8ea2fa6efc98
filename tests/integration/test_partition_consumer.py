"""One partition's batch (`streaming.worker.PartitionConsumer.accept`) against messages a
careless or hostile sender could leave on the stream, on SQLite and PostgreSQL: what is
acked, handed back or terminated, and what the database holds after."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import Engine

from finsync.domain.status import RawStatus
from finsync.hub.service import Hub
from finsync.storage import raw_log
from finsync.storage.db import StorageUnavailableError, reading, transaction
from finsync.streaming.event_message import RAW_ID, encode_envelopes
from finsync.streaming.worker import RETRY_MAX_S, PartitionConsumer, retry_delay_s
from tests.hubkit import ingest, make_hub, settings
from tests.integration.test_pipeline_batch import ROUTES, RecordingTarget, _version


@dataclass
class Message:
    """An `Incoming` as the consumer hands it out, recording what was done with it."""

    data: bytes
    headers: dict[str, str]
    num_delivered: int = 1
    subject: str = "t.events.le_us.0"
    stream_seq: int = 1
    done: list[tuple[str, float | None]] = field(default_factory=list)

    def ack(self) -> None:
        self.done.append(("ack", None))

    def nak(self, delay_s: float | None = None) -> None:
        self.done.append(("nak", delay_s))

    def term(self) -> None:
        self.done.append(("term", None))


def _hub(engine: Engine, tmp_path: Path) -> tuple[Hub, RecordingTarget]:
    target = RecordingTarget()
    return make_hub(engine, tmp_path, targets={"books": target},
                    hub_settings=settings(ROUTES)), target


def _messages(hub: Hub, bodies: list[bytes]) -> list[Message]:
    ingest(hub, bodies)
    with transaction(hub.engine) as conn:
        stored = raw_log.pending(conn, len(bodies))
        raw_log.mark_many(conn, [r.id for r in stored], RawStatus.MAPPED, hub.clock())
    return [Message(encode_envelopes(hub.mappers.map(raw)), {RAW_ID: str(raw.id)},
                    stream_seq=raw.id) for raw in stored]


def _deliver_all(hub: Hub) -> None:
    """Rounds until nothing is due (an aggregate's next version waits for the one before)."""
    while hub.deliver_once():
        pass


class Acks:
    """The consumer's side of a batch: `ack_all` acks each message."""

    def ack_all(self, messages: list[Message]) -> None:
        for message in messages:
            message.ack()


def _loop(hub: Hub, owned: bool = True) -> PartitionConsumer:
    return PartitionConsumer(0, Acks(), hub, lambda _p: owned,  # type: ignore[arg-type]
                             lambda: None)


def test_messages_are_acked_after_the_commit_and_strays_terminated(
        engine: Engine, tmp_path: Path) -> None:
    hub, target = _hub(engine, tmp_path)
    good = _messages(hub, [_version("con_a", 1), _version("con_a", 2)])
    stray = [Message(b"[]", {}), Message(b"[]", {RAW_ID: "-1"}),
             Message(b"[]", {RAW_ID: "9" * 40}), Message(b"[]", {RAW_ID: "1e3"}),
             Message(b"[]", {RAW_ID: "\u00b2"}), Message(b"[]", {RAW_ID: " 1"})]
    done = _loop(hub).accept([good[1], *stray, good[0]])
    assert (done.acked, done.terminated, done.handed_back) == (2, 6, 0)
    assert all(m.done == [("ack", None)] for m in good)
    assert all(m.done == [("term", None)] for m in stray)
    _deliver_all(hub)
    assert target.seen == [("con_a", 1), ("con_a", 2)]


def test_unreadable_envelopes_are_mapped_again_from_the_stored_body(
        engine: Engine, tmp_path: Path) -> None:
    hub, target = _hub(engine, tmp_path)
    (message,) = _messages(hub, [_version("con_b", 1)])
    message.data = b'[{"event_id": "forged"}]'  # not what the archiver wrote
    done = _loop(hub).accept([message])
    assert done.acked == 1 and done.outcomes is not None and done.outcomes["accepted"] == 1
    _deliver_all(hub)
    assert target.seen == [("con_b", 1)]


def test_a_raw_id_the_database_does_not_hold_is_handed_back_never_acked(
        engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    hub, _ = _hub(engine, tmp_path)
    known, unknown = _messages(hub, [_version("con_c", 1), _version("con_c", 2)])
    unknown.headers = {RAW_ID: "424242"}
    done = _loop(hub).accept([unknown, known])
    assert done.outcomes is not None and done.outcomes["missing"] == 1
    assert (done.acked, done.handed_back) == (1, 1)
    assert known.done == [("ack", None)]
    assert unknown.done == [("nak", RETRY_MAX_S)]
    assert "the database does not hold (424242)" in caplog.text


def test_a_database_failure_hands_the_batch_back_with_a_growing_delay(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub, _ = _hub(engine, tmp_path)
    messages = _messages(hub, [_version("con_d", 1), _version("con_d", 2)])
    messages[1].num_delivered = 4

    def down(_items: object) -> object:
        raise StorageUnavailableError("connection refused")

    monkeypatch.setattr(hub.processor, "accept_stored", down)
    with pytest.raises(StorageUnavailableError):
        _loop(hub).accept(messages)
    assert messages[0].done == [("nak", retry_delay_s(1))]
    assert messages[1].done == [("nak", retry_delay_s(4))]
    assert retry_delay_s(1) < retry_delay_s(4) <= retry_delay_s(100) == 60.0
    with reading(engine) as conn:
        assert not hub.delivered(["books"]) and raw_log.counts(conn) == {"mapped": 2}


def test_a_batch_of_a_partition_lost_meanwhile_is_handed_back_at_once(
        engine: Engine, tmp_path: Path) -> None:
    hub, target = _hub(engine, tmp_path)
    messages = _messages(hub, [_version("con_e", 1)])
    done = _loop(hub, owned=False).accept(messages)
    assert done.handed_back == 1 and messages[0].done == [("nak", None)]
    assert hub.status()["events"] == {}
    _loop(hub).accept(messages)  # the new owner
    _deliver_all(hub)
    assert target.seen == [("con_e", 1)]
