"""Canonical JSON: sorted keys, no floats, so hashes compare equal across processes.

Rules:
- Parsing checks nesting depth and element count first (`domain.json_limits`), so no text
  reaches `json.loads` that could exhaust its stack or memory; a `RecursionError` left in
  the parser is a `json_too_deep` mapping error all the same, never a crash.
- Input from outside is parsed with its source's limits. Without them, the limits are
  `STORED`: a depth well inside the parser's stack, and a large element count, because JSON
  this hub wrote itself may be big (a reconciliation run lists every break) and a mapper
  that is not handed its source's limits must not refuse what intake let through.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any

from finsync.domain import json_limits
from finsync.domain.errors import MappingError
from finsync.domain.limits import InputLimits

STORED = InputLimits(json_depth_max=200, json_items_max=10_000_000)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_default)


def digest(value: Any) -> str:
    return text_digest(dumps(value))


def text_digest(text: str) -> str:
    """`digest` of a value already written by `dumps` (`text`)."""
    return hashlib.sha256(text.encode()).hexdigest()


def loads(text: str | bytes, limits: InputLimits = STORED) -> Any:
    """Parse JSON within `limits`; raises `MappingError` (`json_too_deep`,
    `json_too_large`), or what `json.loads` raises for text that is not JSON."""
    if isinstance(text, bytes):
        text = json_limits.decode(text)
    json_limits.check(text, limits)
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise MappingError(f"JSON nested too deeply to parse: {exc}",
                           code="json_too_deep") from exc
