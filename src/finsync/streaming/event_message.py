"""A raw event's canonical envelopes as one message on `<NS>_EVENTS` (writer beside reader).

Rules:
- One message per raw event: its envelopes, in the order the mapper gave them, as a JSON
  list of the hub's envelopes (`codec.envelope_to_json`, hub fields included); header
  `Finsync-Raw-Id` names the raw event; the message id is `raw:<raw id>`, so the archiver
  publishing it again after a crash is caught by JetStream's duplicate window.
- Its subject is `<ns>.events.<entity>.<p>`: the legal entity of the first envelope's event
  (`subjects.entity_of`) and the partition of its aggregate
  (`partition_of(acceptance.partition_key(aggregate), partitions)`): every envelope of a
  raw event is accepted by the worker that owns that partition, in order.
- Reading checks what writing promised: each envelope is decoded like a source's (header,
  upcast payload), stamped with its `received_at`, and must come out under the same
  `event_id`; anything else raises `DomainError` (the message was not written here).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from finsync.domain import codec
from finsync.domain.clock import parse_utc
from finsync.domain.envelope import Envelope
from finsync.domain.errors import DomainError
from finsync.hub.acceptance import partition_key
from finsync.streaming.subjects import entity_of, event_subject, partition_of

RAW_ID = "Finsync-Raw-Id"


@dataclass(frozen=True, slots=True)
class EventMessage:
    subject: str
    msg_id: str
    data: bytes
    headers: dict[str, str]


def event_msg_id(raw_id: int) -> str:
    return f"raw:{raw_id}"


def event_message(namespace: str, partitions: int, raw_id: int,
                  envelopes: Sequence[Envelope]) -> EventMessage:
    """The message that carries the envelopes of raw event `raw_id` (at least one)."""
    if not envelopes:
        raise ValueError("a raw event without envelopes publishes no message")
    first = envelopes[0]
    p = partition_of(partition_key(first.aggregate), partitions)
    return EventMessage(event_subject(namespace, entity_of(first.event), p),
                        event_msg_id(raw_id), encode_envelopes(envelopes),
                        {RAW_ID: str(raw_id)})


def encode_envelopes(envelopes: Sequence[Envelope]) -> bytes:
    return json.dumps([codec.envelope_to_json(e) for e in envelopes],
                      separators=(",", ":")).encode()


def decode_envelopes(data: bytes) -> list[Envelope]:
    """The envelopes `encode_envelopes` wrote; `DomainError` for anything else."""
    try:
        items = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DomainError(f"an event message is not JSON: {exc}") from exc
    if not isinstance(items, list):
        raise DomainError("an event message holds a JSON list of envelopes")
    return [_envelope(item) for item in items]


def _envelope(item: object) -> Envelope:
    if not isinstance(item, dict) or not isinstance(item.get("received_at"), str):
        raise DomainError("an envelope of an event message needs its received_at")
    envelope = codec.draft_from_json(item).stamp(parse_utc(item["received_at"]))
    if envelope.event_id != item.get("event_id"):
        raise DomainError(f"envelope {item.get('event_id')!r} decodes as {envelope.event_id}")
    return envelope
