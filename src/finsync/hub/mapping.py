"""Mappers turn a raw event of one source into canonical envelopes.

Rules:
- A mapper is pure: same raw event, same envelopes; it raises `MappingError` for a payload
  it cannot map, and the hub keeps that payload and opens a `mapping_error` exception.
- Sources say what happened (`DraftEnvelope`); the hub stamps what only it knows: the time
  the raw event was stored (`received_at`) and the event id derived from `(source,
  source_event_id)`, whatever the payload says.
- Old schema versions are upcast here, on read (`domain.codec`), so every later stage sees
  the current, typed event.
- Every draft, canonical or translated from a vendor's payload, is checked against its
  source's `InputLimits` (`domain.limits.check_draft`) before it is stamped: amounts, dates
  (against the day the raw event was received), string lengths and characters. One value
  out of bounds refuses the raw event, with the limit's own code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Protocol, TypeVar

from finsync.domain import codec
from finsync.domain.envelope import DraftEnvelope, Envelope
from finsync.domain.errors import DomainError, MappingError
from finsync.domain.limits import InputLimits, check_draft
from finsync.storage import jsonutil
from finsync.storage.raw_log import RawEvent

T = TypeVar("T")


class Mapper(Protocol):
    def map(self, raw: RawEvent) -> list[Envelope]: ...


class CanonicalMapper:
    """Source `canonical`: the body is one envelope, or a JSON array of envelopes."""

    def __init__(self, limits: InputLimits | None = None) -> None:
        self._limits = limits or InputLimits()

    def map(self, raw: RawEvent) -> list[Envelope]:
        try:
            data = jsonutil.loads(raw.body, self._limits)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MappingError(f"body is not JSON: {exc}", code="invalid_json") from exc
        items = data if isinstance(data, list) else [data]
        if not items:
            raise MappingError("an empty array carries no event", code="empty_batch")
        drafts = [_checked(partial(codec.draft_from_json, item)) for item in items]
        return _stamped(drafts, raw, self._limits)


# A vendor connector's pure translation: (source, raw body) -> what the source said.
Translate = Callable[[str, bytes], Sequence[DraftEnvelope]]


class TranslatingMapper:
    """A source whose connector translates its own payloads (Stripe, …). No envelope is a
    deliberate acknowledgement."""

    def __init__(self, translate: Translate, limits: InputLimits | None = None) -> None:
        self._translate = translate
        self._limits = limits or InputLimits()

    def map(self, raw: RawEvent) -> list[Envelope]:
        drafts = _checked(lambda: list(self._translate(raw.source, raw.body)))
        return _stamped(drafts, raw, self._limits)


def _stamped(drafts: Sequence[DraftEnvelope], raw: RawEvent,
             limits: InputLimits) -> list[Envelope]:
    """The drafts within the source's limits, stamped as received with the raw event."""
    received_on = raw.received_at.date()
    for draft in drafts:
        check_draft(draft, limits, received_on)
    return [draft.stamp(raw.received_at) for draft in drafts]


def _checked(read: Callable[[], T]) -> T:
    """A broken domain rule in a payload is that payload's mapping error."""
    try:
        return read()
    except MappingError:
        raise
    except DomainError as exc:
        raise MappingError(str(exc), code=exc.code) from exc


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
