"""The HTTP tax engine's wire: one JSON shape per message, its writer beside its reader.

Rules:
- Documents travel in the canonical codec (`domain.codec`): a `TaxRequest`, a `TaxResult`,
  an invoice or a credit memo is `encode(x)` and reads back exactly.
- A commit is `{"key": <delivery key>, "document": <invoice or credit memo>}`.
- A receipt is `{"external_id", "references": [...], "detail": {...}}`.
- An error is `{"error": {"code", "message", "kind", "exception_class"}}`, `kind` one of
  `refused` (the engine refuses: master data must change), `unavailable` (it cannot answer
  now), `transient` (a commit may succeed later), `permanent` (a commit never will).
- Each status the server answers is named here once (`STATUS`), and so is each path.
- What comes off the wire is bounded: `BODY_MAX_BYTES`, and the JSON's depth and size
  (`domain.json_limits`) before it is parsed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from finsync.connectors.ports import Receipt, Reference
from finsync.domain import json_limits
from finsync.domain.codec import JsonObject, decode, encode
from finsync.domain.errors import MappingError

T = TypeVar("T")

QUOTE = "/v1/quote"
COMMIT_INVOICE = "/v1/invoices/commit"
COMMIT_CREDIT_MEMO = "/v1/credit_memos/commit"
RECEIPTS = "/v1/receipts"  # GET /v1/receipts/{key}

BODY_MAX_BYTES = 1 << 20  # 1 MiB, a request's body and an answer's
KEY_MAX_CHARS = 512

REFUSED, UNAVAILABLE, TRANSIENT, PERMANENT = "refused", "unavailable", "transient", "permanent"
STATUS = {REFUSED: 422, UNAVAILABLE: 503, TRANSIENT: 503, PERMANENT: 409}


@dataclass(frozen=True, slots=True)
class WireError:
    code: str
    message: str
    kind: str
    exception_class: str


def parse(body: bytes, where: str) -> JsonObject:
    """A JSON object from bytes off the wire, within the limits; `MappingError` if not."""
    if len(body) > BODY_MAX_BYTES:
        raise MappingError(f"{where}: body of {len(body)} bytes is over the limit of "
                           f"{BODY_MAX_BYTES} bytes", code="body_too_large")
    json_limits.check_body(body)
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise MappingError(f"{where}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise MappingError(f"{where}: not a JSON object")
    return data


def dump(data: object) -> bytes:
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()


def document_from(tp: type[T], data: object, where: str) -> T:
    return decode(tp, data, where)


def document_json(value: object) -> bytes:
    return dump(encode(value))


def commit_json(key: str, document: object) -> bytes:
    return dump({"key": key, "document": encode(document)})


def commit_from(tp: type[T], data: Mapping[str, object]) -> tuple[str, T]:
    key = data.get("key")
    if not isinstance(key, str) or not key or len(key) > KEY_MAX_CHARS:
        raise MappingError(f"commit: key must be a string of 1 to {KEY_MAX_CHARS} characters")
    return key, decode(tp, data.get("document"), "document")


def receipt_json(receipt: Receipt) -> bytes:
    return dump({"external_id": receipt.external_id,
                 "references": [{"canonical_id": r.canonical_id, "object_type": r.object_type,
                                 "external_id": r.external_id} for r in receipt.references],
                 "detail": dict(receipt.detail)})


def receipt_from(data: Mapping[str, object]) -> Receipt:
    try:
        references = tuple(Reference(str(r["canonical_id"]), str(r["object_type"]),
                                     str(r["external_id"]))
                           for r in data["references"])  # type: ignore[attr-defined]
        detail = data["detail"]
        if not isinstance(detail, dict):
            raise TypeError("detail is not an object")
        return Receipt(str(data["external_id"]), references,
                       {str(k): str(v) for k, v in detail.items()})
    except (KeyError, TypeError) as exc:
        raise MappingError(f"receipt: malformed ({exc})") from None


def error_json(error: WireError) -> bytes:
    return dump({"error": {"code": error.code, "message": error.message, "kind": error.kind,
                           "exception_class": error.exception_class}})


def error_from(body: bytes) -> WireError | None:
    """The error an answer carries, or None when it carries none readable."""
    try:
        found = parse(body, "error")["error"]
        if not isinstance(found, dict):
            return None
        return WireError(str(found["code"]), str(found["message"]), str(found["kind"]),
                         str(found["exception_class"]))
    except (MappingError, KeyError):
        return None
