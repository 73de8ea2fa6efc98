"""Snapshots: what the fetcher read from HubSpot's CRM API, stored as a raw event.

Rules:
- A snapshot is a JSON object `{"object": "finsync.hubspot.snapshot", "kind": "deal" |
  "company", "version": n | null, "fetched_at": ISO-8601, ...}` holding HubSpot's objects
  exactly as the API answered them (CRM v3: `id`, `properties` of strings, `associations`).
  A deal's snapshot holds the deal, its line items, companies and quotes; a company's the
  company. `version` is the fetcher's number for this state (`state.FetchState.number`),
  null when the state could not be mapped (the mapper then says why).
- A failed read is a snapshot too: `version` null, `error` the connector's refusal (at most
  `ERROR_MAX` characters), the object as far as it was read (a deal without its line items;
  only its id when the deal itself could not be read; a line item or a quote whose deal
  could not be found, kind `line_item` or `quote`). The mapper refuses it, naming the object:
  nothing the fetcher reads is dropped without a trace.
- The writer (`body`) and the reader (`parse`) sit together; `parse(body(s)) == s`.
- A webhook body is an array, a snapshot an object: the mapper tells them apart by shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from finsync.domain import json_limits
from finsync.domain.clock import require_utc
from finsync.domain.errors import MappingError
from finsync.domain.limits import InputLimits

OBJECT = "finsync.hubspot.snapshot"
DEAL, COMPANY = "deal", "company"
LINE_ITEM, QUOTE = "line_item", "quote"
KINDS = (DEAL, COMPANY)
FAILED_KINDS = (DEAL, COMPANY, LINE_ITEM, QUOTE)  # what a failed read may be about
ERROR_MAX = 500

Obj = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Snapshot:
    kind: str
    version: int | None
    fetched_at: datetime
    main: Obj  # the deal or the company
    line_items: tuple[Obj, ...] = ()
    companies: tuple[Obj, ...] = ()
    quotes: tuple[Obj, ...] = ()
    error: str | None = None  # a failed read: why (then `version` is None)

    @property
    def object_id(self) -> str:
        return str(self.main.get("id", ""))


def body(snapshot: Snapshot) -> bytes:
    data: dict[str, Any] = {"object": OBJECT, "kind": snapshot.kind,
                            "version": snapshot.version,
                            "fetched_at": snapshot.fetched_at.isoformat(),
                            snapshot.kind: snapshot.main}
    if snapshot.kind == DEAL:
        data |= {"line_items": list(snapshot.line_items),
                 "companies": list(snapshot.companies), "quotes": list(snapshot.quotes)}
    if snapshot.error is not None:
        data["error"] = snapshot.error[:ERROR_MAX]
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def is_snapshot(data: object) -> bool:
    return isinstance(data, dict) and data.get("object") == OBJECT


def loads(raw: bytes, limits: InputLimits) -> object:
    """A raw body's JSON, its shape checked against `limits` before parsing."""
    json_limits.check_body(raw, limits)
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MappingError(f"body is not JSON: {exc}", code="invalid_json") from exc


def parse(data: Mapping[str, Any]) -> Snapshot:
    error = _error(data)
    kind = data.get("kind")
    kinds = KINDS if error is None else FAILED_KINDS
    if not isinstance(kind, str) or kind not in kinds:
        raise MappingError(f"snapshot kind {str(kind)[:32]!r} is neither deal nor company",
                           code="invalid_snapshot")
    version = data.get("version")
    if error is not None and version is not None:
        raise MappingError("a failed read's snapshot has no version", code="invalid_snapshot")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)
                                or version < 1):
        raise MappingError("snapshot version must be a positive integer or null",
                           code="invalid_snapshot")
    try:
        fetched_at = require_utc(datetime.fromisoformat(str(data.get("fetched_at"))))
    except ValueError as exc:
        raise MappingError(f"snapshot fetched_at: {exc}", code="invalid_snapshot") from exc
    return Snapshot(kind, version, fetched_at, _object(data.get(kind), kind),
                    _objects(data, "line_items"), _objects(data, "companies"),
                    _objects(data, "quotes"), error)


def _error(data: Mapping[str, Any]) -> str | None:
    error = data.get("error")
    if error is not None and (not isinstance(error, str) or len(error) > ERROR_MAX):
        raise MappingError(f"snapshot error must be a text of at most {ERROR_MAX} characters",
                           code="invalid_snapshot")
    return error


def _objects(data: Mapping[str, Any], key: str) -> tuple[Obj, ...]:
    items = data.get(key, [])
    if not isinstance(items, list):
        raise MappingError(f"snapshot {key} must be an array", code="invalid_snapshot")
    return tuple(_object(item, key) for item in items)


def _object(value: object, what: str) -> Obj:
    shaped = (isinstance(value, dict) and isinstance(value.get("id"), str)
              and isinstance(value.get("properties"), dict))
    if not shaped:
        raise MappingError(f"snapshot {what}: a HubSpot CRM object has an id and properties",
                           code="invalid_snapshot")
    assert isinstance(value, dict)  # shaped
    return value


def props(obj: Obj) -> Mapping[str, Any]:
    properties: Mapping[str, Any] = obj["properties"]
    return properties


def associated(obj: Obj, kind: str) -> Sequence[Obj]:
    """The association entries (`{"id", "type"}`) of `obj` to objects of `kind` (plural
    name, as the API answers: `line_items`, `companies`, `quotes`, `deals`)."""
    found = (obj.get("associations") or {}).get(kind) or {}
    results = found.get("results", []) if isinstance(found, dict) else []
    return [r for r in results if isinstance(r, dict) and isinstance(r.get("id"), str)]
