"""The event envelope every message travels in (DESIGN §2).

Rules:
- `event_id` derives from `(source, source_event_id)`, so a re-sent event keeps its id.
- `correlation_id` names the commercial change that started it all; `causation_id` the event
  that caused this one.
- `aggregate.version` orders the events of one aggregate; `None` means unordered.
- Timestamps are UTC-aware. Payloads are JSON objects (decimal strings for money).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from finsync.domain.clock import parse_utc, require_utc
from finsync.domain.errors import MappingError
from finsync.domain.ids import event_id_for

JsonObject = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class AggregateRef:
    type: str
    id: str
    version: int | None = None


@dataclass(frozen=True, slots=True)
class Envelope:
    type: str
    schema_version: int
    source: str
    source_event_id: str
    occurred_at: datetime
    received_at: datetime
    correlation_id: str
    aggregate: AggregateRef
    payload: JsonObject
    causation_id: str | None = None
    idempotency_key: str | None = None
    event_id: str = field(default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "occurred_at", require_utc(self.occurred_at))
        object.__setattr__(self, "received_at", require_utc(self.received_at))
        if not self.event_id:
            object.__setattr__(self, "event_id", event_id_for(self.source, self.source_event_id))

    def with_payload(self, schema_version: int, payload: JsonObject) -> Envelope:
        return replace(self, schema_version=schema_version, payload=payload)

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "type": self.type,
            "schema_version": self.schema_version,
            "source": self.source,
            "source_event_id": self.source_event_id,
            "occurred_at": self.occurred_at.isoformat(),
            "received_at": self.received_at.isoformat(),
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
            "idempotency_key": self.idempotency_key,
            "aggregate": {"type": self.aggregate.type, "id": self.aggregate.id,
                          "version": self.aggregate.version},
            "payload": dict(self.payload),
        }


def _text(obj: JsonObject, key: str, *, required: bool = True) -> str | None:
    value = obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise MappingError(f"envelope field {key!r} must be a non-empty string",
                           code="invalid_envelope")
    return value


def _aggregate(obj: JsonObject) -> AggregateRef:
    agg = obj.get("aggregate")
    if not isinstance(agg, Mapping):
        raise MappingError("envelope field 'aggregate' must be an object", code="invalid_envelope")
    version = agg.get("version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)
                                or version < 1):
        raise MappingError("aggregate.version must be a positive integer", code="invalid_envelope")
    return AggregateRef(str(_text(agg, "type")), str(_text(agg, "id")), version)


def envelope_from_json(obj: Any, *, received_at: datetime) -> Envelope:
    """Parse a canonical envelope (as sent by a source, or as stored by the hub)."""
    if not isinstance(obj, Mapping):
        raise MappingError("an envelope must be a JSON object", code="invalid_envelope")
    schema_version = obj.get("schema_version", 1)
    if not isinstance(schema_version, int) or isinstance(schema_version, bool):
        raise MappingError("schema_version must be an integer", code="invalid_envelope")
    payload = obj.get("payload")
    if not isinstance(payload, Mapping):
        raise MappingError("envelope field 'payload' must be an object", code="invalid_envelope")
    try:
        occurred_at = parse_utc(str(_text(obj, "occurred_at")))
        stored_received = _text(obj, "received_at", required=False)
        received = parse_utc(stored_received) if stored_received else received_at
    except MappingError:
        raise
    except Exception as exc:
        raise MappingError(str(exc), code="invalid_envelope") from exc
    source, source_event_id = str(_text(obj, "source")), str(_text(obj, "source_event_id"))
    return Envelope(
        type=str(_text(obj, "type")),
        schema_version=schema_version,
        source=source,
        source_event_id=source_event_id,
        occurred_at=occurred_at,
        received_at=received,
        correlation_id=str(_text(obj, "correlation_id")),
        causation_id=_text(obj, "causation_id", required=False),
        idempotency_key=_text(obj, "idempotency_key", required=False),
        aggregate=_aggregate(obj),
        payload=payload,
        event_id=_text(obj, "event_id", required=False) or event_id_for(source, source_event_id),
    )


def envelope_from_text(text: str | bytes, *, received_at: datetime) -> Envelope:
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MappingError(f"not JSON: {exc}", code="invalid_json") from exc
    return envelope_from_json(obj, received_at=received_at)
