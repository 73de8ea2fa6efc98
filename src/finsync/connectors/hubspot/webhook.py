"""HubSpot webhook bodies: a JSON array of subscription events that name objects by id.

Rules:
- A body is an array of at most `EVENTS_MAX` events, each an object with a
  `subscriptionType` (`deal.creation`, `deal.propertyChange`, `company.propertyChange`,
  `line_item.deletion`, `object.propertyChange` with an `objectTypeId` …) and an `objectId`.
  Anything else is refused (`MappingError`); the body's size, depth and element count are
  checked before it is parsed (`json_limits`).
- Events carry ids only: each names an object the fetcher reads (`ObjectRef`). Deals and
  companies are read themselves; a line item or a quote leads to its deals. An
  association change names both ends. Deletions are not fetched (a deleted object has no
  state to read): what billing has keeps, and a cancellation comes as an approved deal.
- Event types finsync does not read (contacts, tickets, …) name nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from finsync.connectors.hubspot.state import ObjectRef
from finsync.domain import json_limits
from finsync.domain.errors import MappingError
from finsync.domain.limits import InputLimits

EVENTS_MAX = 1000
ID_MAX_CHARS = 64
# HubSpot's object type ids (the new platform's generic `object.*` events name these).
TYPE_IDS = {"0-3": "deal", "0-2": "company", "0-8": "line_item", "0-14": "quote"}
FETCHED = frozenset({"deal", "company", "line_item", "quote"})


def events(body: bytes, limits: InputLimits) -> list[Mapping[str, object]]:
    """The events of a webhook body, within limits."""
    json_limits.check_body(body, limits)
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MappingError(f"HubSpot webhook body is not JSON: {exc}",
                           code="invalid_json") from exc
    if not isinstance(data, list):
        raise MappingError("a HubSpot webhook body is a JSON array of events",
                           code="invalid_webhook")
    if not data or len(data) > EVENTS_MAX:
        raise MappingError(f"a HubSpot webhook body holds 1 to {EVENTS_MAX} events, not "
                           f"{len(data)}", code="invalid_webhook")
    for index, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("subscriptionType"), str):
            raise MappingError(f"webhook event {index} has no subscriptionType",
                               code="invalid_webhook")
    return data


def named(items: Sequence[Mapping[str, object]]) -> list[ObjectRef]:
    """The objects the events name, in order, each once."""
    refs: list[ObjectRef] = []
    for item in items:
        refs += _refs_of(item)
    return list(dict.fromkeys(refs))


def _refs_of(item: Mapping[str, object]) -> list[ObjectRef]:
    kind, _, action = str(item["subscriptionType"]).partition(".")
    if action == "associationChange":
        return _ends(item, kind)
    if kind == "object":
        kind = TYPE_IDS.get(str(item.get("objectTypeId", "")), "")
    if kind not in FETCHED or action.endswith("deletion"):
        return []
    return [ObjectRef(kind, _object_id(item.get("objectId")))]


def _ends(item: Mapping[str, object], kind: str) -> list[ObjectRef]:
    """Both ends of an association change: by their type ids (`object.associationChange`),
    else the subscription's type and `associationType` (`DEAL_TO_LINE_ITEM`)."""
    _, _, to_name = str(item.get("associationType", "")).partition("_TO_")
    ends = ((TYPE_IDS.get(str(item.get("fromObjectTypeId")), kind), item.get("fromObjectId")),
            (TYPE_IDS.get(str(item.get("toObjectTypeId")), to_name.lower()),
             item.get("toObjectId")))
    return [ObjectRef(end, _object_id(ident)) for end, ident in ends if end in FETCHED]


def _object_id(value: object) -> str:
    """HubSpot ids are integers (in JSON numbers or strings)."""
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if not text.isascii() or not text.isdigit() or len(text) > ID_MAX_CHARS:
        raise MappingError(f"webhook objectId {str(value)[:ID_MAX_CHARS]!r} is not a HubSpot "
                           "id", code="invalid_webhook")
    return text
