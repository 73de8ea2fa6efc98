"""The legal entity an event belongs to: the ERP lane of its deliveries, and the entity
level of its transport subjects (`streaming.subjects`).

Rules:
- An event's (or an envelope's) entity is its own `legal_entity`, else its document's, else
  the document's contract's (a contract amendment); None when none has one (a usage record
  names a contract only): such deliveries share one lane.
- Pure: reads the object, nothing else; a non-string or empty `legal_entity` is none.
"""

from __future__ import annotations

# Attributes that lead from an envelope or an event to the document holding its legal
# entity: an envelope's `event`, an event's `document`, an amendment's `contract`.
_ENTITY_PATHS = ("event", "document", "contract")
_ENTITY_DEPTH = 4


def entity_of(event: object) -> str | None:
    seen: object = event
    for _ in range(_ENTITY_DEPTH):
        entity = getattr(seen, "legal_entity", None)
        if isinstance(entity, str) and entity:
            return entity
        seen = next((getattr(seen, name) for name in _ENTITY_PATHS
                     if getattr(seen, name, None) is not None), None)
        if seen is None:
            return None
    return None
