"""Redacted excerpts of what a connector sent and received, for the call log.

Rules (deny by default):
- The shape stays: keys, list lengths, numbers, booleans and nulls are kept (amounts and
  dates are the evidence; they name no person).
- Every string is replaced by its length (`"<str:12>"`) unless its key is on a short list of
  identifiers and codes (`id`, `object`, `type`, `currency`, `status`…) and it looks like
  one: letters, digits and `_.:/#+=-` only (no space, no `@`), at most 64 characters.
  A string that looks like a credential (`fsk_…`, `sk_…`, `rk_…`, `whsec_…`, `Bearer …`,
  `Session …`) is replaced whatever its key.
- A value under a key that names a secret (`password`, `token`, `secret`, `authorization`,
  `api_key`…) is `"<redacted>"` whatever it is.
- Bounded: nesting past `DEPTH_MAX` is `"…"`, lists keep their first `ITEMS_MAX` items and
  objects their first `KEYS_MAX` keys and say how many more, keys are cut at 64 characters,
  the whole excerpt at `EXCERPT_MAX`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from itertools import islice
from typing import Any

EXCERPT_MAX = 2000
DEPTH_MAX = 10
ITEMS_MAX = 5
KEYS_MAX = 40

SAFE_KEYS = frozenset({
    "id", "object", "type", "currency", "status", "state", "kind", "code", "method", "model",
    "__class__", "decimal", "key", "external_id", "event_id", "correlation_id",
    "delivery_key", "idempotency_key", "number", "livemode", "has_more", "starting_after",
    "subscription", "invoice", "customer", "charge", "payment_intent", "legal_entity",
    "account", "document", "canonical_id", "object_type", "decline_code", "param", "replayed",
})
_SECRET_KEY = re.compile(r"pass(word)?|secret|token|authori[sz]ation|api[_-]?key|cookie|"
                         r"session|credential|private", re.IGNORECASE)
_SECRET_VALUE = re.compile(r"(fsk|sk|rk|whsec)_[A-Za-z0-9_]{6,}|(bearer|session|basic)\s+\S",
                           re.IGNORECASE)
_IDENTIFIER = re.compile(r"[A-Za-z0-9_.:/#+=-]{1,64}")


def redacted(value: object) -> str:
    """`value` (JSON-ready, or JSON text/bytes) as a redacted JSON excerpt."""
    if isinstance(value, bytes | bytearray):
        body = bytes(value)
        try:
            value = json.loads(body)
        except ValueError:
            return json.dumps(f"<{len(body)} bytes, not JSON>")
    text = json.dumps(_shape(value, None, 0), separators=(",", ":"), ensure_ascii=False)
    if len(text) > EXCERPT_MAX:
        return text[:EXCERPT_MAX - 1] + "…"
    return text


def _shape(value: object, key: str | None, depth: int) -> Any:
    if key is not None and _SECRET_KEY.search(key):
        return "<redacted>"
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, str):
        return _string(value, key)
    if depth >= DEPTH_MAX:
        return "…"
    if isinstance(value, Mapping):
        shown = {str(k)[:64]: _shape(v, str(k), depth + 1)
                 for k, v in islice(value.items(), KEYS_MAX)}
        if len(value) > KEYS_MAX:
            shown["…"] = f"+{len(value) - KEYS_MAX} more keys"
        return shown
    if isinstance(value, list | tuple):
        kept = [_shape(v, key, depth + 1) for v in value[:ITEMS_MAX]]
        if len(value) > ITEMS_MAX:
            kept.append(f"+{len(value) - ITEMS_MAX} more")
        return kept
    return f"<{type(value).__name__}>"


def _string(value: str, key: str | None) -> str:
    if _SECRET_VALUE.search(value):
        return "<redacted>"
    if key in SAFE_KEYS and _IDENTIFIER.fullmatch(value):
        return value
    return f"<str:{len(value)}>"
