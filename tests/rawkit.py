"""Intake nodes and the archiver in tests: a connected JetStream with the streams made, what
a stream holds, checked payloads to publish, and a transport that fails on purpose."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, select

from finsync.domain.status import RawStatus
from finsync.hub.group_commit import Checked
from finsync.hub.service import Hub
from finsync.storage.db import reading
from finsync.storage.raw_log import RawIn
from finsync.storage.schema import raw_events
from finsync.streaming.client import Incoming, JetStream, TransportUnavailableError
from finsync.streaming.settings import TransportSettings
from finsync.streaming.setup import ensure_streams
from tests.builders import envelope, payment_doc

PEEK_ACK_WAIT_S = 300.0
PEEK_PATIENCE_S = 60.0  # for the messages the leader counts to reach the peek


@contextmanager
def jetstream(settings: TransportSettings) -> Iterator[JetStream]:
    js = JetStream(settings, f"test-{uuid.uuid4().hex[:8]}")
    try:
        ensure_streams(js, settings)
        yield js
    finally:
        js.close()


def stream_messages(js: JetStream, settings: TransportSettings, suffix: str,
                    subjects: str) -> list[Incoming]:
    """Every message `suffix`'s stream holds on `subjects`, once each (by stream sequence),
    read by a consumer of its own (acknowledged: the consumer is the test's; a long ack
    wait, so that a loaded machine's slow acks do not hand messages over twice).

    How many there are is asked of the stream's leader first: a new consumer may sit on a
    replica that is still catching up (a node just restarted), or answer its first fetch
    late on a loaded machine, so an empty fetch alone does not mean the end."""
    stream = settings.stream(suffix)
    held = sum(js.subject_counts(stream, subjects).values())
    consumer = js.consumer(stream, f"peek{uuid.uuid4().hex[:8]}", subjects,
                           ack_wait_s=PEEK_ACK_WAIT_S)
    seen: dict[int, Incoming] = {}
    deadline = time.monotonic() + PEEK_PATIENCE_S
    while True:
        batch = consumer.fetch(1000, 1.0)
        if not batch and (len(seen) >= held or time.monotonic() > deadline):
            return [seen[seq] for seq in sorted(seen)]
        for message in batch:
            message.ack()
            seen.setdefault(message.stream_seq, message)


def payment(n: int, source: str = "billing") -> bytes:
    return json.dumps(envelope("payment.applied", f"gw-{n}", ("payment", f"pay_{n}", None),
                               {"payment": payment_doc(f"pay_{n}", "10.00", f"inv_{n}")},
                               correlation_id=f"c{n}", source=source)).encode()


def checked(hub: Hub, bodies: Sequence[bytes], source: str = "billing") -> list[Checked]:
    """Payloads as an intake node checked them (refusals raise, as at the node)."""
    items = []
    for body in bodies:
        envelopes, at = hub.intake.check(source, body, {"content-type": "application/json"},
                                         "application/json")
        items.append(Checked(RawIn(source, body, {"content-type": "application/json"},
                                   "application/json"), envelopes, at))
    return items


def raw_rows(engine: Engine) -> list[dict[str, Any]]:
    with reading(engine) as conn:
        rows = conn.execute(select(raw_events).order_by(raw_events.c.id)).mappings()
        return [dict(r) for r in rows]


def statuses(engine: Engine) -> list[RawStatus]:
    return [RawStatus(r["status"]) for r in raw_rows(engine)]


class Crash(BaseException):
    """A process dying where it stands: nothing after it runs (not even a nak)."""


class FailingPublish:
    """`js` whose `publish_many` raises `error` (a crash, no quorum) the next `times`
    calls."""

    def __init__(self, js: JetStream, error: BaseException, times: int = 1) -> None:
        self._js, self._error, self.times = js, error, times

    def publish_many(self, *args: Any, **kwargs: Any) -> Any:
        if self.times > 0:
            self.times -= 1
            raise self._error
        return self._js.publish_many(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._js, name)


NO_QUORUM = TransportUnavailableError("no PubAck (test)")
