"""Durable pull consumers and the messages they hand out (sync, over the private loop).

Rules:
- A consumer is durable and acks explicitly: a message not acked within `ack_wait` is
  delivered again (`num_delivered` counts the deliveries), so the caller acks only after
  its effects are committed, and its effects must be idempotent.
- `fetch` returns what is there, up to `batch`, waiting at most `timeout_s` for the first
  message; nothing there is an empty list, never an error. A fetch while the client is
  reconnecting, or while the consumer has no leader (an election after a node was lost),
  also returns empty after `timeout_s`: the caller's loop goes round again and finds the
  messages once the consumer is back, none lost. A closed client raises
  `TransportUnavailableError`.
- `ack`, `nak`, `term` and `in_progress` are sent without waiting for the server's word: a
  lost ack only means one more delivery, which the caller handles anyway.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg

if TYPE_CHECKING:
    from nats.js.client import JetStreamContext

    from finsync.streaming.loop import EventLoopThread

log = logging.getLogger(__name__)

MSG_ID = "Nats-Msg-Id"
ANSWER_S = 5.0  # the longest an ack waits for the loop thread to take it
FETCH_GRACE_S = 5.0  # beyond a fetch's own timeout, for a loaded loop thread
_LEADERLESS = (nats.js.errors.ServiceUnavailableError, nats.errors.NoRespondersError)


@dataclass(frozen=True, slots=True)
class ConsumerLag:
    num_pending: int  # in the stream, not yet delivered to this consumer
    num_ack_pending: int  # delivered, not yet acked
    num_redelivered: int  # delivered more than once and not yet acked


class Incoming:
    """One delivered message. `headers` holds the message's own headers (the `Nats-Msg-Id`
    among them)."""

    __slots__ = ("_loop", "_msg", "data", "headers", "num_delivered", "stream_seq", "subject")

    def __init__(self, msg: Msg, loop: EventLoopThread) -> None:
        self._msg = msg
        self._loop = loop
        metadata = msg.metadata
        self.subject: str = msg.subject
        self.data: bytes = msg.data
        self.headers: dict[str, str] = dict(msg.headers or {})
        self.stream_seq: int = metadata.sequence.stream
        self.num_delivered: int = metadata.num_delivered

    @property
    def msg_id(self) -> str | None:
        """The `Nats-Msg-Id` it was published with (the archiver's `transport_id`)."""
        return self.headers.get(MSG_ID)

    def ack(self) -> None:
        self._loop.run(self._msg.ack(), ANSWER_S, f"ack of {self.subject}")

    def nak(self, delay_s: float | None = None) -> None:
        """Deliver again, after `delay_s` (at once when None)."""
        self._loop.run(self._msg.nak(delay=delay_s), ANSWER_S, f"nak of {self.subject}")

    def term(self) -> None:
        """Never deliver this message again (the caller recorded why)."""
        self._loop.run(self._msg.term(), ANSWER_S, f"term of {self.subject}")

    def in_progress(self) -> None:
        """Still working on it: restarts the ack wait."""
        self._loop.run(self._msg.in_progress(), ANSWER_S, f"in_progress of {self.subject}")

    def __repr__(self) -> str:
        return (f"Incoming({self.subject!r}, seq={self.stream_seq}, "
                f"delivered={self.num_delivered})")


class Consumer:
    def __init__(self, loop: EventLoopThread, sub: JetStreamContext.PullSubscription,
                 stream: str, durable: str) -> None:
        self._loop = loop
        self._sub = sub
        self.stream = stream
        self.durable = durable
        # nats-py's fetch of one subscription is not safe from two tasks at once (they share
        # its queue of deliveries): one thread fetches at a time.
        self._fetching = threading.Lock()

    def ack_all(self, messages: Sequence[Incoming]) -> None:
        """Acks every message in one trip to the loop thread (a batch's acks one by one
        cost a thread hand-over each: some 0.1 to 1 ms on a loaded machine)."""
        if messages:
            self._loop.run(_ack_all([m._msg for m in messages]), ANSWER_S,
                           f"ack of {len(messages)} messages from {self.stream}/{self.durable}")

    def fetch(self, batch: int, timeout_s: float) -> list[Incoming]:
        if batch < 1 or timeout_s <= 0:
            raise ValueError(f"fetch needs batch >= 1 and timeout_s > 0, not {batch}, {timeout_s}")
        what = f"fetch from {self.stream}/{self.durable}"
        with self._fetching:
            msgs = self._loop.run(self._fetch(batch, timeout_s), timeout_s + FETCH_GRACE_S, what)
        return [Incoming(msg, self._loop) for msg in msgs]

    async def _fetch(self, batch: int, timeout_s: float) -> list[Msg]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        try:
            return await self._sub.fetch(batch, timeout=timeout_s)
        except TimeoutError:  # nats-py's fetch timeout: nothing arrived
            return []
        except _LEADERLESS as exc:
            # The consumer has no leader this moment (a node was lost, an election runs):
            # nothing can arrive; wait out the timeout, as if nothing had, so that a
            # caller's loop does not spin.
            log.info("fetch from %s/%s: %s", self.stream, self.durable, exc)
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            return []


async def _ack_all(msgs: list[Msg]) -> None:
    for msg in msgs:
        await msg.ack()
