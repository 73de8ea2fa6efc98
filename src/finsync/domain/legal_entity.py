"""The legal entity an event belongs to: the ERP lane of its deliveries.

Rules:
- An event's entity is its document's `legal_entity`, else the `legal_entity` of the
  contract its document carries (a contract amendment); None when it has none (a usage
  record): such deliveries share one lane.
- Pure: reads the event, nothing else.
"""

from __future__ import annotations

from finsync.domain.events import AnyEvent


def entity_of(event: AnyEvent) -> str | None:
    document = event.document
    for holder in (document, getattr(document, "contract", None)):
        entity = getattr(holder, "legal_entity", None)
        if isinstance(entity, str) and entity:
            return entity
    return None
