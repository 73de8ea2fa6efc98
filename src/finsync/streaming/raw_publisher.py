"""What an intake node stores a batch of checked requests with: the replicated raw stream.

Rules:
- An intake node checks each request exactly as a single process does (`Intake.check`:
  authenticated, limited, mapped; refusals recorded in the database as today), then hands
  it to the group commit (`hub.group_commit`), whose writer thread calls `RawPublisher`
  with a batch: one message per request (`streaming.raw_message`), published in one
  pipelined round (`JetStream.publish_many`), off the HTTP event loop.
- A request is answered 202 only once its PubAck came back: JetStream stored it on a
  quorum of the stream's replicas. A resend within the duplicate window gets a PubAck too
  (`duplicate`), and is stored once.
- No PubAck for the batch (no quorum, no connection, a timeout) raises
  `TransportUnavailableError` for every request of the batch: the sender hears 503
  `transport_unavailable` with `Retry-After` and sends again; a message that was stored
  after all is caught by its id, in the window or by the database.
- A request whose message would be over what the transport carries
  (`message_limit.MESSAGE_MAX_BYTES`) fails its batch before anything is sent; the group
  commit then publishes the batch item by item, so that it alone is refused (413
  `body_too_large`, recorded as a refusal by the API) and never closes the connection.
- The intake node stores nothing itself but refusals: the archiver (`streaming.archiver`)
  writes what was published to the raw event log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from finsync.hub.group_commit import Checked
from finsync.streaming.client import JetStream, Outgoing
from finsync.streaming.message_limit import MESSAGE_MAX_BYTES, check_size
from finsync.streaming.raw_message import raw_message
from finsync.streaming.settings import TransportSettings

PUBLISH_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Published:
    """A request JetStream stored: its message id (the raw event's future `transport_id`),
    its sequence in the raw stream, and whether it was a resend already stored."""

    transport_id: str
    stream_seq: int
    duplicate: bool

    def as_json(self) -> dict[str, object]:
        return {"status": "stored", "transport_id": self.transport_id,
                "stream_seq": self.stream_seq, "duplicate": self.duplicate}


class RawPublisher:
    """Publishes batches of checked requests to `<NS>_RAW` (a `group_commit.Store`)."""

    def __init__(self, js: JetStream, settings: TransportSettings,
                 timeout_s: float = PUBLISH_TIMEOUT_S,
                 message_max_bytes: int = MESSAGE_MAX_BYTES) -> None:
        self._js, self._namespace, self._timeout_s = js, settings.namespace, timeout_s
        self._message_max_bytes = message_max_bytes
        self.batches = self.messages = 0  # published so far (for tests and benchmarks)

    def __call__(self, batch: Sequence[Checked]) -> list[Published]:
        messages = [raw_message(self._namespace, item.raw, item.received_at, item.envelopes)
                    for item in batch]
        for message in messages:
            check_size(message.body, message.headers, message.msg_id, self._message_max_bytes)
        acks = self._js.publish_many([Outgoing(m.subject, m.body, m.msg_id, m.headers)
                                      for m in messages], timeout_s=self._timeout_s)
        self.batches += 1
        self.messages += len(messages)
        return [Published(m.msg_id, ack.seq, ack.duplicate)
                for m, ack in zip(messages, acks, strict=True)]

    def close(self) -> None:
        self._js.close()
