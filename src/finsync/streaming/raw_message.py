"""A raw request as a JetStream message: what an intake node publishes to `<NS>_RAW` and
what the archiver reads back (writer beside reader).

Rules:
- The message's data is the body as received, byte for byte. What the hub keeps beside it
  travels in headers: `Finsync-Source`, `Finsync-Received-At` (UTC ISO 8601: the moment
  intake mapped it as of, so the archiver maps it again to the same envelopes),
  `Finsync-Content-Type` (when the request had one) and `Finsync-Headers`, the allowlisted
  request headers (`domain.headers`) as ASCII JSON, so that any value survives the trip and
  no credential is ever published.
- Its `Nats-Msg-Id`, which the archiver stores as the raw event's `transport_id`, says what
  a resend is. A body that maps to one envelope: `<source>/<source event id>#<payload>`,
  the envelope's source and source event id, and the first 16 hex digits of its payload's
  hash (`event_log.event_hash`). A byte-identical resend, or one whose mapped event is the
  same (a webhook retried with a new delivery count), is caught by JetStream's duplicate
  window; a *changed* payload under a reused source event id is not, so it reaches the
  database and becomes a `duplicate_event` for finance, as it does without a transport
  (acceptance's rule: a difference is never dropped unseen).
- Any other body (several envelopes, none, or a mapper that failed by a defect):
  `<source>/sha256:<hex of the body>`, so only a byte-identical resend is caught.
- Ids are written by `subjects.raw_msg_id` (printable ASCII, escaped: a header line holds
  it). One longer than `raw_events.transport_id` (255) becomes `<source>/id-sha256:<hex of
  that id>`: the column holds it, and the same id always gives the same digest.
- A message whose headers cannot be read (published by something else: no message id, a
  source that cannot be one, a naive or malformed time) raises `UnreadableRawMessageError`:
  the archiver reports it and never stores a guess.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from finsync.domain.clock import parse_utc
from finsync.domain.envelope import Envelope
from finsync.domain.errors import DomainError
from finsync.domain.headers import stored_headers
from finsync.hub.intake import SOURCE_NAME
from finsync.storage import event_log
from finsync.storage.raw_log import RawIn
from finsync.streaming.subjects import raw_msg_id, raw_subject

SOURCE = "Finsync-Source"
RECEIVED_AT = "Finsync-Received-At"
CONTENT_TYPE = "Finsync-Content-Type"
HEADERS = "Finsync-Headers"
MSG_ID = "Nats-Msg-Id"
TRANSPORT_ID_MAX = 255  # raw_events.transport_id
PAYLOAD_DIGITS = 16


class UnreadableRawMessageError(DomainError):
    """A message on the raw stream that an intake node did not write."""

    code = "unreadable_raw_message"


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One raw request on its way to the archiver."""

    subject: str
    msg_id: str
    body: bytes
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class ReadRaw:
    """A raw message read back: the raw event to store, as of when, under which id."""

    transport_id: str
    raw: RawIn
    received_at: datetime


def msg_id_for(source: str, body: bytes, envelopes: Sequence[Envelope] | None) -> str:
    """The message id of a body of `source` that maps to `envelopes` (None: a defect)."""
    if envelopes is not None and len(envelopes) == 1:
        envelope = envelopes[0]
        payload = event_log.event_hash(envelope)[:PAYLOAD_DIGITS]
        named = raw_msg_id(envelope.source, f"{envelope.source_event_id}#{payload}")
    else:
        named = raw_msg_id(source, f"sha256:{hashlib.sha256(body).hexdigest()}")
    if len(named) <= TRANSPORT_ID_MAX:
        return named
    return raw_msg_id(source, f"id-sha256:{hashlib.sha256(named.encode()).hexdigest()}")


def raw_message(namespace: str, raw: RawIn, received_at: datetime,
                envelopes: Sequence[Envelope] | None) -> RawMessage:
    """The message that carries `raw`, received at `received_at` and mapped to `envelopes`."""
    headers = {SOURCE: raw.source, RECEIVED_AT: received_at.isoformat(),
               HEADERS: json.dumps(stored_headers(raw.headers), sort_keys=True)}
    if raw.content_type is not None:
        headers[CONTENT_TYPE] = raw.content_type.encode("ascii", "replace").decode("ascii")
    return RawMessage(raw_subject(namespace, raw.source),
                      msg_id_for(raw.source, raw.body, envelopes), raw.body, headers)


def read_raw(body: bytes, headers: Mapping[str, str]) -> ReadRaw:
    """The raw event a message carries; `UnreadableRawMessageError` when it is not one an
    intake node wrote."""
    try:
        transport_id, source = headers[MSG_ID], headers[SOURCE]
        received_at = parse_utc(headers[RECEIVED_AT])
        kept = json.loads(headers[HEADERS])
    except (KeyError, ValueError, DomainError) as exc:
        raise UnreadableRawMessageError(
            f"not a raw message of an intake node ({type(exc).__name__}: {exc})") from exc
    if not isinstance(kept, dict) or not all(isinstance(v, str) for v in kept.values()):
        raise UnreadableRawMessageError("header Finsync-Headers is not an object of strings")
    if len(transport_id) > TRANSPORT_ID_MAX:
        raise UnreadableRawMessageError(f"message id of {len(transport_id)} characters")
    if SOURCE_NAME.fullmatch(source) is None:
        raise UnreadableRawMessageError(f"source {source[:80]!r} is not a source name")
    return ReadRaw(transport_id, RawIn(source, body, kept, headers.get(CONTENT_TYPE)),
                   received_at)
