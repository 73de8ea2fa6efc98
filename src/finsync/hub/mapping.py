"""Mappers turn a raw event of one source into canonical envelopes.

Rules:
- A mapper is pure: same raw event, same envelopes; it raises `MappingError` for a payload
  it cannot map, and the hub keeps that payload and opens a `mapping_error` exception.
- The hub, not the source, sets `received_at` (the time the raw event was stored) and
  `event_id` (derived from `(source, source_event_id)`), whatever the payload says.
- Old schema versions are upcast here, on read, so every later stage sees the current shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from finsync.domain.envelope import Envelope, envelope_from_json
from finsync.domain.errors import DomainError, MappingError
from finsync.domain.event_type import event_type
from finsync.domain.upcast import UPCASTERS
from finsync.storage import jsonutil
from finsync.storage.raw_log import RawEvent


class Mapper(Protocol):
    def map(self, raw: RawEvent) -> list[Envelope]: ...


class CanonicalMapper:
    """Source `canonical`: the body is one envelope, or a JSON array of envelopes."""

    def map(self, raw: RawEvent) -> list[Envelope]:
        try:
            data = jsonutil.loads(raw.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MappingError(f"body is not JSON: {exc}", code="invalid_json") from exc
        items = data if isinstance(data, list) else [data]
        if not items:
            raise MappingError("an empty array carries no event", code="empty_batch")
        return [canonical(item, raw) for item in items]


# A vendor connector's pure translation: (source, raw body) -> canonical envelopes as JSON.
Translate = Callable[[str, bytes], Sequence[Mapping[str, Any]]]


class TranslatingMapper:
    """A source whose connector translates its own payloads (Stripe, …); each envelope is
    then checked exactly like a canonical one. No envelope is a deliberate acknowledgement."""

    def __init__(self, translate: Translate) -> None:
        self._translate = translate

    def map(self, raw: RawEvent) -> list[Envelope]:
        return [canonical(item, raw) for item in self._translate(raw.source, raw.body)]


def canonical(item: Any, raw: RawEvent) -> Envelope:
    """Parse, upcast and check one envelope against the event-type catalogue."""
    if isinstance(item, Mapping):
        item = {k: v for k, v in item.items() if k not in _HUB_FIELDS}
    try:
        envelope = UPCASTERS.upcast(envelope_from_json(item, received_at=raw.received_at))
        event_type(envelope.type).decode(envelope)
    except MappingError:
        raise
    except DomainError as exc:  # a broken rule in a payload is that payload's mapping error
        raise MappingError(str(exc), code=exc.code) from exc
    return envelope


_HUB_FIELDS = frozenset({"received_at", "event_id"})


class MapperRegistry:
    def __init__(self, mappers: Mapping[str, Mapper]) -> None:
        self._mappers = dict(mappers)

    def knows(self, source: str) -> bool:
        return source in self._mappers

    def map(self, raw: RawEvent) -> list[Envelope]:
        mapper = self._mappers.get(raw.source)
        if mapper is None:
            raise MappingError(f"no mapper for source {raw.source!r}", code="unknown_source")
        return mapper.map(raw)
