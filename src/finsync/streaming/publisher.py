"""Publishing to JetStream with PubAcks: pipelined, retried across a leader election.

Rules:
- Every message is sent with a reply subject of its own under one private inbox, all of a
  batch before any PubAck is awaited (one round trip for the batch, not one per message).
  nats-py's own `publish_async` is not used: a JetStream error in a PubAck raises inside
  its reply callback and leaves the future unresolved until the timeout.
- A stream without a leader (no responders, or a 503 while JetStream elects one after a
  node was lost) is asked again, after a short pause that doubles, until the deadline:
  only the messages not yet acknowledged, in their order. Any other refusal ends the call
  at once. At the deadline the call fails and nothing may be claimed stored; a message
  whose PubAck was lost may still have been stored, which is why a resend carries the same
  message id (JetStream drops it as a duplicate within its window).
- A message no one answers within an attempt's wait (`ATTEMPT_WAIT_S`, doubling) is sent
  again, under its message id, while the deadline allows: one written to a server's socket
  just before that server died is lost without a word, and the client, reconnected to
  another, would otherwise wait out the whole deadline. (Its PubAck then says `duplicate`
  if the first copy was stored after all.)
- A reply that arrives after its attempt gave up finds no one waiting and is dropped.
"""

from __future__ import annotations

import asyncio
import itertools
import json

import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import api

from finsync.streaming.errors import TransportRefusedError

PAUSE_FIRST_S = 0.05
PAUSE_MAX_S = 1.0
ATTEMPT_WAIT_S = 5.0  # a PubAck of a loaded R3 stream takes well under this
ATTEMPT_WAIT_MAX_S = 20.0
NO_RESPONDERS = "503"
_LEADERLESS = (nats.js.errors.NoStreamResponseError, nats.js.errors.ServiceUnavailableError)

Message = tuple[str, bytes, dict[str, str] | None]  # subject, payload, headers


class Publisher:
    def __init__(self, nc: NatsClient) -> None:
        self._nc = nc
        self._inbox: str | None = None
        self._waiting: dict[str, asyncio.Future[Msg]] = {}
        self._tokens = itertools.count()
        self._subscribing = asyncio.Lock()  # two first publishes at once make one inbox

    async def publish(self, batch: list[Message], timeout_s: float) -> list[api.PubAck]:
        """The PubAcks of `batch`, in its order; raises the first refusal, or TimeoutError
        at the deadline (see the rules)."""
        too_big = [subject for subject, data, _ in batch if len(data) > self._nc.max_payload]
        if too_big:  # refused before any is sent: none of the batch is stored
            raise TransportRefusedError(
                f"{len(too_big)} message(s) above the servers' max_payload of "
                f"{self._nc.max_payload} bytes, the first to {too_big[0]}")
        await self._ensure_inbox()
        acks: list[api.PubAck | None] = [None] * len(batch)
        leaderless: list[Exception] = []
        try:
            async with asyncio.timeout(timeout_s):
                await self._until_acked(batch, acks, leaderless)
        except TimeoutError:
            if leaderless:  # say why it timed out: the stream had no leader (or no stream)
                raise leaderless[-1] from None
            raise
        return [ack for ack in acks if ack is not None]

    async def _until_acked(self, batch: list[Message], acks: list[api.PubAck | None],
                           leaderless: list[Exception]) -> None:
        todo = list(range(len(batch)))
        pause, wait = PAUSE_FIRST_S, ATTEMPT_WAIT_S
        while todo:
            outcomes = await self._attempt([batch[i] for i in todo], wait)
            for i, outcome in zip(todo, outcomes, strict=True):
                if isinstance(outcome, api.PubAck):
                    acks[i] = outcome
            errors = [o for o in outcomes if isinstance(o, Exception)]
            refused = [e for e in errors if not isinstance(e, _LEADERLESS)]
            if refused:
                raise refused[0]
            leaderless[:] = errors[-1:]
            todo = [i for i in todo if acks[i] is None]
            if errors:  # an unanswered message has waited already
                await asyncio.sleep(pause)
                pause = min(2 * pause, PAUSE_MAX_S)
            if None in outcomes:
                wait = min(2 * wait, ATTEMPT_WAIT_MAX_S)

    async def _attempt(self, batch: list[Message],
                       wait_s: float) -> list[api.PubAck | Exception | None]:
        """Each message's PubAck or error, or None when none came within `wait_s`."""
        assert self._inbox is not None  # _ensure_inbox
        loop = asyncio.get_running_loop()
        tokens = [str(next(self._tokens)) for _ in batch]
        futures = [loop.create_future() for _ in batch]
        self._waiting.update(zip(tokens, futures, strict=True))
        try:
            for token, (subject, data, headers) in zip(tokens, batch, strict=True):
                await self._nc.publish(subject, data, reply=f"{self._inbox}.{token}",
                                       headers=headers)
            await asyncio.wait(futures, timeout=wait_s)
        finally:
            for token in tokens:
                self._waiting.pop(token, None)
        return [_outcome(f.result()) if f.done() else None for f in futures]

    async def _ensure_inbox(self) -> None:
        async with self._subscribing:
            if self._inbox is None:
                inbox = self._nc.new_inbox()
                await self._nc.subscribe(f"{inbox}.*", cb=self._on_reply)
                self._inbox = inbox

    async def _on_reply(self, msg: Msg) -> None:
        token = msg.subject.rsplit(".", 1)[-1]
        future = self._waiting.get(token)
        if future is not None and not future.done():
            future.set_result(msg)


def _outcome(reply: Msg) -> api.PubAck | Exception:
    """A PubAck, or the error JetStream answered with (returned, for the caller to sort)."""
    if reply.headers and reply.headers.get(api.Header.STATUS) == NO_RESPONDERS:
        return nats.js.errors.NoStreamResponseError()
    try:
        answer = json.loads(reply.data)
    except ValueError:
        return nats.js.errors.APIError(description=f"unreadable PubAck {reply.data[:80]!r}")
    if "error" in answer:
        try:
            nats.js.errors.APIError.from_error(answer["error"])  # it raises the typed error
        except nats.js.errors.APIError as exc:
            return exc
    return api.PubAck.from_response(answer)
