"""The messages events out publishes (`docs/events-out.md` is their contract with consumers).

Rules:
- An accepted event goes to `<ns>.out.events.<entity>.<type>` with message id its event id;
  a milestone to `<ns>.out.milestones.<name>` with message id `milestone:<id>`. JetStream
  keeps one message per id within the duplicate window, so publishing again (a relay that
  died before it recorded its progress) adds nothing.
- The body is JSON, versioned by `format` (`FORMAT_EVENT`, `FORMAT_MILESTONE`): a new field
  may be added within a version; removing or changing one makes a new version.
- A message is at most `BODY_MAX_BYTES` (NATS refuses more than its `max_payload`, 1 MiB by
  default, and one refused message would hold every later one back): an event whose body
  would be larger goes out without its payload (`payload` null, `payload_omitted` saying
  why and its size); a consumer reads it from finsync.
- An event's payload is the codec's encoding at the event's current schema version (an older
  stored one is upcast first); an event whose stored payload no longer decodes goes out as
  stored, with its stored schema version, rather than not at all.
"""

from __future__ import annotations

import json
from typing import Any

from finsync.domain import codec
from finsync.domain.errors import DomainError
from finsync.storage.relay_log import EventRow, MilestoneRow
from finsync.streaming.client import Outgoing
from finsync.streaming.subjects import entity_of, out_event_subject, out_milestone_subject

FORMAT_EVENT = "finsync.event/1"
FORMAT_MILESTONE = "finsync.milestone/1"
FORMAT_HEADER = "Finsync-Format"
BODY_MAX_BYTES = 1_000_000  # under NATS's default max_payload (1 MiB), headers included


def milestone_msg_id(milestone_id: int) -> str:
    return f"milestone:{milestone_id}"


def event_message(namespace: str, row: EventRow, replaces: str | None = None) -> Outgoing:
    """`row` as published; `replaces`: the id of the event it takes the place of (finance
    chose its body over that one's)."""
    entity, schema_version, payload = _readable(row)
    body = {
        "format": FORMAT_EVENT,
        "position": row.position,
        "event_id": row.event_id,
        "type": row.type,
        "schema_version": schema_version,
        "source": row.source,
        "source_event_id": row.source_event_id,
        "business_key": row.business_key,
        "occurred_at": row.occurred_at.isoformat(),
        "received_at": row.received_at.isoformat(),
        "correlation_id": row.correlation_id,
        "causation_id": row.causation_id,
        "aggregate": {"type": row.aggregate_type, "id": row.aggregate_id,
                      "version": row.aggregate_version},
        "legal_entity": entity,
        "replaces": replaces,
        "payload": payload,
    }
    data = _dump(body)
    if len(data) > BODY_MAX_BYTES:
        body["payload"] = None
        body["payload_omitted"] = {"reason": "too_large", "bytes": len(data),
                                   "limit": BODY_MAX_BYTES}
        data = _dump(body)
    return Outgoing(out_event_subject(namespace, entity, row.type), data,
                    msg_id=row.event_id, headers={FORMAT_HEADER: FORMAT_EVENT})


def milestone_message(namespace: str, row: MilestoneRow) -> Outgoing:
    body = {
        "format": FORMAT_MILESTONE,
        "id": row.id,
        "name": row.name,
        "correlation_id": row.correlation_id,
        "event_id": row.event_id,
        "target": row.target,
        "recorded_at": row.recorded_at.isoformat(),
    }
    return Outgoing(out_milestone_subject(namespace, row.name), _dump(body),
                    msg_id=milestone_msg_id(row.id), headers={FORMAT_HEADER: FORMAT_MILESTONE})


def _readable(row: EventRow) -> tuple[str | None, int, Any]:
    """(legal entity, schema version, payload) as the codec writes the event today; the
    stored payload and version when it no longer decodes (entity then unknown)."""
    stored = json.loads(row.payload)
    try:
        event = codec.decode_event(row.type, row.schema_version, stored)
    except (DomainError, ValueError, KeyError):
        return None, row.schema_version, stored
    if event.schema_version() == row.schema_version:  # stored as the codec writes it today
        return entity_of(event), row.schema_version, stored
    return entity_of(event), event.schema_version(), codec.encode_event(event)


def _dump(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
